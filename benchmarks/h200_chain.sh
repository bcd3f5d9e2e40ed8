#!/usr/bin/env bash
# The GPU session's measurements as one detached chain (one H200; see docs/gpu.md). Parts, in order:
#   speed   issue 6: benchmarks/trainer_speed.py at pr117, 80 steps: ours base (cold), ours mlp0,
#           upstream's record script, ours base again (warm); one shared compile cache; a per-kernel
#           profile of ours when the step-time ratio is over 1.03
#   sweeps  issue 7: sweeps/h200_ab.yaml through `ablate run` (its first run compiles cold and
#           publishes the node's cache to the spec's shared folder); then the node's cache is wiped
#           and sweeps/h200_drop_one_mlp.yaml runs: its first run must start seeded (warm)
# Start it detached from the repository root, then collect with benchmarks/h200_collect.sh:
#   setsid nohup bash benchmarks/h200_chain.sh /tmp/chain speed sweeps > /tmp/chain.log 2>&1 < /dev/null &
set -u
W=${1:-/tmp/chain}
shift || true
PARTS=${*:-speed sweeps}
mkdir -p "$W"
source .devcarry/activate.sh
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1  # keep the bundle's path
stamp() { echo "[chain $(date +%H:%M:%S)] $*"; }

stamp "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); parts: $PARTS"
stamp "synth"
python3 -m trainer.data synth --out /tmp/shards --vocab-size 50257 --prefix fineweb \
    --train-tokens 60000000 --val-tokens 12000000 > "$W/synth.log" 2>&1 || { stamp "synth failed"; exit 1; }

if [[ " $PARTS " == *" speed "* ]] && [ -f .upstream/pr117_train_gpt.py ]; then
    stamp "trainer_speed"
    python3 benchmarks/trainer_speed.py --preset pr117 --steps 80 --data-dir /tmp/shards --shared-cache \
        --variant base: --variant 'mlp0:mlp_off=[0]' --upstream .upstream/pr117_train_gpt.py --warm base: \
        --workdir "$W/speed" --out "$W/h200.json" > "$W/speed.log" 2>&1
    stamp "trainer_speed exit $?"
    over=$(python3 -c "import json; r=json.load(open('$W/h200.json')).get('ratio_ours_over_upstream'); print(int(r is not None and r > 1.03))")
    if [ "$over" = 1 ]; then
        stamp "profile (ratio over 1.03)"
        TORCHINDUCTOR_CACHE_DIR=$W/speed/cache-shared/inductor TRITON_CACHE_DIR=$W/speed/cache-shared/triton \
            python3 -m trainer --preset pr117 --set steps=30 --data-dir /tmp/shards \
            --profile "$W/pr117.profile.txt" > "$W/profile.log" 2>&1
        stamp "profile exit $?"
    fi
fi

if [[ " $PARTS " == *" sweeps "* ]]; then
    export TORCH_LOGS=recompiles  # the runs' own output (node scratch, collected) says what recompiled
    stamp "ablate run h200_ab"
    python3 -m orchestrator.cli run sweeps/h200_ab.yaml --results "$W/results/h200-ab" --plain \
        > "$W/h200_ab.log" 2>&1
    stamp "ablate run h200_ab exit $?; shared cache: $(ls -la /tmp/ablate-shared-cache 2>&1 | tail -n 1)"
    stamp "wiping the node's compile cache: $(du -sh ~/.cache/ablate/compile 2>&1 | cut -f1)"
    rm -rf ~/.cache/ablate/compile
    stamp "ablate run h200_drop_one_mlp"
    python3 -m orchestrator.cli run sweeps/h200_drop_one_mlp.yaml --results "$W/results/h200-drop-one-mlp" \
        --plain > "$W/h200_drop_one_mlp.log" 2>&1
    stamp "ablate run h200_drop_one_mlp exit $?"
fi
stamp "done"
