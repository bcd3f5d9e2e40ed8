"""`ablate report` and `ablate compare`: thin `cmd_*` functions over the analysis library.

Imported by `orchestrator/cli.py` when it builds its parser; imports neither Ray nor torch.
"""

from __future__ import annotations

import argparse
import glob
import json
import math

import numpy as np

from analysis import InputError

COMPARE_EPILOG = """\
Both arms may come from one upstream record folder, which holds the candidate's logs next to the
baseline's `comparison_*` logs:
  ablate compare --baseline-logs 'DIR/comparison_*.txt' --candidate-logs DIR
A file matched by both arms goes to the arm named by a glob (the more specific pattern); when both
arms are folders or both are globs, such a file is an error. --exclude-prefix / --include-prefix
filter both arms by file name instead. Only logs that reached their last step with a final val line
(status ok) are used; the others are listed with their status.
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
    p.add_argument("--baseline-logs", required=True, metavar="DIR_OR_GLOB", help="the previous record's logs")
    p.add_argument("--candidate-logs", required=True, metavar="DIR_OR_GLOB", help="the new run's logs")
    p.add_argument(
        "--target",
        default="3.28",
        metavar="LOSS",
        help="val loss of the record rule (default 3.28); 'none' skips the test (synthetic data)",
    )
    p.add_argument("--exclude-prefix", metavar="PREFIX", help="skip files whose name starts with PREFIX")
    p.add_argument("--include-prefix", metavar="PREFIX", help="only files whose name starts with PREFIX")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of text")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report_verdict

    paths, verdict = write_report_verdict(args.results_dir)
    print(f"verdict: {verdict}")
    print(f"report: {paths['md']}")
    print(f"html: {paths['html']}")
    return 0


def parse_target(text: str) -> float | None:
    if str(text).strip().lower() in ("none", "null", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"--target: {text!r} is not a number; give a val loss such as 3.28, or 'none'"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"--target: {text!r} must be finite; give a val loss such as 3.28, or 'none'")
    return value


def split_arms(baseline: str, candidate: str, *, exclude_prefix=None, include_prefix=None):
    """(baseline paths, candidate paths); a file both match goes to the arm given by a glob."""
    from analysis.logs import match_logs

    kw = {"exclude_prefix": exclude_prefix, "include_prefix": include_prefix}
    b = match_logs(baseline, **kw)
    c = match_logs(candidate, **kw)
    both = set(b) & set(c)
    if both:
        b_glob, c_glob = glob.has_magic(baseline), glob.has_magic(candidate)
        if b_glob == c_glob:
            raise InputError(
                f"{sorted(both)[0]}: matched by both --baseline-logs and --candidate-logs; make one a glob "
                "(e.g. 'DIR/comparison_*.txt') or use --exclude-prefix"
            )
        b, c = (b, [p for p in c if p not in both]) if b_glob else ([p for p in b if p not in both], c)
    for flag, paths in (("--baseline-logs", b), ("--candidate-logs", c)):
        if not paths:
            raise InputError(f"{flag}: every matched log also belongs to the other arm; nothing left")
    return b, c


def _arm_data(paths) -> tuple[dict, list[str]]:
    from analysis.logs import parse_log_file

    loss, times, skipped = [], [], []
    for p in paths:
        parsed = parse_log_file(p)
        if parsed.status != "ok":
            skipped.append(f"{p.name}: {parsed.status} ({parsed.message})")
            continue
        loss.append(parsed.final_val_loss)
        times.append(parsed.train_time_ms / 1000.0)
    return {"loss": loss, "time_s": times}, skipped


def cmd_compare(args: argparse.Namespace) -> int:
    from analysis.report import BOOTSTRAP_SEED
    from analysis.summary import ab_extra_lines, ab_lines, ab_summary, ab_verdict

    target = parse_target(args.target)
    b_paths, c_paths = split_arms(
        args.baseline_logs,
        args.candidate_logs,
        exclude_prefix=args.exclude_prefix,
        include_prefix=args.include_prefix,
    )
    (b, b_skip), (c, c_skip) = _arm_data(b_paths), _arm_data(c_paths)
    for flag, arm in (("--baseline-logs", b), ("--candidate-logs", c)):
        if not arm["loss"]:
            raise InputError(f"{flag}: no log reached its final val line (status ok); nothing to compare")
    s = ab_summary({"baseline": b, "candidate": c}, target, np.random.default_rng(BOOTSTRAP_SEED))
    if args.json:
        s["skipped"] = {"baseline": b_skip, "candidate": c_skip}
        print(json.dumps(_finite(s), indent=1, default=_json_default, allow_nan=False))
        return 0
    print(f"verdict: {ab_verdict(s)}")
    for line in [*ab_lines(s), *ab_extra_lines(s)]:
        print(line)
    for arm, skipped in (("baseline", b_skip), ("candidate", c_skip)):
        for line in skipped:
            print(f"skipped {arm} log {line}")
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
