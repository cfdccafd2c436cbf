#!/usr/bin/env bash
# Print the path of the Pod Security checker (tests/podsecurity: a small Go program around the
# upstream k8s.io/pod-security-admission policy package), built once with `go build` and cached
# under ~/.cache/scorestream/bin, keyed by a hash of its sources (about 30 s cold: three k8s.io
# modules from the Go module proxy). Build progress goes to stderr; only the path to stdout.
set -euo pipefail
cd "$(dirname "$0")/../tests/podsecurity"

bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
key="$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)"
binary="${bin_dir}/podsecurity-${key}"
if [ -x "${binary}" ]; then
  echo "${binary}"
  exit 0
fi
command -v go >/dev/null || { echo "podsecurity.sh: go is required" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "podsecurity.sh: building the Pod Security checker with $(go version)" >&2
start=$(date +%s)
# shellcheck source=../../.ci/go-flags.sh
source ../../.ci/go-flags.sh
go build -mod=readonly "${GO_TOOL_FLAGS[@]}" -o "${binary}.tmp" . >&2
mv "${binary}.tmp" "${binary}"
echo "podsecurity.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${binary}"
