#!/usr/bin/env bash
# Everything `make test` needs before pytest starts, prepared concurrently: the venv, the Kafka jars,
# the pinned CRDs, the image-like venv, promtool, kustomize, kubeconform, the Pod Security checker,
# vegeta and Jaeger. Each is cached, so a second run takes seconds.
#
#   .ci/setup.sh            every step
#   .ci/setup.sh STEP...    only these (and the steps they need): venv jars crds image-venv
#                           promtool kustomize kubeconform podsecurity vegeta jaeger
#
# Lanes run side by side; the steps of one lane run one after another:
#   jaeger  Jaeger's Go modules (44 s of downloads), then its build: the critical path (its ~2,300
#           packages are most of the set-up's CPU), so it starts first and alone in its lane
#   go      kubeconform, the Pod Security checker, vegeta: the small Go builds, one at a time,
#           mostly waiting on module downloads; built with Jaeger's flags (.ci/go-flags.sh), they
#           compile the standard library and the shared modules into the Go build cache while
#           Jaeger's modules download, and Jaeger's build then reuses them (the cache does not
#           coordinate processes: what both need at the same moment may compile twice)
#   python  the venv (make install: uv), then the Kafka jars and the CRDs (both Maven, one at a time)
#   image   the venv replaying the Dockerfile's build stage (PyPI downloads)
#   system  promtool (Debian's package) and kustomize (kubectl's)
# A failing step stops its own lane only; the others finish, then every failure is reported with
# its log's tail and the exit status is 1. Progress: one line per finished step, and the running
# steps every 60 s. Logs: $SCORESTREAM_SETUP_LOGS (default: a temporary directory, kept on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

all_steps=(venv jars crds image-venv promtool kustomize kubeconform podsecurity vegeta jaeger)
python="${PYTHON:-python3}"

# One step: its command, output to its log. Paths go to the log; the callers ask the step's own
# script again (cached: instant) for them.
run_step() {
  case "$1" in
    venv) make --no-print-directory install PYTHON="${python}" \
            && echo "venv: .venv ($(.venv/bin/python --version 2>&1))" ;;
    jars) .venv/bin/python -c "from scorestream.dev.broker.jars import ensure_jars; from scorestream.settings import BrokerSettings; print('kafka jars:', ensure_jars(BrokerSettings().cache_dir, print))" ;;
    crds) .venv/bin/python -W ignore -c "from scorestream.deploy.k8s.crds import crd_schemas, pins; print('CRDs:', len(crd_schemas()), pins())" ;;
    # tests/image_venv.py needs only the standard library: it does not wait for .venv
    image-venv) "${python}" -c "from tests.image_venv import image_venv; print('image venv:', image_venv())" ;;
    jaeger-fetch) .ci/jaeger.sh --fetch ;;
    promtool | kustomize | kubeconform | podsecurity | vegeta | jaeger) ".ci/$1.sh" ;;
    *) echo "setup.sh: unknown step $1" >&2; return 2 ;;
  esac
}

lane_of() {
  case "$1" in
    kubeconform | podsecurity | vegeta) echo go ;;
    jaeger-fetch | jaeger) echo jaeger ;;
    venv | jars | crds) echo python ;;
    image-venv) echo image ;;
    promtool | kustomize) echo system ;;
  esac
}

# CPU seconds (user + system) of this shell's finished children so far (`times` in this shell:
# in a subshell it would count the subshell's children)
children_cpu() {
  times >"${logs}/.$1.times"
  awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } }
       END { printf "%.0f", s }' "${logs}/.$1.times"
}

# internal: run one lane's steps in order, recording each step's exit status, wall and CPU seconds
if [ "${1:-}" = --lane ]; then
  logs="$2"
  shift 2
  for step in "$@"; do
    start=$(date +%s)
    children_cpu "${step}" >"${logs}/.${step}.cpu0"
    set +e
    run_step "${step}" >"${logs}/${step}.log" 2>&1 </dev/null
    rc=$?
    set -e
    children_cpu "${step}" >"${logs}/.${step}.cpu1"
    echo "${rc} $(( $(date +%s) - start )) $(( $(cat "${logs}/.${step}.cpu1") - $(cat "${logs}/.${step}.cpu0") ))" \
      >"${logs}/${step}.done"
    [ "${rc}" -eq 0 ] || exit 0   # the lane stops; the parent reports
  done
  exit 0
