#!/usr/bin/env bash
# The main job on the embedded default: make a synthetic dataset, check it, run a small search on
# CPU, report the leaderboard, build an ensemble submission and validate it.
# Usage: scripts/demo.sh PYTHON RUNS_DIR. Each run writes a new timestamped folder in RUNS_DIR.
set -euo pipefail
py=${1:-.venv/bin/python}
runs=${2:-runs/demo}
out="$runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$runs"
out=$(cd "$runs" && pwd)/$(basename "$out")
data="$out/data"
experiment="$out/ray_results/demo"

step() { printf '\n==> %s\n' "$*"; }

step "Synthetic dataset (32 train + 8 test images, 256 px) in $data"
"$py" -m data.synth "$data" --train 32 --test 8 --size 256 --seed 0
"$py" -m data.check "$data"

step "Search: 8 trials of the small CPU space, ASHA early stopping"
"$py" search/run_search.py --num-samples 8 --space search/spaces/cpu_small.yaml \
    --data-root "$data" --storage-path "$out/ray_results" --name demo

step "Leaderboard and plots"
"$py" -m results.report "$experiment" --out "$out/report"

step "Ensemble: greedy selection of up to 5 members on the validation fold, soft voting"
"$py" ensemble/build.py --experiment "$experiment" --selection greedy --top-k 5 \
    --images "$data/test/DCM" \
    --out "$out/submission.csv" --overlays "$out/overlays"
"$py" ensemble/validate.py "$out/submission.csv" --images "$data/test/DCM"

step "Done. Everything is in $out"
