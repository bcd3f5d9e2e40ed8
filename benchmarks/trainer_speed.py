"""Trainer speed on the GPU it runs on, and side by side with upstream's record script.

Prints, per variant: step time at the last step, tokens/s, peak memory, estimated MFU,
final val loss, and start-up time (wall time minus train_time: compile, warm-up, validation).
With --upstream, runs upstream's script (fetched into a git-ignored folder, never committed)
on the same shards and schedule, one run after the other on the same GPU, and writes the
ratios into --out (e.g. benchmarks/results/h200.json).

    PYTHONPATH=$PWD python3 benchmarks/trainer_speed.py --preset pr117 --steps 80 \
        --data-dir /tmp/shards --upstream .upstream/pr117_train_gpt.py \
        --variant base: --variant mlp0:mlp_off=[0] --warm base: --out benchmarks/results/h200.json

Order: the variants, then upstream, then the `--warm` repeats, then the `--profile` run. Each
variant compiles into its own fresh cache folder (a cold start) unless `--shared-cache` puts all
runs in one folder (the first variant is then the cold start, later variants start as a new
variant on a warm machine, which saves GPU time); `--warm NAME` repeats that variant with the
cache it left behind (a warm start). A base run repeated after upstream brackets upstream in
time: `ours_step_ms` is the mean of our base runs, so a drift of the GPU during the chain cancels.
`--profile NAME` runs that variant once more with the trainer's `--profile` (a per-kernel table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.logs import parse_log_text

# dense bf16 tensor-core peak in FLOP/s, for the MFU estimate (vendor figures, no sparsity)
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


@dataclass
class Measured:
    name: str
    step_ms: float | None
    train_time_s: float | None
    val_loss: float | None
    peak_mib: float | None
    wall_s: float
    startup_s: float | None
    tokens_per_s: float | None
    mfu: float | None
    exit_code: int
    compile: dict[str, float] | None = None
    """The trainer's `compile:` line (torch.compile's timers: compile_s, inductor_s, frames, ...; the
    warm-up and validation times), None where it printed none (compile off, upstream's script)."""


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "cpu"


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def model_flops_per_token(preset: str, sets: list[str]) -> tuple[float, int]:
    """6 × (weight-matrix parameters the tokens pass through) per token: forward + backward of
    the blocks' matrices and the head (embedding look-ups are free, attention scores not counted)."""
    from trainer.config import parse_set, resolve
    from trainer.model import build_model

    cfg = resolve(preset, parse_set(sets))
    model = build_model(cfg, "meta")
    groups = model.param_groups()
    n = sum(p.numel() for p in groups["hidden"] + groups["head"])
    return 6.0 * n, cfg.batch_tokens


def run_once(name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[str, float, int]:
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    return log.read_text(errors="replace"), wall, proc.returncode


def measure(
    name: str,
    text: str,
    wall: float,
    code: int,
    flops_tok: float | None,
    tokens: int | None,
    peak: float | None,
) -> Measured:
    parsed = parse_log_text(text)
    train_s = parsed.train_time_ms / 1000 if parsed.train_time_ms else None
    tps = tokens * parsed.last_step / train_s if (tokens and train_s and parsed.last_step) else None
    mfu = flops_tok * tps / peak if (flops_tok and tps and peak) else None
    step_ms = None
    if parsed.steps:
        train_lines = [s for s in parsed.steps if s.val_loss is None]
        step_ms = (train_lines or list(parsed.steps))[-1].step_avg_ms
    return Measured(
        name,
        step_ms,
        train_s,
        parsed.final_val_loss,
        parsed.peak_mem_mib,
        wall,
        wall - train_s if train_s else None,
        tps,
        mfu,
        code,
        compile_timers(text),
    )


def compile_timers(text: str) -> dict[str, float] | None:
    """`compile: compile_s:366.12 inductor_s:357.24 frames:8 ... warmup_ms:317834` -> {name: number}."""
    lines = [ln for ln in text.splitlines() if ln.startswith("compile: ")]
    if not lines:
        return None
    out = {}
    for item in lines[-1].split()[1:]:
        key, _, value = item.partition(":")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def _set_hyperparameter(text: str, name: str, value: int, script: Path) -> str:
    """``name = 123`` (or ``name: int = 123``) in upstream's Hyperparameters set to ``value``."""
    text, n = re.subn(rf"\b{name}(\s*:\s*int)?\s*=\s*[\d*]+", rf"{name}\g<1> = {value}", text, count=1)
    if n != 1:
        sys.exit(f"trainer_speed: could not find {name} in {script}")
    return text


def upstream_copy(script: Path, steps: int, workdir: Path, val_tokens: int | None = None) -> Path:
    """A temporary copy of upstream's script with its schedule shortened and, with ``val_tokens``,
    its validation budget set (never committed)."""
    text = _set_hyperparameter(script.read_text(), "num_iterations", steps, script)
    if val_tokens is not None:
        text = _set_hyperparameter(text, "val_tokens", val_tokens, script)
    out = workdir / "upstream_train_gpt.py"
    out.write_text(text)
    return out


def upstream_log_folder(text: str) -> str:
    """The folder under logs/ that upstream's ``run_id`` names ('' when it names none)."""
    m = re.search(r"""run_id\s*=\s*f?['"]([^'"{]*)/""", text)
    return m.group(1) if m else ""


def upstream_val_shortfall(text: str, data_dir: Path) -> str | None:
    """Why upstream's validation loader would stop on the shards in ``data_dir`` (None when it would
    not). It reads windows of grad_accum x world = 8 sequences of ``val_seq_len`` tokens, whatever
    ``val_tokens`` is, and loads the next shard (there is none) unless one window plus two tokens fit."""
    from trainer.shards import read_header

    m = re.search(r"\bval_seq_len\s*(?::\s*int)?\s*=\s*([\d*]+)", text)
    if m is None:
        return None
    need = 8 * math.prod(int(x) for x in m.group(1).split("*") if x) + 2
    have = max((read_header(f) for f in sorted(data_dir.glob("fineweb_val_*.bin"))), default=0)
    if have >= need:
        return None
    return (
        f"upstream's validation loader needs {need:,} tokens in one fineweb_val_*.bin shard (8 x its "
        f"val_seq_len, plus 2); the largest in {data_dir} holds {have:,}: make a larger validation split "
        "(ablate data english --val-tokens N, ablate data synth --val-tokens N)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="pr117")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--data-dir", required=True, help="folder with fineweb_train_*.bin / fineweb_val_*.bin")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:KNOB=VALUE,KNOB=VALUE (our trainer); e.g. base: or mlp0:mlp_off=[0]",
    )
    ap.add_argument(
        "--warm",
        action="append",
        default=[],
        help="NAME:KNOB=VALUE,... run again on the cache its cold run left (a warm start)",
    )
    ap.add_argument("--upstream", type=Path, help="upstream record script to compare with")
    ap.add_argument(
        "--val-tokens",
        type=int,
        metavar="N",
        help="validation tokens per evaluation on both sides (ours: --set val_tokens=N; upstream's "
        "val_tokens); for a corpus whose validation split is smaller than the preset's budget",
    )
    ap.add_argument(
        "--shared-cache",
        action="store_true",
        help="one compile cache for every run (only the first variant starts cold)",
    )
    ap.add_argument(
        "--profile",
        metavar="NAME",
        help="after the timed runs, run variant NAME once more with a per-kernel profile",
    )
    ap.add_argument("--nproc", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ablate-bench"))
    ap.add_argument("--out", type=Path, help="write the comparison JSON here")
    args = ap.parse_args(argv)

    if args.upstream:  # before any run: the loader's stop comes only after its ~7 minutes of compile
        short = upstream_val_shortfall(args.upstream.read_text(), Path(args.data_dir))
        if short:
            sys.exit(f"trainer_speed: {short}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    gpu = gpu_name()
    peak = peak_flops(gpu)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
    ]
    results: dict[str, Measured] = {}

    fresh_done: set[str] = set()

    def env_for(cache_key: str, fresh: bool) -> dict[str, str]:
        if args.shared_cache:
            cache_key, fresh = "shared", "shared" not in fresh_done
            fresh_done.add("shared")
        cache = args.workdir / f"cache-{cache_key}"
        if fresh and cache.exists():
            shutil.rmtree(cache)
        env = dict(os.environ, PYTHONUNBUFFERED="1", DATA_PATH=str(args.data_dir))
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
        env["TRITON_CACHE_DIR"] = str(cache / "triton")
        return env

    def parse_variant(spec: str) -> tuple[str, list[str]]:
        name, _, sets_text = spec.partition(":")
        return name, [s for s in re.split(r",(?![^\[]*\])", sets_text) if s]

    def ours(spec: str, warm: bool, profile: Path | None = None) -> None:
        name, sets = parse_variant(spec)
        cmd = [
            *torchrun,
            "-m",
            "trainer",
            "--preset",
            args.preset,
            "--set",
            f"steps={args.steps}",
            "--data-dir",
            str(args.data_dir),
        ]
        if args.val_tokens:
            cmd += ["--set", f"val_tokens={args.val_tokens}"]
        for s in sets:
            cmd += ["--set", s]
        label = f"{name}-warm" if warm else name
        if profile is not None:
            cmd += ["--profile", str(profile)]
            label = f"{name}-profile"
        text, wall, code = run_once(
            label,
            cmd,
            env_for(name, fresh=not warm and profile is None),
            Path.cwd(),
            args.workdir / f"{label}.log",
        )
        flops = model_flops_per_token(args.preset, sets)
        results[label] = measure(label, text, wall, code, flops[0], flops[1], peak)
        if args.out:  # after every run, so a cut-off chain keeps what it measured
            write_summary(args, gpu, results)

    for spec in args.variant:
        ours(spec, warm=False)

    if args.upstream:
        script = upstream_copy(args.upstream.resolve(), args.steps, args.workdir, args.val_tokens)
        up_dir = args.workdir / "upstream"
        (up_dir / "data").mkdir(parents=True, exist_ok=True)
        # the script appends to logs/<run_id>.txt and makes only logs/: a run_id such as
        # f'final/{uuid}' (the record logs' copy of the script) needs its folder made
        (up_dir / "logs" / upstream_log_folder(script.read_text())).mkdir(parents=True, exist_ok=True)
        link = up_dir / "data" / "fineweb10B"
        if not link.exists():
            link.symlink_to(Path(args.data_dir).resolve())
        env = env_for("upstream", fresh=True)
        env["DATA_PATH"] = str(up_dir)
        text, wall, code = run_once(
            "upstream", [*torchrun, str(script)], env, up_dir, args.workdir / "upstream.log"
        )
        flops = model_flops_per_token(args.preset, [])
        results["upstream"] = measure("upstream", text, wall, code, flops[0], flops[1], peak)
        if args.out:
            write_summary(args, gpu, results)

    for spec in args.warm:
        ours(spec, warm=True)

    if args.profile:
        spec = next((v for v in args.variant if parse_variant(v)[0] == args.profile), None)
        if spec is None:
            sys.exit(f"trainer_speed: --profile {args.profile}: no --variant of that name")
        ours(spec, warm=True, profile=args.workdir / f"{args.profile}.profile.txt")
        print(f"per-kernel profile: {args.workdir / f'{args.profile}.profile.txt'}")

    print(f"\nGPU: {gpu}   preset: {args.preset}   steps: {args.steps}")
    print(
        f"{'variant':<14}{'step ms':>9}{'train s':>9}{'tok/s':>12}{'MFU':>7}{'peak MiB':>10}"
        f"{'val loss':>10}{'start-up s':>12}{'inductor s':>12}{'exit':>6}"
    )
    for m in results.values():
        fmt = lambda v, f: format(v, f) if v is not None else "-"
        print(
            f"{m.name:<14}{fmt(m.step_ms, '9.2f')}{fmt(m.train_time_s, '9.2f')}"
            f"{fmt(m.tokens_per_s, '12,.0f')}"
            f"{fmt(m.mfu and 100 * m.mfu, '6.1f')}%{fmt(m.peak_mib, '10.0f')}{fmt(m.val_loss, '10.4f')}"
            f"{fmt(m.startup_s, '12.1f')}{fmt(m.compile and m.compile.get('inductor_s'), '12.1f')}"
            f"{m.exit_code:>6}"
        )
    if args.out:
        write_summary(args, gpu, results)
    return 0 if all(m.exit_code == 0 for m in results.values()) else 1


def write_summary(args: argparse.Namespace, gpu: str, results: dict[str, Measured]) -> None:
    import torch

    up, base = results.get("upstream"), results.get("base")
    mlp0, warm = results.get("mlp0"), results.get("base-warm")
    ratio = lambda a, b: round(a / b, 4) if (a and b) else None
    base_steps = [m.step_ms for m in (base, warm) if m and m.step_ms]
    ours_ms = round(sum(base_steps) / len(base_steps), 2) if base_steps else None
    summary = {
        "gpu": gpu,
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "steps": args.steps,
        "preset": args.preset,
        "data_dir": str(args.data_dir),
        "val_tokens": args.val_tokens,
        "upstream_step_ms": up and up.step_ms,
        "ours_step_ms": ours_ms,
        "ours_step_ms_runs": base_steps,
        "ratio_ours_over_upstream": ratio(ours_ms, up and up.step_ms),
        "ours_mlp0_step_ms": mlp0 and mlp0.step_ms,
        "mlp0_ratio": ratio(mlp0 and mlp0.step_ms, ours_ms),
        "shared_cache": args.shared_cache,
        "upstream_peak_mib": up and up.peak_mib,
        "ours_peak_mib": base and base.peak_mib,
        "upstream_val_loss": up and up.val_loss,
        "ours_val_loss": base and base.val_loss,
        "cold_startup_s": base and base.startup_s and round(base.startup_s, 1),
        "warm_startup_s": warm and warm.startup_s and round(warm.startup_s, 1),
        "upstream_cold_startup_s": up and up.startup_s and round(up.startup_s, 1),
        "runs": {k: asdict(v) for k, v in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
