#!/usr/bin/env bash
# The one command to run whenever a GPU machine is lent (no network, no pip): build the deployconv torch
# extension for the local GPU, run the GPU parity tests, the plugin enqueue harness, the kernel benchmark
# (goals judged against torch/torchvision/cuDNN and the DRAM bandwidth measured in the same run) and the model
# benchmark (deploy forms on PyTorch CUDA: eager, channels-last, torch.compile, and with our kernels), then write a
# summary. Bounded: the whole run stays within --budget-s (default 540 s = 9 min, for a 10-minute command limit).
#
#   OUT=/some/dir tools/gpu_check.sh [--budget-s S] [--quick] [--no-bench] [--help]
#
# Outputs, all under $OUT (else build/gpu_check/):
#   environment.json    GPU, driver, CUDA (runtime, driver API, nvcc), torch/cuDNN/Triton/torchvision versions,
#                       nvidia-smi clocks/power/temperature (benchmarks/_env.py --gpu)
#   gpu_tests.xml       JUnit XML of `pytest -m gpu tests/gpu` (the kernels against the references' error bounds)
#   plugin_enqueue.json the C++ plugin enqueue harness (when deployconv.plugins.enqueue_harness exists)
#   gpu_kernels_<gpu>.json, gpu_models_<gpu>.json   the benchmarks (see their docstrings)
#   gpu_check.json      summary: stages (status, seconds, limit), goals met / not met with numbers, model parity
#   stages.tsv, *.log   per-stage status and logs
# Then, on the machine with the repository (the run's $OUT folder fetched to DIR):
#   python tools/collect_gpu_results.py collect DIR     # -> benchmarks/results/gpu_*_<gpu>.json, then commit
#
# Every stage runs even if an earlier one failed, each under its own time limit (the smaller of its cap and
# what is left of the budget, keeping a reserve for the summary); a stage with under 10 s left is skipped.
# Exit code: 0 every stage passed (a stage that is not present, such as the harness, counts as skipped, not
# failed); 1 a stage failed or timed out; 2 bad arguments.
# Runs with `python` (else `python3`) from PATH ($PYTHON overrides) and PYTHONPATH = the repository root: nothing is installed.
# The extension is built for the visible GPU's arch only (TORCH_CUDA_ARCH_LIST, set from the device unless
# given), with ninja and MAX_JOBS = CPU count where ninja exists, cached in ~/.cache/deployconv ($DEPLOYCONV_CACHE).
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

cd "$(dirname "$0")/.." || exit 2
REPO="$(pwd)"
PY="${PYTHON:-$(command -v python || command -v python3 || echo python)}"
OUT_DIR="${OUT:-$REPO/build/gpu_check}"
BUDGET_S=540
QUICK=0
RUN_BENCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-bench) RUN_BENCH=0 ;;
    --budget-s)
      shift
      case "${1:-}" in ''|*[!0-9]*) echo "--budget-s needs whole seconds" >&2; exit 2 ;; esac
      BUDGET_S="$1" ;;
    --budget-s=*)
      BUDGET_S="${1#--budget-s=}"
      case "$BUDGET_S" in ''|*[!0-9]*) echo "--budget-s needs whole seconds" >&2; exit 2 ;; esac ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; echo "usage: tools/gpu_check.sh [--budget-s S] [--quick] [--no-bench]" >&2
       exit 2 ;;
  esac
  shift
done

mkdir -p "$OUT_DIR" || exit 2
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + BUDGET_S))
SUMMARY_RESERVE_S=20
STAGES_TSV="$OUT_DIR/stages.tsv"
: > "$STAGES_TSV"
failed=()

# Per-stage caps (seconds); each stage gets min(cap, what is left of the budget - the summary reserve).
CAP_ENV=40
CAP_BUILD=240
CAP_TESTS=120
CAP_ENQUEUE=90
CAP_KERNELS=150
CAP_MODELS=600  # the model benchmark takes what is left

banner() { echo; echo "=== $1 ($(date -u +%H:%M:%S), $(( $(date +%s) - START )) s into the run)"; }

# Seconds the next stage may take: min(cap, left - reserve); <= 0 when nothing is left.
stage_limit() {
  local cap=$1 left
  left=$(( DEADLINE - $(date +%s) - SUMMARY_RESERVE_S ))
  if [ "$cap" -lt "$left" ]; then echo "$cap"; else echo "$left"; fi
}

record() {  # name status rc seconds limit note
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >> "$STAGES_TSV"
  case "$2" in failed|timeout) failed+=("$1") ;; esac
}

# run_stage NAME LIMIT_S CMD...: runs CMD under `timeout`, logs to NAME.log, records the outcome.
run_stage() {
  local name=$1 limit=$2 t0 rc status secs
  shift 2
  banner "$name (limit ${limit} s)"
  if [ "$limit" -lt 10 ]; then
    echo "skipped: the budget of ${BUDGET_S} s is spent"
    record "$name" skipped - 0 "$limit" "budget spent"
    return 0
  fi
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
  rc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - t0 ))
  case "$rc" in
    0) status=passed ;;
    124|137) status=timeout; echo "$name: stopped after its ${limit} s limit" ;;
    *) status=failed ;;
  esac
  record "$name" "$status" "$rc" "$secs" "$limit" ""
  return 0
}

