#!/usr/bin/env bash
# One device check: every benchmark at gemma-2-2b dimensions (random weights, bf16) on CUDA, with ratios
# against plain HF and lower bounds measured in the same run, and one summary table at the end. A step that
# fails prints its log's tail and the others still run; the script exits 1 at the end if any failed.
# Budget: <= 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh             # on a CUDA machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry-run   # (or SAETUI_GPU_CHECK_CPU=1) the same commands, tiny preset, on CPU
#
# Logs go to ${OUT:-/tmp}/gpu_check/*.log. On a box without a package registry, carry what it lacks as wheels:
# benchmarks/gpu_wheels.sh fetches them and says how to install them there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
DRY=${SAETUI_GPU_CHECK_CPU:-0}
[[ "${1:-}" == "--dry-run" ]] && DRY=1
LOGS=${OUT:-/tmp}/gpu_check
mkdir -p "$LOGS"

if [[ "$DRY" == 1 ]]; then
  DEV=(--device cpu --dtype float32 --preset tiny); DEVICE=cpu
  ROUNDS=1; NEW=8; DOCS=16; DOC_TOKENS=32; BATCH=8; INDEX_ROUNDS=1
  export SAETUI_COMPILE_BACKEND=${SAETUI_COMPILE_BACKEND:-aot_eager}  # inductor codegen takes minutes on CPU
  echo "gpu_check: dry run on CPU (tiny preset, 1 round): checks the commands, not the numbers"
else
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'torch missing')):" \
         "this script measures the GPU path; run it on a CUDA machine, or pass --dry-run to check the commands on CPU" >&2
    exit 2
  fi
  DEV=(--device cuda --dtype bfloat16 --preset gemma-2-2b); DEVICE=cuda
  ROUNDS=5; NEW=64; DOCS=2000; DOC_TOKENS=128; BATCH=64; INDEX_ROUNDS=3
  "$PY" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
fi

start=$SECONDS
failed=()
run() {  # name, command...: run it and keep its log; a failure prints the log's tail and the next step runs
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*"
  if ! "$@" > "$LOGS/$name.log" 2>&1; then
    tail -n 30 "$LOGS/$name.log"; echo "gpu_check: $name failed (log: $LOGS/$name.log); going on" >&2
    failed+=("$name")
    return 0
  fi
  echo "   done in $((SECONDS - t0)) s"
}

run analysis "$PY" benchmarks/bench_analysis.py "${DEV[@]}" --rounds $((ROUNDS * 2)) --no-sae-lens
run steering "$PY" benchmarks/bench_steering.py "${DEV[@]}" --rounds "$ROUNDS" --new-tokens "$NEW" --compile --only-compiled --no-sae-lens
# the same first steer in a new process: a restarted app's compile, on the caches the run above left on disk
run restart "$PY" benchmarks/bench_steering.py "${DEV[@]}" --new-tokens "$NEW" --compile --first-steer-only --no-sae-lens
run equal "$PY" benchmarks/check_decode_equal.py --device "$DEVICE" --new-tokens "$((NEW < 24 ? NEW : 24))"
run circuit "$PY" benchmarks/bench_circuit.py "${DEV[@]}" --rounds "$INDEX_ROUNDS" --tokens "$((NEW < 32 ? 16 : 32))" --steps "$((NEW < 32 ? 4 : 10))"
run index "$PY" benchmarks/bench_index.py "${DEV[@]}" --rounds "$INDEX_ROUNDS" --docs "$DOCS" --doc-tokens "$DOC_TOKENS" --batch-size "$BATCH"

pick() { grep -m1 -E "$2" "$LOGS/$1.log" || echo "  (missing: $2)"; }
echo
echo "== gpu_check summary ($((SECONDS - start)) s; ratios against plain HF / bare loops in the same process)"
grep -m1 '^device=' "$LOGS/analysis.log" || true
echo "-- analyze (128 tokens): ours vs (a) full HF forward + encode and (b) the truncated-forward lower bound"
grep -A5 '^batch 1x128' "$LOGS/analysis.log" | grep -E 'ours  |\(a\)|\(b\)|faster' || true
echo "-- steered decode, batch 1, greedy $NEW tokens (tokens/s; x plain eager model.generate; share of the bandwidth bound)"
grep -E 'first steer|plain HF generate|ours, add|ours, clamp|batched|then steered|bandwidth bound|identical|decoder:|step profile|decode loop alone' "$LOGS/steering.log" || true
grep -E 'first steer' "$LOGS/restart.log" 2>/dev/null | sed 's/first steer:/first steer after a restart:/' || true
echo "-- static and compiled decoding vs the eager loop (the demo: two SAEs, every scope form, clamp, chat)"
grep -E 'equal=' "$LOGS/equal.log" | awk '{print "  " $0}' || true
echo "-- feature circuit (every layer's SAE)"
pick circuit '^circuit:'
echo "-- index build"
pick index '^build:'
echo "-- peak GPU memory per benchmark"
grep -h 'peak GPU memory' "$LOGS"/*.log || echo "  (not on CUDA)"
if (( ${#failed[@]} )); then
  echo "gpu_check: failed steps: ${failed[*]} (logs in $LOGS)" >&2
  exit 1
fi
