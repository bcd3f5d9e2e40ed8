"""``python -m trainer`` (or ``torchrun --nproc_per_node=N -m trainer``): one training run.

Usage errors (unknown knob, bad value, missing data) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from trainer.logfmt import stderr_line

EPILOG = """\
presets: {presets}

examples:
  python -m trainer --preset tiny                        # CPU, synthetic data, about a minute
  python -m trainer --preset tiny --set mlp_off=[0] --seed 1
  python -m trainer --preset tiny --set "ve_pattern=[null,0,1,null,null,null,null,null,null,null,0,1]"
  python -m trainer --preset tiny --set steps=20 --run-id r1 --log-dir logs
  torchrun --standalone --nproc_per_node=8 -m trainer --preset speedrun --data-dir data/fineweb10B
  python -m trainer --list-knobs                         # every knob: type, default, meaning

--set values are YAML literals (lists, null, true/false); --seed N is --set seed=N.
Without --data-dir the tiny preset generates (once) a synthetic corpus in $ABLATE_DATA_DIR or
~/.cache/ablate/data/synth-v1; other presets need --data-dir with *train*.bin and *val*.bin shards.

output: step lines on stdout (rank 0), as upstream modded-nanogpt:
  step:17/1705 train_time:1620ms step_avg:95.29ms
  step:1705/1705 val_loss:3.2806 train_time:163078ms step_avg:95.65ms
  peak memory allocated: 34489 MiB reserved: 48516 MiB
On CPU both memory numbers are the process's peak resident set size, and each process uses one
thread unless OMP_NUM_THREADS is set. With --run-id and --log-dir the run also writes DIR/ID.txt
(config header, then the same lines) and DIR/ID.metrics.jsonl (every step's train loss).

exit codes: 0 ok; 2 usage error (one line on stderr); 3 diverged (non-finite train loss;
the last stdout line is "diverged: non-finite train loss at step N"; --set lr_muon=3e38 forces
one: the soft-capped logits keep merely huge learning rates finite); anything else is a crash.
Under torchrun each rank exits so, but torchrun itself exits 1 when a rank fails: read the last
line or the metrics file's end event there.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        stderr_line(f"trainer: error: {message} (see python -m trainer --help)")
        sys.exit(2)


def build_parser(presets: list[str], default: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m trainer",
        description="Train the configurable modded-nanogpt speedrun model once.",
        epilog=EPILOG.format(presets=", ".join(presets)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default=None, help=f"one of {', '.join(presets)} (default: {default})")
    p.add_argument(
        "--set", action="append", default=[], metavar="KNOB=VALUE", help="override a knob (repeatable)"
    )
    p.add_argument("--seed", type=int, default=None, help="same as --set seed=N")
    p.add_argument("--data-dir", type=Path, default=None, help="folder of *train*.bin / *val*.bin shards")
    p.add_argument("--run-id", default=None, help="names the log files in --log-dir")
    p.add_argument("--log-dir", type=Path, default=None, help="where ID.txt and ID.metrics.jsonl go")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="profile a few training steps and write a per-kernel time table to FILE (slows them)",
    )
    p.add_argument("--list-knobs", action="store_true", help="print every knob and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    return p


def _resolve(args: argparse.Namespace):
    from trainer.config import parse_set, resolve

    overrides = dict(parse_set(args.set))
    if args.seed is not None:
        overrides["seed"] = args.seed
    return resolve(args.preset, overrides)


def _data_dir(args: argparse.Namespace) -> Path:
    from trainer.train import UsageError

    if args.data_dir is not None:
        return args.data_dir
    if args.preset != "tiny":
        raise UsageError(
            f"--preset {args.preset} needs --data-dir DIR (only tiny has built-in synthetic data)"
        )
    from trainer.corpus import ensure_synth

    return Path(ensure_synth())


def run_cli(argv: list[str]) -> int:
    """Parse ``argv``, run, return the exit code; usage errors become one stderr line and 2."""
    from trainer.config import DEFAULT_PRESET, PRESETS, ConfigError, config_to_dict, describe_knobs
    from trainer.data import DataError
    from trainer.train import RunOptions, UsageError, train

    args = build_parser(sorted(PRESETS), DEFAULT_PRESET).parse_args(argv)
    chosen = args.preset is not None or bool(args.set) or args.seed is not None
    args.preset = args.preset or DEFAULT_PRESET
    if args.list_knobs and not chosen:
        print(describe_knobs())
        return 0
    try:
        cfg = _resolve(args)
        if args.list_knobs:  # the values of the preset (and --set) asked for
            print(describe_knobs(cfg, args.preset))
            return 0
        if args.print_config:
            print(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True))
            return 0
        if (args.run_id is None) != (args.log_dir is None):
            raise UsageError(
                "--run-id and --log-dir go together (the logs are DIR/ID.txt, DIR/ID.metrics.jsonl); "
                "give both or neither"
            )
        opts = RunOptions(
            data_dir=_data_dir(args),
            run_id=args.run_id,
            log_dir=args.log_dir,
            device=args.device,
            profile=args.profile,
        )
        return train(cfg, opts)
    except (ConfigError, DataError, UsageError) as e:
        stderr_line(f"trainer: error: {e}")
        return 2


def main() -> None:
    try:
        code = run_cli(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`--list-knobs | head`): not an error of ours, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
