#!/usr/bin/env bash
# The GPU session's measurements as one detached chain (one H200; see docs/gpu.md). Parts, in the order
# they run (whatever the order they are named in):
#   speed   issue 6: benchmarks/trainer_speed.py at pr117, 80 steps: ours base (cold), ours mlp0,
#           upstream's record script, ours base again (warm); one shared compile cache; a per-kernel
#           profile of ours when the step-time ratio is over 1.03
#   compilegap  why h200-mini's cold compile (~366 s) is twice pr117's (~172 s): h200-mini cold as it is
#           (token windows, stage schedule, document cap) and cold with pr117's block windows, each in
#           its own fresh cache, 60 steps (~12 minutes)
#   sweeps  issue 7: sweeps/h200_ab.yaml through `ablate run` (its first run compiles cold and
#           publishes the node's cache to the spec's shared folder); then the node's cache is wiped
#           and sweeps/h200_drop_one_mlp.yaml runs: its first run must start seeded (warm)
#   ab, dropone  either sweep alone (dropone on a fresh machine compiles cold: ~12 minutes)
#   seeddemo  sweeps/h200_seed_demo.yaml twice, the node's cache wiped in between: the second run's
#           start-up is the seeded one (~9 minutes in all). After dropone (whose cold baseline has
#           the same graphs, and published them) only the seeded half runs (~1.5 minutes)
#   dropall the seed's whole drop-one-MLP figure at h200-mini (sweeps/drop_one_mlp.yaml --profile h200:
#           baseline, drop one of 0-11, drop 0 and one of 1-11; 24 runs), --time-limit ${TIME_LIMIT:-24m};
#           two sessions: the second resumes the results brought back (results/h200-drop-one-mlp-all)
#   textspread issue 18: sweeps/h200_text_spread.yaml (h200-mini on the real-text shards: baseline x4,
#           mlp_off=[11] x1): the run-to-run spread that sets the real-text figure's repeats (~13 min)
#   textspeed  issue 18: trainer_speed at pr117 on the real-text shards in $TEXT (default /tmp/text):
#           ours base (cold), then upstream's record script, validation budget 1,048,576 tokens on both
#           sides, as many steps as the corpus holds for upstream's non-cycling loader (at most 80)
#   textseeds issue 18: our spread at textspeed's length: trainer_speed at pr117 on the real-text shards,
#           seeds 0 (cold) and 1-${SEEDS:-3} (warm), no upstream (~9 min for 3), into h200_text_seeds.json
#   textdrop  issue 18: the seed's whole figure on the real-text shards (sweeps/drop_one_mlp.yaml
#           --profile h200-text, 41 runs), --time-limit ${TIME_LIMIT:-24m}, in parts over several sessions:
#           resumes results/h200-text-drop-one-mlp when it is in the checkout. Keep trainer/ (but for its
#           corpus builders, trainer/english/) unchanged in between: its source hash is part of the run ids
#   x8      issue 9 on nvidia-h200-x8: sweeps/speedrun_ab.yaml --profile synthetic (8 GPUs a run),
#           --time-limit ${TIME_LIMIT:-24m}. A later session resumes: carry the results brought back
#           (results/h200-x8-speedrun-ab, copied into $W/results first) and run the part again. Keep
#           trainer/ unchanged in between: its source hash is part of the run ids
# Start it detached from the repository root, then collect with benchmarks/h200_collect.sh:
#   setsid nohup bash benchmarks/h200_chain.sh /tmp/chain speed sweeps > /tmp/chain.log 2>&1 < /dev/null &
set -u
W=${1:-/tmp/chain}
shift || true
PARTS=${*:-speed sweeps}
mkdir -p "$W"
stamp() { echo "[chain $(date +%H:%M:%S)] $*"; }
trap 'stamp "done"' EXIT  # on every way out: h200_collect.sh --wait waits for this line
[ -f .devcarry/activate.sh ] || { echo "no .devcarry/activate.sh: on the CPU machine, bash scripts/make-ray-bundle.sh .devcarry, and carry .devcarry"; exit 1; }
source .devcarry/activate.sh
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1  # keep the bundle's path

has() { [[ " $PARTS " == *" $1 "* ]]; }
stamp "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); parts: $PARTS"
synthetic=0  # only the parts on synthetic shards make them
for part in speed sweeps ab dropone seeddemo compilegap dropall x8; do has "$part" && synthetic=1; done
if [ "$synthetic" = 1 ]; then
    stamp "synth"
    python3 -m trainer.data synth --out /tmp/shards --vocab-size 50257 --prefix fineweb \
        --train-tokens 60000000 --val-tokens 12000000 > "$W/synth.log" 2>&1 || { stamp "synth failed"; exit 1; }
fi
TEXT=${TEXT:-/tmp/text}
if has textspeed || has textspread || has textseeds || has textdrop; then
    n=$(ls "$TEXT"/fineweb_train_*.bin 2>/dev/null | wc -l)
    [ "$n" -gt 0 ] || { stamp "no real-text shards in $TEXT (copy them there first: docs/gpu.md)"; exit 1; }
    stamp "real-text shards in $TEXT: $n train, $(ls "$TEXT"/fineweb_val_*.bin | wc -l) val, $(du -sh "$TEXT" | cut -f1)"
fi

if has speed && [ -f .upstream/pr117_train_gpt.py ]; then
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

