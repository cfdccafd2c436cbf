#!/usr/bin/env bash
# Print the path of a Jaeger v2 binary, building it once with Go and caching it.
# Honours JAEGER (an existing binary) and JAEGER_VERSION (the Go module version to build; in
# github.com/jaegertracing/jaeger v1.7x, cmd/jaeger is the v2 binary built on the OTel Collector;
# v1.75.0 is the approved release, newer ones are served but not approved).
#   .ci/jaeger.sh --fetch   only download its modules (network-bound: .ci/setup.sh runs it beside
#                           the CPU-bound builds of the other tools)
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

fetch_only=0
[ "${1:-}" = --fetch ] && fetch_only=1

if [ -n "${JAEGER:-}" ] && [ -x "${JAEGER}" ]; then
  [ "${fetch_only}" = 1 ] || echo "${JAEGER}"
  exit 0
fi

version="${JAEGER_VERSION:-v1.75.0}"
cache="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}"
bin_dir="${cache}/bin"
stamp="${bin_dir}/jaeger.version"
jaeger="${bin_dir}/jaeger"

if [ -x "${jaeger}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  [ "${fetch_only}" = 1 ] || echo "${jaeger}"
  exit 0
fi

command -v go >/dev/null || { echo "jaeger.sh: go is required to build jaeger" >&2; exit 1; }
mkdir -p "${bin_dir}"
# `go install pkg@version` refuses modules whose go.mod has replace directives (jaeger's does),
# so it is built as a tool of a module of our own: `go get -tool` resolves it without the
# replaces and downloads what it needs. That module is kept (a go.mod and a go.sum) so that a
# `--fetch` run and the build share it; the lock keeps two runs from preparing it at once.
work="${cache}/build/jaeger-${version}"
mkdir -p "${work}"
(
  flock 9
  cd "${work}"
  if ! grep -q '^tool github.com/jaegertracing/jaeger/cmd/jaeger$' go.mod 2>/dev/null; then
    rm -f go.mod go.sum
    echo "jaeger.sh: downloading jaeger ${version}'s modules" >&2
    start=$(date +%s)
    go mod init scorestream.local/jaeger-build >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${version}" >&2
    echo "jaeger.sh: modules downloaded in $(( $(date +%s) - start ))s" >&2
  fi
) 9>"${work}.lock"
[ "${fetch_only}" = 0 ] || exit 0

echo "jaeger.sh: building jaeger ${version} with $(go version) (about 4 min on 2 cores, once)" >&2
start=$(date +%s)
# With the tools' shared flags (.ci/go-flags.sh: no optimisations, inlining, cgo, symbols):
# the tests' Jaeger stores a few traces in memory, and its 2,300 packages compile with about 30%
# less CPU (measured: 291 against 408 CPU seconds).
# shellcheck source=go-flags.sh
source "$(dirname "$0")/go-flags.sh"
(
  cd "${work}"
  go build "${GO_TOOL_FLAGS[@]}" -o "${jaeger}.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
)
mv "${jaeger}.tmp" "${jaeger}"
echo "${version}" >"${stamp}"
echo "jaeger.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${jaeger}"
