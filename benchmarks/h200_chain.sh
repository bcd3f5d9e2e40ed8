#!/usr/bin/env bash
# The GPU session's measurements as one detached chain (one H200; see docs/gpu.md):
#   1. synthetic shards in /tmp/shards
#   2. issue 6: benchmarks/trainer_speed.py at pr117, 80 steps: ours base (cold), ours mlp0,
#      upstream's record script, ours base again (warm); one shared compile cache
#   3. a per-kernel profile of ours when the step-time ratio is over 1.03
#   4. issue 7: the h200 sweeps through `ablate run` (resumable: a cut-off sweep keeps its runs)
# Start it detached from the repository root, then collect with benchmarks/h200_collect.sh:
#   setsid nohup bash benchmarks/h200_chain.sh /tmp/chain > /tmp/chain.log 2>&1 < /dev/null &
set -u
W=${1:-/tmp/chain}
mkdir -p "$W"
source .devcarry/activate.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
stamp() { echo "[chain $(date +%H:%M:%S)] $*"; }

stamp "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
stamp "synth"
python3 -m trainer.data synth --out /tmp/shards --vocab-size 50257 --prefix fineweb \
    --train-tokens 60000000 --val-tokens 12000000 > "$W/synth.log" 2>&1 || { stamp "synth failed"; exit 1; }

if [ -f .upstream/pr117_train_gpt.py ] && [ ! -f "$W/speed.done" ]; then
    stamp "trainer_speed"
    python3 benchmarks/trainer_speed.py --preset pr117 --steps 80 --data-dir /tmp/shards --shared-cache \
        --variant base: --variant 'mlp0:mlp_off=[0]' --upstream .upstream/pr117_train_gpt.py --warm base: \
        --workdir "$W/speed" --out "$W/h200.json" > "$W/speed.log" 2>&1
    stamp "trainer_speed exit $?"
    touch "$W/speed.done"
    over=$(python3 -c "import json,sys; r=json.load(open('$W/h200.json')).get('ratio_ours_over_upstream'); print(int(r is not None and r > 1.03))")
    if [ "$over" = 1 ]; then
        stamp "profile (ratio over 1.03)"
        TORCHINDUCTOR_CACHE_DIR=$W/speed/cache-shared/inductor TRITON_CACHE_DIR=$W/speed/cache-shared/triton \
            python3 -m trainer --preset pr117 --set steps=30 --data-dir /tmp/shards \
            --profile "$W/pr117.profile.txt" > "$W/profile.log" 2>&1
        stamp "profile exit $?"
    fi
fi

for sweep in h200_ab h200_drop_one_mlp; do
    out=$W/results/${sweep//_/-}
    stamp "ablate run $sweep"
    python3 -m orchestrator.cli run "sweeps/$sweep.yaml" --results "$out" --plain > "$W/$sweep.log" 2>&1
    stamp "ablate run $sweep exit $?"
done
stamp "done"
