"""The model repository's S3 backend against a real S3 server (S3Proxy, started here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import s3fs

from pipelines.repository import ModelRepository
from scorestream.dev.s3local import S3ProxyServer
from scorestream.errors import ModelIntegrityError, ModelNotFoundError, VersionExistsError
from scorestream.settings import ModelRepoSettings, default_cache_dir
from tests.model_factory import tiny_model

pytestmark = pytest.mark.integration

BUCKET = "scorestream-models"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3ProxyServer]:
    with S3ProxyServer(default_cache_dir()) as server:
        fs = s3fs.S3FileSystem(**server.storage_options())
        fs.call_s3("create_bucket", Bucket=BUCKET)  # S3Proxy: s3fs.mkdir misreads a new bucket
        yield server


@pytest.fixture
def repo(s3: S3ProxyServer, request: pytest.FixtureRequest) -> ModelRepository:
    settings = ModelRepoSettings(
        url=f"s3://{BUCKET}/{request.node.name}",
        s3_endpoint_url=s3.endpoint_url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
    )
    return ModelRepository(settings.url, settings.storage_options())


def test_publish_and_load_through_s3(repo: ModelRepository, s3: S3ProxyServer) -> None:
    data, meta = tiny_model("1")
    uri = repo.publish(data, meta)
    assert uri.startswith(f"s3://{BUCKET}/")
    repo.publish(*tiny_model("2", seed=1))
    assert repo.versions("fraud-gbt") == ["1", "2"]
    assert repo.next_version("fraud-gbt") == "3"
    fresh = ModelRepository(repo.url, {**s3.storage_options()})  # another process, same bucket
    loaded = fresh.load("fraud-gbt", "1")
    assert loaded.onnx_bytes == data
    assert loaded.metadata.sha256 == meta.sha256
    with pytest.raises(VersionExistsError):
        fresh.publish(*tiny_model("2", seed=5))
    with pytest.raises(ModelNotFoundError):
        fresh.load("fraud-gbt", "9")


def test_tampered_object_in_s3_is_refused(repo: ModelRepository) -> None:
    data, meta = tiny_model("1")
    repo.publish(data, meta)
    with repo.fs.open(f"{repo.root}/fraud-gbt/1/model.onnx", "wb") as fh:
        fh.write(data[:-10] + b"0123456789")
    with pytest.raises(ModelIntegrityError):
        repo.load("fraud-gbt", "1")
