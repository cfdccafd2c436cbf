#!/usr/bin/env bash
# Print the path of a kubeconform binary, built once with `go install` (about 15 s cold) and cached
# under ~/.cache/scorestream/bin. Honours KUBECONFORM (an existing binary) and KUBECONFORM_VERSION.
# Build progress goes to stderr; only the path goes to stdout.
set -euo pipefail

if [ -n "${KUBECONFORM:-}" ] && [ -x "${KUBECONFORM}" ]; then
  echo "${KUBECONFORM}"
  exit 0
fi

version="${KUBECONFORM_VERSION:-v0.7.0}"
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"
stamp="${bin_dir}/kubeconform.version"
kubeconform="${bin_dir}/kubeconform"

if [ -x "${kubeconform}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${kubeconform}"
  exit 0
fi

command -v go >/dev/null || { echo "kubeconform.sh: go is required to build kubeconform" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "kubeconform.sh: building kubeconform ${version} with $(go version)" >&2
start=$(date +%s)
# shellcheck source=go-flags.sh
source "$(dirname "$0")/go-flags.sh"
GOBIN="${bin_dir}" go install "${GO_TOOL_FLAGS[@]}" "github.com/yannh/kubeconform/cmd/kubeconform@${version}" >&2
echo "${version}" >"${stamp}"
echo "kubeconform.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${kubeconform}"
