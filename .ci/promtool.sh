#!/usr/bin/env bash
# Print the path of a promtool binary:
#  1. PROMTOOL, when it names an executable;
#  2. Debian's `prometheus` package (/usr/bin/promtool), installed with apt-get when it is missing
#     and this runs as root on a Debian-like machine (seconds);
#  3. else built once with `go install` (PROMTOOL_VERSION, about 10 min cold) and cached.
# SCORESTREAM_PROMTOOL_GO=1 skips step 2. Progress goes to stderr; only the path to stdout.
set -euo pipefail

if [ -n "${PROMTOOL:-}" ] && [ -x "${PROMTOOL}" ]; then
  echo "${PROMTOOL}"
  exit 0
fi

if [ "${SCORESTREAM_PROMTOOL_GO:-0}" != 1 ]; then
  if [ ! -x /usr/bin/promtool ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "promtool.sh: installing Debian's prometheus package (promtool)" >&2
    if ! apt-get install -y -qq --no-install-recommends prometheus >&2; then
      apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends prometheus >&2 || true
    fi
  fi
  if [ -x /usr/bin/promtool ]; then
    echo /usr/bin/promtool
    exit 0
  fi
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