# --- environment --------------------------------------------------------------------------------------------
# shellcheck disable=SC2329  # invoked through `bash -c env_stage` (timeout cannot run a function)
env_stage() {
  "$PY" -m benchmarks._env --gpu > "$OUT_DIR/environment.json" || return 1
  cat "$OUT_DIR/environment.json"
  if command -v nvidia-smi >/dev/null; then nvidia-smi; fi
  command -v ninja >/dev/null && echo "ninja: $(command -v ninja)" || echo "ninja: not found (setuptools build)"
}
export -f env_stage
export PY OUT_DIR
run_stage environment "$(stage_limit $CAP_ENV)" bash -c env_stage

# Build for the visible GPU only (e.g. 9.0 on an H200), in parallel.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && command -v nvidia-smi >/dev/null; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i 0 2>/dev/null | head -n 1 | tr -d ' ')
  case "$cap" in [0-9]*.[0-9]*) export TORCH_CUDA_ARCH_LIST="$cap" ;; esac
fi
MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 8)}"
export MAX_JOBS
echo "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-<torch default>} MAX_JOBS=$MAX_JOBS"

# --- build --------------------------------------------------------------------------------------------------
run_stage build "$(stage_limit $CAP_BUILD)" "$PY" -c \
  "from deployconv.ops.cuda_ext import load_extension as l; m = l(verbose=True); print('built', m.__file__)"
if tail -n 1 "$STAGES_TSV" | grep -q $'\ttimeout\t'; then
  # A build killed mid-way leaves torch's lock file; later loads would wait on it for ever.
  bdir=$("$PY" -c "from deployconv.ops.cuda_ext import build_directory as b; print(b()[1])" 2>/dev/null)
  [ -n "$bdir" ] && rm -f "$bdir/lock"
fi

# --- GPU parity tests ---------------------------------------------------------------------------------------
run_stage gpu_tests "$(stage_limit $CAP_TESTS)" "$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider \
  --junitxml="$OUT_DIR/gpu_tests.xml"

# --- plugin enqueue harness ---------------------------------------------------------------------------------
# The C++ plugin_probe's enqueue mode drives each IPluginV3 (create -> configure -> attach -> enqueue) on real
# device buffers against the PyTorch references (tests/gpu/plugin_enqueue_harness.py). Needs ../shared's TensorRT
# headers (they travel with the device call) or TENSORRT_ROOT; no libnvinfer. Exit 0 pass, 1 a case failed, 3 n/a.
run_stage plugin_enqueue "$(stage_limit $CAP_ENQUEUE)" "$PY" -m tests.gpu.plugin_enqueue_harness \
  --out "$OUT_DIR/plugin_enqueue.json"


# --- benchmarks ---------------------------------------------------------------------------------------------
if [ "$RUN_BENCH" -eq 1 ]; then
  # The benchmarks' own budgets end 30 s before their stage limit, so they write their JSON themselves.
  limit=$(stage_limit $CAP_KERNELS)
  kargs=(--out-dir "$OUT_DIR" --budget-s $(( limit > 40 ? limit - 30 : 10 )))
  [ "$QUICK" -eq 1 ] && kargs+=(--quick)
  run_stage gpu_kernels "$limit" "$PY" -m benchmarks.gpu_kernels "${kargs[@]}"

  limit=$(stage_limit $CAP_MODELS)
  margs=(--out-dir "$OUT_DIR" --budget-s $(( limit > 40 ? limit - 30 : 10 )))
  [ "$QUICK" -eq 1 ] && margs+=(--batches 1 --compile-cases none --target-s 0.2)
  run_stage gpu_models "$limit" "$PY" -m benchmarks.gpu_models "${margs[@]}"
else
  record gpu_kernels skipped - 0 - "--no-bench"
  record gpu_models skipped - 0 - "--no-bench"
fi

# --- summary ------------------------------------------------------------------------------------------------
banner "summary"
cat "$STAGES_TSV"
if ! timeout -k 5 "$SUMMARY_RESERVE_S" "$PY" tools/collect_gpu_results.py summarize "$OUT_DIR"; then
  echo "the summary could not be written"
  failed+=(summary)
fi
echo "total $(( $(date +%s) - START )) s of a ${BUDGET_S} s budget; outputs in $OUT_DIR"
echo "to commit them: fetch $OUT_DIR here, then: python tools/collect_gpu_results.py collect <that folder>"
if [ "${#failed[@]}" -eq 0 ]; then
  echo "all stages passed"
  exit 0
fi
echo "failed: ${failed[*]}"
exit 1
