#!/usr/bin/env bash
# Print the path of a Jaeger v2 binary, building it once with `go install` and caching it.
# Honours JAEGER (an existing binary) and JAEGER_VERSION (the Go module version to build; in
# github.com/jaegertracing/jaeger v1.7x, cmd/jaeger is the v2 binary built on the OTel Collector).
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

if [ -n "${JAEGER:-}" ] && [ -x "${JAEGER}" ]; then
  echo "${JAEGER}"
  exit 0
fi

version="${JAEGER_VERSION:-v1.76.0}"
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
stamp="${bin_dir}/jaeger.version"
jaeger="${bin_dir}/jaeger"

if [ -x "${jaeger}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${jaeger}"
  exit 0
fi

command -v go >/dev/null || { echo "jaeger.sh: go is required to build jaeger" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "jaeger.sh: building jaeger ${version} with $(go version) (takes 10-25 minutes once)" >&2
start=$(date +%s)
# `go install pkg@version` refuses modules whose go.mod has replace directives (jaeger's does),
# so build it as a tool of a throw-away module: `go get -tool` resolves it without the replaces.
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(
  cd "${work}"
  go mod init scorestream.local/jaeger-build >&2 2>&1
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${version}" >&2
  go build -o "${jaeger}.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
)
mv "${jaeger}.tmp" "${jaeger}"
echo "${version}" >"${stamp}"
echo "jaeger.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${jaeger}"
