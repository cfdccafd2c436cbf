#!/usr/bin/env bash
# Print the path of a kustomize binary, building it once with `go install` and caching it.
# Honours KUSTOMIZE (an existing binary) and KUSTOMIZE_VERSION (the Go module version to build).
# v5.8.2 is the newest release whose go.mod accepts Go 1.26 (v5.8.3 needs Go 1.27).
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

if [ -n "${KUSTOMIZE:-}" ] && [ -x "${KUSTOMIZE}" ]; then
  echo "${KUSTOMIZE}"
  exit 0
fi

version="${KUSTOMIZE_VERSION:-v5.8.2}"
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
stamp="${bin_dir}/kustomize.version"
kustomize="${bin_dir}/kustomize"

if [ -x "${kustomize}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${kustomize}"
  exit 0
fi

command -v go >/dev/null || { echo "kustomize.sh: go is required to build kustomize" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "kustomize.sh: building kustomize ${version} with $(go version) (takes a few minutes once)" >&2
start=$(date +%s)
GOBIN="${bin_dir}" go install "sigs.k8s.io/kustomize/kustomize/v5@${version}" >&2
echo "${version}" >"${stamp}"
echo "kustomize.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${kustomize}"
