#!/usr/bin/env bash
# Print the path of a promtool binary, building it once with `go install` and caching it.
# Honours PROMTOOL (an existing binary) and PROMTOOL_VERSION (the Go module version to build).
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

if [ -n "${PROMTOOL:-}" ] && [ -x "${PROMTOOL}" ]; then
  echo "${PROMTOOL}"
  exit 0
fi

version="${PROMTOOL_VERSION:-v0.316.0}"   # Prometheus 3.x module versions are v0.3MM.P
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
stamp="${bin_dir}/promtool.version"
promtool="${bin_dir}/promtool"

if [ -x "${promtool}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${promtool}"
  exit 0
fi

command -v go >/dev/null || { echo "promtool.sh: go is required to build promtool" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "promtool.sh: building promtool ${version} with $(go version) (takes a few minutes once)" >&2
start=$(date +%s)
GOBIN="${bin_dir}" go install "github.com/prometheus/prometheus/cmd/promtool@${version}" >&2
echo "${version}" >"${stamp}"
echo "promtool.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${promtool}"
