"""s3fs against a real S3 server (S3Proxy, started here): buckets, objects, listing, auth."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import s3fs

from scorestream.dev.s3local import S3PROXY_VERSION, S3ProxyServer, S3ServerError, ensure_s3proxy
from scorestream.settings import default_cache_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3ProxyServer]:
    with S3ProxyServer(default_cache_dir()) as server:
        yield server


def _fs(server: S3ProxyServer, **overrides: str) -> s3fs.S3FileSystem:
    options = server.storage_options() | overrides
    # No instance cache: every test gets its own client, and a wrong-secret client must not be
    # served from an earlier, valid one.
    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


def _create_bucket(fs: s3fs.S3FileSystem, bucket: str) -> None:
    # Not fs.mkdir(bucket): s3fs first probes HeadBucket, then GetBucketLocation, and S3Proxy
    # answers GetBucketLocation with 200 even for a missing bucket, so mkdir raises
    # FileExistsError (and makedirs(exist_ok=True) silently creates nothing).
    fs.call_s3("create_bucket", Bucket=bucket)
    fs.invalidate_cache()


def test_bucket_objects_listing_and_overwrite(s3_server: S3ProxyServer) -> None:
    fs = _fs(s3_server)
    bucket = "models"
    _create_bucket(fs, bucket)
    assert bucket in fs.ls("", refresh=True)

    blob = os.urandom(1024 * 1024 + 17)
    manifest = {"model": "fraud-gbm", "version": 3, "features": ["amount", "country"]}
    fs.pipe_file(f"{bucket}/fraud/v3/model.bin", blob)
    with fs.open(f"{bucket}/fraud/v3/manifest.json", "w") as fh:
        json.dump(manifest, fh)

    assert fs.cat_file(f"{bucket}/fraud/v3/model.bin") == blob
    with fs.open(f"{bucket}/fraud/v3/manifest.json") as fh:
        assert json.load(fh) == manifest

    listed = fs.ls(f"{bucket}/fraud/v3", detail=True, refresh=True)
    sizes = {entry["name"]: entry["size"] for entry in listed}
    assert sizes[f"{bucket}/fraud/v3/model.bin"] == len(blob)
    assert set(sizes) == {f"{bucket}/fraud/v3/model.bin", f"{bucket}/fraud/v3/manifest.json"}
    assert fs.find(bucket) == sorted(sizes)

    # The server really stores the bytes: the filesystem backend keeps one file per object.
    assert (s3_server.data_dir / bucket / "fraud" / "v3" / "model.bin").stat().st_size == len(blob)

    smaller = os.urandom(4096)
    fs.pipe_file(f"{bucket}/fraud/v3/model.bin", smaller)
    fs.invalidate_cache()
    assert fs.info(f"{bucket}/fraud/v3/model.bin")["size"] == len(smaller)
    assert fs.cat_file(f"{bucket}/fraud/v3/model.bin") == smaller
    # A fresh client (no listing cache at all) sees the overwrite too.
    assert _fs(s3_server).cat_file(f"{bucket}/fraud/v3/model.bin") == smaller

    fs.rm(f"{bucket}/fraud/v3/manifest.json")
    assert not _fs(s3_server).exists(f"{bucket}/fraud/v3/manifest.json")


def test_wrong_secret_is_rejected(s3_server: S3ProxyServer) -> None:
    fs = _fs(s3_server)
    _create_bucket(fs, "private")
    fs.pipe_file("private/secret.txt", b"top secret")

    # s3fs maps the 403 (SignatureDoesNotMatch / AccessDenied) to PermissionError.
    intruder = _fs(s3_server, secret=s3_server.secret_key + "x")
    with pytest.raises(PermissionError):
        intruder.cat_file("private/secret.txt")
    with pytest.raises(PermissionError, match="signature"):
        intruder.pipe_file("private/other.txt", b"x")
    assert not fs.exists("private/other.txt")


def test_unknown_access_key_is_rejected(s3_server: S3ProxyServer) -> None:
    intruder = _fs(s3_server, key="someone-else")
    with pytest.raises(PermissionError):
        intruder.ls("", refresh=True)


def test_cached_resolution_needs_no_maven(
    s3_server: S3ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")  # no mvn: a second resolve must come from the marker
    libs = ensure_s3proxy(s3_server.cache_dir)
    assert (libs / f"s3proxy-{S3PROXY_VERSION}.jar").is_file()


def test_failed_start_raises_with_log_lines() -> None:
    server = S3ProxyServer(default_cache_dir(), heap="not-a-size")
    with pytest.raises(S3ServerError, match=r"exited with code \d+(.|\n)*heap size"):
        server.start()
    assert server.port == 0
