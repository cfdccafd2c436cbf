#!/usr/bin/env bash
# Print the path of a vegeta binary (the open-loop HTTP load generator of the gateway overload
# test), building it once with `go install` and caching it.
# Honours VEGETA (an existing binary) and VEGETA_VERSION (the Go module version to build).
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

if [ -n "${VEGETA:-}" ] && [ -x "${VEGETA}" ]; then
  echo "${VEGETA}"
  exit 0
fi

version="${VEGETA_VERSION:-v12.13.0}"
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
stamp="${bin_dir}/vegeta.version"
vegeta="${bin_dir}/vegeta"

if [ -x "${vegeta}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${vegeta}"
  exit 0
fi

command -v go >/dev/null || { echo "vegeta.sh: go is required to build vegeta" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "vegeta.sh: building vegeta ${version} with $(go version) (takes a few minutes once)" >&2
start=$(date +%s)
# shellcheck source=go-flags.sh
source "$(dirname "$0")/go-flags.sh"
GOBIN="${bin_dir}" go install "${GO_LOADGEN_FLAGS[@]}" "github.com/tsenart/vegeta/v12@${version}" >&2
echo "${version}" >"${stamp}"
echo "vegeta.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${vegeta}"