fi

wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=("${all_steps[@]}")
for step in "${wanted[@]}"; do
  [ -n "$(lane_of "${step}")" ] || { echo "setup.sh: unknown step ${step} (steps: ${all_steps[*]})" >&2; exit 2; }
done
want() { local s; for s in "${wanted[@]}"; do [ "${s}" = "$1" ] && return 0; done; return 1; }
# steps that others need
if want jars || want crds; then wanted+=(venv); fi
if want jaeger; then wanted+=(jaeger-fetch); fi

logs="${SCORESTREAM_SETUP_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/scorestream-setup.XXXXXX")}"
mkdir -p "${logs}"
rm -f "${logs}"/*.done

# the lanes, each step in its lane's order
declare -A lane_steps=()
for step in venv jars crds image-venv promtool kustomize jaeger-fetch kubeconform podsecurity vegeta jaeger; do
  want "${step}" || continue
  lane="$(lane_of "${step}")"
  lane_steps[${lane}]="${lane_steps[${lane}]:-} ${step}"
done

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -- "-${pid}" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
for lane in jaeger go python image system; do
  [ -n "${lane_steps[${lane}]:-}" ] || continue
  # its own process group (setsid), so that an interrupt stops the lane's builds too
  # shellcheck disable=SC2086
  setsid "$0" --lane "${logs}" ${lane_steps[${lane}]} &
  pids+=("$!")
  echo "setup: lane ${lane}:${lane_steps[${lane}]}"
done
echo "setup: logs in ${logs}"

declare -A reported=()
failed=()
last_status=${t0}
while :; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "${pid}" 2>/dev/null && running=1; done
  for done_file in "${logs}"/*.done; do
    [ -e "${done_file}" ] || continue
    step="$(basename "${done_file}" .done)"
    [ -z "${reported[${step}]:-}" ] || continue
    reported[${step}]=1
    read -r rc secs cpu <"${done_file}"
    if [ "${rc}" -eq 0 ]; then
      echo "setup: [$(( $(date +%s) - t0 ))s] ${step} ready (${secs}s, CPU ${cpu}s)" \
        "$(tail -n 1 "${logs}/${step}.log" | cut -c1-160)"
    else
      echo "setup: [$(( $(date +%s) - t0 ))s] ${step} FAILED (exit ${rc} after ${secs}s)"
      failed+=("${step}")
    fi
  done
  [ "${running}" = 1 ] || break
  if [ $(( $(date +%s) - last_status )) -ge 60 ]; then
    last_status=$(date +%s)
    busy=()
    for lane in jaeger go python image system; do
      for step in ${lane_steps[${lane}]:-}; do
        if [ -z "${reported[${step}]:-}" ] && [ -e "${logs}/${step}.log" ]; then busy+=("${step}"); break; fi
      done
    done
    echo "setup: [$(( last_status - t0 ))s] running: ${busy[*]:-}"
  fi
  sleep 2
done
for pid in "${pids[@]}"; do wait "${pid}" || true; done
pids=()

# a lane that died without recording its step (killed) is a failure too
for step in "${wanted[@]}"; do
  if [ -z "${reported[${step}]:-}" ]; then
    if [ -e "${logs}/${step}.log" ]; then
      failed+=("${step}")
      echo "setup: ${step} did not finish"
    else
      echo "setup: ${step} skipped (an earlier step of its lane failed)"
      failed+=("${step}")
    fi
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  for step in "${failed[@]}"; do
    [ -e "${logs}/${step}.log" ] || continue
    echo "---- setup: ${step} failed; the end of ${logs}/${step}.log:"
    tail -n 40 "${logs}/${step}.log"
  done
  echo "setup: FAILED: ${failed[*]} (after $(( $(date +%s) - t0 ))s; logs kept in ${logs})"
  exit 1
fi
echo "setup: all ${#reported[@]} steps ready in $(( $(date +%s) - t0 ))s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
[ -n "${SCORESTREAM_SETUP_LOGS:-}" ] || rm -rf "${logs}"
