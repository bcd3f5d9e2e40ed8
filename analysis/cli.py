"""`ablate report` and `ablate compare`: thin `cmd_*` functions over the analysis library.

Imported by `orchestrator/cli.py` when it builds its parser; imports neither Ray nor torch.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from analysis import InputError
from analysis.stats import DEFAULT_TARGET  # numpy only: the tests import scipy.special where they run

COMPARE_EPILOG = """\
Three ways to name the logs:
  ablate compare records/track_1_short/2025-09-05_SkipMLPBlocks
      a record folder, split by upstream's conventions: its comparison_* files are the baseline and the
      other logs beside them the candidate; or one subfolder per arm (master-s1480/ + xsa-gated-s1410/),
      the baseline's named baseline, master or comparison, else by --baseline NAME
  ablate compare --baseline-logs 'DIR/comparison_*' --candidate-logs DIR
      two arms, each a folder (read with its subfolders), a glob or a file. A file matched by a glob on
      one side and a folder on the other belongs to the glob's arm (paths are compared resolved, however
      spelled); any other file in both arms is an error. --exclude-prefix / --include-prefix filter both
      arms by file name.
  ablate compare --logs DIR_OR_GLOB
      one set of runs (a folder read with its subfolders): the record rule and train times only.
Logs are *.txt, *.log and *.out files, also gzip-compressed (*.txt.gz), with upstream's code header, our
trainer's, or none (a stdout capture; `torchrun --tee` prefixes such as [default0]: are dropped). One run
counts once: a copy within an arm (the same bytes, or the same step lines: CRLF ends, a tee capture, a
note added) is counted once with a warning; the same run in both arms is an error. A file holding several
runs (step 0 again after a later step) is not counted, with a warning: split it. Only logs that reached
their last step with a final val line (status ok) are used; the others are counted per arm with their
reasons, and listed when few (all with --verbose); a diverged run also warns. An arm that pools runs of
different step counts or different training code (by the log header) gets a warning; --strict makes
every warning an error (exit 2).
"""


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write report.md, report.html and figures for a results folder",
        description="Statistics, figures and a verdict for a results folder (results/<sweep name>).",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="the sweep's results folder")
    p.set_defaults(func=cmd_report)
    return p


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="compare two sets of training logs (record validation from logs alone)",
        description="The record rule and the timing comparison for two sets of modded-nanogpt logs.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "record_dir", nargs="?", metavar="RECORD_DIR", help="an upstream record folder (see below)"
    )
    p.add_argument("--baseline", metavar="NAME", help="the record folder's subfolder of baseline logs")
    p.add_argument("--baseline-logs", metavar="DIR_OR_GLOB", help="the previous record's logs")
    p.add_argument("--candidate-logs", metavar="DIR_OR_GLOB", help="the new run's logs")
    p.add_argument("--logs", metavar="DIR_OR_GLOB", help="one set of runs: record rule and times only")
    p.add_argument(
        "--target",
        metavar="LOSS",
        help=f"val loss of the record rule (default {DEFAULT_TARGET}); 'none' skips the test (synthetic)",
    )
    p.add_argument("--exclude-prefix", metavar="PREFIX", help="skip files whose name starts with PREFIX")
    p.add_argument("--include-prefix", metavar="PREFIX", help="only files whose name starts with PREFIX")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of text")
    p.add_argument("--verbose", action="store_true", help="list every skipped file with its reason")
    p.add_argument("--strict", action="store_true", help="a warning is an error (exit 2)")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report_verdict

    paths, verdict = write_report_verdict(args.results_dir)
    print(f"verdict: {verdict}")
    print(f"report: {paths['md']}")
    print(f"html: {paths['html']}")
    return 0


def parse_target(text: str | None) -> float | None:
    """--target: None (not given) is the record rule's DEFAULT_TARGET; 'none' skips the test."""
    if text is None:
        return DEFAULT_TARGET
    if str(text).strip().lower() in ("none", "null", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"--target: {text!r} is not a number; give a val loss such as {DEFAULT_TARGET}, or 'none'"
        ) from None
    if not math.isfinite(value):
        raise InputError(
            f"--target: {text!r} must be finite; give a val loss such as {DEFAULT_TARGET}, or 'none'"
        )
    return value


def cmd_compare(args: argparse.Namespace) -> int:
    from analysis import compare, summary

    target = parse_target(args.target)
    arms, warnings = compare.select_arms(
        record_dir=args.record_dir,
        baseline=args.baseline,
        baseline_logs=args.baseline_logs,
        candidate_logs=args.candidate_logs,
        logs=args.logs,
        exclude_prefix=args.exclude_prefix,
        include_prefix=args.include_prefix,
    )
    if args.strict and warnings:
        raise InputError(f"--strict: {summary.counted(len(warnings), 'warning')}: " + " | ".join(warnings))
    if len(arms) == 1:
        data = arms[0].data()
        s = summary.one_arm_summary(data["loss"], data["time_s"], target)
        verdict, lines = summary.one_arm_verdict(s, exact=True), summary.one_arm_lines(s, exact=True)
    else:
        data = {a.name: a.data() for a in arms}
        s = summary.ab_summary(data, target, np.random.default_rng(summary.BOOTSTRAP_SEED))
        verdict = summary.ab_verdict(s, exact=True)
        lines = [*summary.ab_lines(s, exact=True), *summary.ab_extra_lines(s, exact=True)]
    if args.json:
        s |= {"verdict": verdict, "files": compare.files_json(arms), "skipped": compare.skipped_json(arms)}
        s["warnings"] = warnings
        print(json.dumps(_finite(s), indent=1, default=_json_default, allow_nan=False))
        return 0
    for line in [f"verdict: {verdict}", *lines, *compare.file_lines(arms, args.verbose)]:
        print(line)
    for w in warnings:
        print(f"warning: {w}")
    return 0


def _finite(x):
    """The summary with non-finite floats (an unbounded interval) as null, so the output is strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return None
    return x


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
