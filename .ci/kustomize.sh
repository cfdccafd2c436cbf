#!/usr/bin/env bash
# Print the path of a kustomize-compatible command: `<path> build DIR` renders an overlay.
#  1. KUSTOMIZE, when it names an executable;
#  2. kubectl's built-in kustomize (`kubectl kustomize DIR`), where kubectl is installed: a
#     two-line wrapper is written to the cache so that callers keep the `build DIR` form;
#  3. else kustomize built once with `go install` (KUSTOMIZE_VERSION, a few minutes) and cached.
#     v5.8.2 is the newest release whose go.mod accepts Go 1.26 (v5.8.3 needs Go 1.27).
# SCORESTREAM_KUSTOMIZE_GO=1 skips step 2. Progress goes to stderr; only the path to stdout.
set -euo pipefail

if [ -n "${KUSTOMIZE:-}" ] && [ -x "${KUSTOMIZE}" ]; then
  echo "${KUSTOMIZE}"
  exit 0
fi

version="${KUSTOMIZE_VERSION:-v5.8.2}"
bin_dir="${SCORESTREAM_CACHE_DIR:-${HOME}/.cache/scorestream}/bin"

if [ "${SCORESTREAM_KUSTOMIZE_GO:-0}" != 1 ] && command -v kubectl >/dev/null \
   && kubectl kustomize --help >/dev/null 2>&1; then
  mkdir -p "${bin_dir}"
  wrapper="${bin_dir}/kustomize-kubectl"
  cat >"${wrapper}.tmp" <<'WRAPPER'
#!/bin/sh
# `kustomize build DIR` as `kubectl kustomize DIR` (written by .ci/kustomize.sh)
[ "$1" = build ] || { echo "kustomize-kubectl: only 'build DIR' is supported" >&2; exit 2; }
shift
exec kubectl kustomize "$@"
WRAPPER
  chmod +x "${wrapper}.tmp"
  mv "${wrapper}.tmp" "${wrapper}"
  kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' >"${wrapper}.version"
  echo "${wrapper}"
  exit 0
fi

stamp="${bin_dir}/kustomize.version"
kustomize="${bin_dir}/kustomize"
if [ -x "${kustomize}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${version}" ]; then
  echo "${kustomize}"
  exit 0
fi

command -v go >/dev/null || { echo "kustomize.sh: neither kubectl nor go found" >&2; exit 1; }
mkdir -p "${bin_dir}"
echo "kustomize.sh: building kustomize ${version} with $(go version) (takes a few minutes once)" >&2
start=$(date +%s)
GOBIN="${bin_dir}" go install "sigs.k8s.io/kustomize/kustomize/v5@${version}" >&2
echo "${version}" >"${stamp}"
echo "kustomize.sh: built in $(( $(date +%s) - start ))s" >&2
echo "${kustomize}"
