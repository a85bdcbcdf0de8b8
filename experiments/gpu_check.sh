#!/usr/bin/env bash
# One short run on a GPU machine that proves `--device cuda` end to end and times it:
# libtorch's CUDA backend, `bench model` on cuda and (2 threads) on cpu side by side,
# closed-loop planning with the shipped push_t committee on cuda (one sandbox, then ten
# served at once), and a push_t training run on cuda.
#
#   experiments/gpu_check.sh OUT
#
# Needs `hjepa` on PATH (a release build; libtorch through its rpath or LD_LIBRARY_PATH)
# and the committee's trained runs under runs/ (runs/push_t_committee/seed0..3 and
# runs/push_t_state, as agents/push_t_committee.toml names them). It collects its own data.
# Every step runs under its own time limit, logs to OUT/<step>.log and goes on after a
# failure, so one run reports every step.
set -u
out=${1:?usage: gpu_check.sh OUT}
mkdir -p "$out"
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s%N)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$? t1=$(date +%s%N)
  echo "=== $name: rc=$rc, $(((t1 - t0) / 1000000)) ms: $*"
  tail -n "${TAIL:-12}" "$out/$name.log"
}
export RUST_BACKTRACE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
step info 30 hjepa info
TAIL=30 step bench-model-cuda 100 hjepa bench model --device cuda --seconds 1
step collect-val 60 hjepa collect --scene push_t --episodes 500 --policy near-body --seed 2 --out data/push_t_val500
eval_args=(--agent agents/push_t_committee.toml --goals-from data/push_t_val500 --episodes 100
  --max-steps 50 --success tee_pose --no-random-floor --device cuda)
step eval-cuda 150 hjepa eval "${eval_args[@]}" --out "$out/eval-cuda.jsonl"
step eval-cuda-parallel10 120 hjepa eval "${eval_args[@]}" --parallel 10 --out "$out/eval-cuda-p10.jsonl"
step collect-train 60 hjepa collect --scene push_t --episodes 2000 --policy near-body --seed 1 --out data/push_t
step train-cuda 120 hjepa train --agent agents/push_t_committee.toml --data data/push_t --device cuda --steps 3000 --out runs/gpu_check_train
tail -n 2 runs/gpu_check_train/metrics.jsonl 2>/dev/null | cut -c1-400
TAIL=30 OMP_NUM_THREADS=2 step bench-model-cpu2 100 hjepa bench model --device cpu --seconds 1
