#!/usr/bin/env bash
# One command for a GPU machine (no network needed): build the deployconv torch extension, run the GPU parity
# tests, run the kernel benchmark.
#
#   tools/gpu_check.sh [--quick] [--no-bench]
#
# Runs with `python` from PATH (a torch build with CUDA, e.g. a machine's preinstalled one; $PYTHON overrides)
# and PYTHONPATH = the repository root, so no install is needed. Logs, the tests' JUnit XML and the benchmark
# JSON go to $OUT when set, else build/gpu_check/. The extension is cached in ~/.cache/deployconv/torch_ext
# ($DEPLOYCONV_CACHE overrides). Every stage runs even if an earlier one failed; the exit code is 0 only if all
# passed. --quick: the benchmark's smoke mode (batch 1, fewer samples).
set -uo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
PY="${PYTHON:-python}"
OUT_DIR="${OUT:-$REPO/build/gpu_check}"
BENCH_ARGS=()
RUN_BENCH=1
for arg in "$@"; do
  case "$arg" in
    --quick) BENCH_ARGS+=(--quick) ;;
    --no-bench) RUN_BENCH=0 ;;
    *) echo "usage: tools/gpu_check.sh [--quick] [--no-bench]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT_DIR"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
failed=()

stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }

stage "environment"
{
  "$PY" - <<'EOF'
import platform, shutil, subprocess, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| torch CUDA", torch.version.cuda)
print("cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB")
nvcc = shutil.which("nvcc")
print("nvcc:", nvcc)
if nvcc:
    print(subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1])
EOF
  command -v nvidia-smi >/dev/null && nvidia-smi
} 2>&1 | tee "$OUT_DIR/environment.txt"

stage "build the torch extension"
"$PY" -c "from deployconv.plugins.cuda_ext import load_extension as l; m = l(verbose=True); print('built', m.__file__)" \
  2>&1 | tee "$OUT_DIR/build.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(build)

stage "GPU parity tests"
if "$PY" -c "import pytest" 2>/dev/null; then
  "$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider --junitxml="$OUT_DIR/gpu_tests.xml" 2>&1 \
    | tee "$OUT_DIR/gpu_tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(tests)
else
  echo "pytest is not installed for $PY: GPU tests not run" | tee "$OUT_DIR/gpu_tests.log"
  failed+=(tests)
fi

if [ "$RUN_BENCH" -eq 1 ]; then
  stage "kernel benchmark"
  "$PY" -m benchmarks.gpu_kernels ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} --out-dir "$OUT_DIR" 2>&1 \
    | tee "$OUT_DIR/benchmark.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(benchmark)
fi

stage "summary"
if [ "${#failed[@]}" -eq 0 ]; then
  echo "all stages passed; outputs in $OUT_DIR"
  exit 0
fi
echo "failed: ${failed[*]}; outputs in $OUT_DIR"
exit 1