if has compilegap; then
    stamp "compile gap: h200-mini token vs block windows, each cold"
    python3 benchmarks/trainer_speed.py --preset h200-mini --steps 60 --data-dir /tmp/shards \
        --variant token: --variant block:window_granularity=block \
        --workdir "$W/gap" --out "$W/compile_gap.json" > "$W/compile_gap.log" 2>&1
    stamp "compile gap exit $?"
fi
ablate_run() {  # spec, results folder name, log name, extra arguments of `ablate run`
    stamp "ablate run $1 -> $2"
    python3 -m orchestrator.cli run "sweeps/$1.yaml" --results "$W/results/$2" --plain "${@:4}" > "$W/$3.log" 2>&1
    stamp "ablate run $1 exit $?; shared cache: $(ls -la /tmp/ablate-shared-cache 2>&1 | tail -n 1)"
}
wipe_node_cache() {
    stamp "wiping the node's compile cache: $(du -sh ~/.cache/ablate/compile 2>&1 | cut -f1)"
    rm -rf ~/.cache/ablate/compile
}
export TORCH_LOGS=recompiles  # the runs' own output (node scratch, collected) says what recompiled
if has sweeps || has ab; then ablate_run h200_ab h200-ab h200_ab; fi
if has sweeps; then wipe_node_cache; fi
if has sweeps || has dropone; then ablate_run h200_drop_one_mlp h200-drop-one-mlp h200_drop_one_mlp; fi
if has seeddemo; then
    # a sweep before it in this chain (dropone) has compiled the same graphs cold and published them:
    # then only the seeded half runs
    if [ ! -f /tmp/ablate-shared-cache/ablate-compile-cache.tar ]; then
        ablate_run h200_seed_demo h200-seed-demo-cold h200_seed_demo_cold
    fi
    wipe_node_cache
    ablate_run h200_seed_demo h200-seed-demo-seeded h200_seed_demo_seeded
fi
resume_carried() {  # a results folder brought back from an earlier session: copy it in, to resume it
    if [ -d "results/$1" ]; then
        mkdir -p "$W/results" && cp -r "results/$1" "$W/results/" && rm -f "$W/results/$1/.lock"
        stamp "resuming results/$1 ($(ls "$W/results/$1/runs" 2>/dev/null | wc -l) run(s) done)"
    fi
}
# sweeps in parts: no block starts that would not end within TIME_LIMIT of the sweep's start (exit 3
# while runs are left; the next session resumes)
if has dropall; then
    resume_carried h200-drop-one-mlp-all
    ablate_run drop_one_mlp h200-drop-one-mlp-all drop_one_mlp_all --profile h200 --time-limit "${TIME_LIMIT:-24m}"
fi
# issue 18: the real-text spread first (it plans the figure's repeats), then ours against upstream
if has textspread; then ablate_run h200_text_spread h200-text-spread h200_text_spread; fi
text_steps() {  # upstream's loader does not cycle: a step reads 8 sequences of 48 Ki tokens, each from a
    # document start (15 % kept for that alignment), and leaves the last 786,433 tokens of each shard
    # unread (its look-ahead window); at most 80 steps
    python3 -c "
import glob
from trainer.shards import read_header
n = sum(max(0, read_header(f) - 786433) for f in glob.glob('$TEXT/fineweb_train_*.bin'))
print(min(80, int(n * 0.85) // 393216))"
}
if has textspeed && [ -f .upstream/pr117_train_gpt.py ]; then
    steps=$(text_steps)
    stamp "trainer_speed on real text: $steps steps"
    python3 benchmarks/trainer_speed.py --preset pr117 --steps "$steps" --data-dir "$TEXT" --shared-cache \
        --val-tokens 1048576 --variant base: --upstream .upstream/pr117_train_gpt.py \
        --workdir "$W/textspeed" --out "$W/h200_text.json" > "$W/textspeed.log" 2>&1
    stamp "trainer_speed on real text exit $?"
fi
if has textseeds; then
    # our run-to-run spread at textspeed's length: seed 0 (cold) and seeds 1-3 (warm: same graphs), to
    # tell whether upstream's val loss there lies within it (its init is fixed, so a repeat would not)
    # SEEDS (default 3) warm seeds after seed 0: 1 fits what is left of a session after a sweep part
    steps=$(text_steps) seeds=${SEEDS:-3} variants=(--variant base:)
    case "$seeds" in
        '' | *[!0-9]*) stamp "SEEDS takes the number of warm seeds after seed 0 (e.g. SEEDS=3), got '$seeds'"; exit 2 ;;
    esac
    for s in $(seq 1 "$seeds"); do variants+=(--variant "s$s:seed=$s"); done
    stamp "trainer_speed on real text, seeds 0-$seeds: $steps steps"
    python3 benchmarks/trainer_speed.py --preset pr117 --steps "$steps" --data-dir "$TEXT" --shared-cache \
        --val-tokens 1048576 "${variants[@]}" \
        --workdir "$W/textseeds" --out "$W/h200_text_seeds.json" > "$W/textseeds.log" 2>&1
    stamp "trainer_speed seeds exit $?"
fi
if has textdrop; then
    resume_carried h200-text-drop-one-mlp
    ablate_run drop_one_mlp h200-text-drop-one-mlp drop_one_mlp_text --profile h200-text \
        --time-limit "${TIME_LIMIT:-24m}"
fi
# issue 9 (a machine of 8 GPUs): the seed's A/B at full scale
if has x8; then
    resume_carried h200-x8-speedrun-ab
    ablate_run speedrun_ab h200-x8-speedrun-ab speedrun_ab --profile synthetic --time-limit "${TIME_LIMIT:-24m}"
fi
