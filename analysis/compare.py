"""`ablate compare`: which log files make each arm, each read once, and what must not be pooled silently.

Three ways to name the arms (`select_arms`):
- two specs (`--baseline-logs`, `--candidate-logs`): each a folder (read with its subfolders), a glob or
  a file;
- a record folder (`ablate compare DIR`), split by upstream's conventions: `comparison_*` files beside
  the candidate's (2025 records), or one subfolder per arm (2026 records: `baseline/` + `this_pr/`,
  `master-s1480/` + `xsa-gated-s1410/`);
- one spec (`--logs`): one arm, the record rule and times only.

One run counts once. Every matched file is resolved to its real path, so `DIR`, `./DIR/`, an absolute
path, `../x/DIR` and a link to it are one folder, and each file is named by its bytes and by its run
(`logs.run_identity`: the step lines read, so a copy with CRLF line ends, a `torchrun --tee` capture or a
copy with a note added is the same run). A file matched by a glob on one side and a folder on the other
belongs to the glob's arm (the README's form); any other file in both arms, two arms of the same files,
or one run in both arms is an error; within an arm a copy counts once, with a warning. A file holding
several runs (step 0 again after a later step) is not counted, with a warning: which of its runs would
count is a guess, so the user splits it. Runs of one arm with different step counts, or different
training code by their log headers, are pooled with a warning. A file that cannot be used is skipped
with its reason; a diverged run also warns (it is a result of the arm, not a broken file); an arm left
with no usable log is an error that lists every reason.
"""

from __future__ import annotations

import glob
import os
import shlex
import stat
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from analysis import InputError
from analysis.logs import LogFile, filter_names, folder_entries, read_log, scan_logs, stat_path, walk_logs
from analysis.summary import counted

BASELINE_WORDS = ("baseline", "master", "comparison")
"""A record folder's subfolder whose name holds one of these (any case) is the baseline's."""
LIST_SKIPPED = 5
"""Skipped files are listed one per line up to this many per arm (all with --verbose); else counted."""


@dataclass(frozen=True)
class ArmSource:
    """One arm as named, before reading: `entries` are (path, problem) from `scan_logs`."""

    name: str  # "baseline", "candidate", or "runs" (the one-arm form)
    label: str  # how the user named it, for messages: "--baseline-logs", "master-s1480/"
    entries: tuple[tuple[Path, str | None], ...]
    is_glob: bool
    base: str  # file names are shown relative to this folder
    origin: str | None = None  # said in the file count when the arms were split from a record folder

    @cached_property
    def reals(self) -> tuple[str, ...]:
        """The real path of each entry (links and `..` resolved), in the order of `entries`."""
        return tuple(os.path.realpath(p) for p, _ in self.entries)


@dataclass
class Arm:
    """One arm after reading: the logs it uses, those it skipped (kind, reason), its warnings."""

    source: ArmSource
    used: list[LogFile] = field(default_factory=list)
    skipped: list[tuple[LogFile, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def who(self) -> str:
        """The arm in text: its name, or "logs" for the one set of runs of `--logs`."""
        return "logs" if self.name == "runs" else self.name

    def show(self, f: LogFile) -> str:
        """The file's name as the arm shows it: relative to its folder."""
        return _relative(f.path, self.source.base)

    def data(self) -> dict:
        """{"loss": final val losses, "time_s": train times in s} of the used logs."""
        return {
            "loss": [f.log.final_val_loss for f in self.used],
            "time_s": [f.log.train_time_ms / 1000.0 for f in self.used],
        }


def _relative(path: Path, base: str) -> str:
    rel = os.path.relpath(path, base) if base else str(path)
    return str(path) if rel.startswith("..") else rel


def _literal_dir(spec: str) -> str:
    """The folder a glob or file lies in: its leading components without magic."""
    head = []
    for part in Path(spec).parts[:-1]:
        if glob.has_magic(part):
            break
        head.append(part)
    return str(Path(*head)) if head else "."


def spec_source(name: str, label: str, spec: str, **filters) -> ArmSource:
    """An arm named by a folder (read with its subfolders), a glob or a file."""
    entries = scan_logs(spec, recursive=True, **filters)
    is_dir = not glob.has_magic(spec) and os.path.isdir(spec)
    return ArmSource(
        name, label, tuple(entries), glob.has_magic(spec), spec if is_dir else _literal_dir(spec)
    )


def split_overlap(b: ArmSource, c: ArmSource) -> tuple[ArmSource, ArmSource]:
    """The two arms with no file in both, decided on real paths (see the module docstring)."""
    rb = {r: p for r, (p, _) in zip(b.reals, b.entries, strict=True)}
    rc = {r: p for r, (p, _) in zip(c.reals, c.entries, strict=True)}
    if set(rb) == set(rc):
        raise InputError(
            f"all {counted(len(rb), 'file')} matched by both {b.label} and {c.label} (the same set, however "
            f"spelled; e.g. {next(iter(rb.values()))}): give each arm its own logs"
        )
    both = set(rb) & set(rc)
    if both and b.is_glob == c.is_glob:
        raise InputError(_overlap_text(b, c, rb[min(both)], rc[min(both)]))
    if both:
        loser = c if b.is_glob else b
        kept = tuple(e for r, e in zip(loser.reals, loser.entries, strict=True) if r not in both)
        if not kept:
            raise InputError(f"{loser.label}: every matched log also belongs to the other arm; nothing left")
        loser = ArmSource(loser.name, loser.label, kept, loser.is_glob, loser.base, loser.origin)
        b, c = (b, loser) if b.is_glob else (loser, c)
    return b, c


def _overlap_text(b: ArmSource, c: ArmSource, in_b: Path, in_c: Path) -> str:
    """One file in both arms: both spellings, and advice that fits the form the arms were named in."""
    where = (
        f"{in_b}: matched by both {b.label} and {c.label}"
        if str(in_b) == str(in_c)
        else f"one file matched by both {b.label} (as {in_b}) and {c.label} (as {in_c})"
    )
    if b.origin is not None:  # split from a record folder: its subfolders share a file (a link)
        return f"{where}; one run cannot count in both arms: keep it in one arm's subfolder only"
    return (
        f"{where}; give the baseline as a glob of its own files (e.g. 'DIR/comparison_*'), which takes "
        "them out of a folder given for the candidate, or split a record folder by its conventions: "
        "ablate compare DIR"
    )


MULTI_RUN = "several runs"
"""The skip kind of a file that holds more than one run."""


def read_arm(source: ArmSource) -> Arm:
    """Read every file of an arm once; copies of a run count once; raises InputError when none is usable."""
    arm = Arm(source)
    seen: dict[str, LogFile] = {}  # by bytes ("b" + digest) and by run ("r" + run_identity)
    paths: dict[str, Path] = {}
    for real, (path, problem) in zip(source.reals, source.entries, strict=True):
        if real in paths:  # one file by two names (links, a glob through a loop)
            why = f"the same file as {_relative(paths[real], source.base)}"
            arm.skipped.append((LogFile(path, None, None, None, None), "duplicate", why))
            continue
        paths[real] = path
        f = read_log(path, problem)
        kind, why = _why_not_used(arm, f, seen)
        if kind is None:
            arm.used.append(f)
        else:
            arm.skipped.append((f, kind, why))
    if not arm.used:
        reasons = "; ".join(f"{arm.show(f)}: {why}" for f, _, why in arm.skipped)
        raise InputError(f"{source.label}: no log reached its final val line (status ok): {reasons}")
    arm.warnings = _duplicate_warnings(arm) + _skip_warnings(arm) + _pooling_warnings(arm)
    return arm


def _why_not_used(arm: Arm, f: LogFile, seen: dict[str, LogFile]) -> tuple[str | None, str]:
    """(skip kind, reason) of a file read, or (None, "") when it counts; files seen are noted in `seen`."""
    if f.error is not None:
        return "unreadable", f.error
    if "b" + f.digest in seen:
        return "duplicate", f"exact copy of {arm.show(seen['b' + f.digest])}"
    if f.run is not None and "r" + f.run in seen:
        first = seen["r" + f.run]
        return "duplicate", f"the same run as {arm.show(first)}: identical step lines{_code_note(f, first)}"
    seen["b" + f.digest] = f
    if f.run is not None:
        seen["r" + f.run] = f
    if f.log.runs > 1:
        return MULTI_RUN, f"holds {f.log.runs} runs ({f.log.restarts_text}); split it into one file per run"
    if f.log.status != "ok":
        return f.log.status, f"{f.log.status} ({f.log.message})"
    return None, ""


def _names(arm: Arm, files: list[LogFile], at_most: int = 3) -> str:
    shown = ", ".join(arm.show(f) for f in files[:at_most])
    return shown + (f" and {len(files) - at_most} more" if len(files) > at_most else "")


def _duplicate_warnings(arm: Arm) -> list[str]:
    dups = [(f, why) for f, kind, why in arm.skipped if kind == "duplicate"]
    if not dups:
        return []
    listed = ", ".join(f"{arm.show(f)} ({why})" for f, why in dups[:3])
    more = f" and {len(dups) - 3} more" if len(dups) > 3 else ""
    return [f"{arm.who}: {counted(len(dups), 'duplicate log')} counted once: {listed}{more}"]


def _skip_warnings(arm: Arm) -> list[str]:
    """Skips a reviewer must see: files of several runs (none of them counted), and diverged runs (a
    result of the arm's code, unlike a truncated or broken file, which stays a skip note)."""
    out = []
    multi = [f for f, kind, _ in arm.skipped if kind == MULTI_RUN]
    if multi:
        each = "it" if len(multi) == 1 else "each"
        listed = _listed(arm, multi, lambda f: f"{f.log.runs} runs, {f.log.restarts_text}")
        out.append(
            f"{arm.who}: {counted(len(multi), 'log')} not counted, holding several runs: {listed}; "
            f"split {each} into one file per run"
        )
    diverged = [f for f, kind, _ in arm.skipped if kind == "diverged"]
    if diverged:
        listed = _listed(arm, diverged, lambda f: f.log.message)
        out.append(f"{arm.who}: {counted(len(diverged), 'run')} diverged, not counted: {listed}")
    return out


def _listed(arm: Arm, files: list[LogFile], detail, at_most: int = 3) -> str:
    """`a.txt (detail), b.txt (detail) and 2 more`."""
    shown = ", ".join(f"{arm.show(f)} ({detail(f)})" for f in files[:at_most])
    return shown + (f" and {len(files) - at_most} more" if len(files) > at_most else "")


def _groups(arm: Arm, key) -> list[list[LogFile]]:
    out: dict = {}
    for f in arm.used:
        if key(f) is not None:
            out.setdefault(key(f), []).append(f)
    return sorted(out.values(), key=len, reverse=True)


def _pooling_warnings(arm: Arm) -> list[str]:
    """Runs of different step counts, or of different training code, pooled in one arm."""
    out = []
    lengths = _groups(arm, lambda f: f.log.total_steps)
    if len(lengths) > 1:
        groups = ", ".join(
            f"{g[0].log.total_steps} steps ({counted(len(g), 'run')}: {_names(arm, g)})" for g in lengths
        )
        out.append(f"{arm.who}: runs of different lengths pooled: {groups}")
    codes = _groups(arm, lambda f: f.code)
    if len(codes) > 1:
        groups = ", ".join(f"{counted(len(g), 'run')} ({_names(arm, g)})" for g in codes)
        out.append(f"{arm.who}: runs of different training code pooled (their log headers differ): {groups}")
    return out


def _code_note(f: LogFile, other: LogFile) -> str:
    """What to add when two files of one run embed different code: a header was edited after the run (the
    step lines, to the millisecond, are what a run is)."""
    if f.code == other.code:
        return ""
    if f.code is None or other.code is None:
        return "; one has a code header, the other none"
    return "; their code headers differ, so one was edited after the run"


def check_across(arms: list[Arm]) -> None:
    """One log's content in two arms is one run counted twice: an error naming both files."""
    if len(arms) < 2:
        return
    b, c = arms
    seen = {f.digest: f for f in b.used}
    runs = {f.run: f for f in b.used if f.run is not None}
    for f in c.used:
        if f.digest in seen:
            what, other = "same log (identical content)", seen[f.digest]
        elif f.run in runs:
            other = runs[f.run]
            what = f"same run (identical step lines{_code_note(f, other)})"
        else:
            continue
        raise InputError(
            f"{c.show(f)} ({c.source.label}) and {b.show(other)} ({b.source.label}) are the {what}: one "
            "run cannot count in both arms"
        )


def _subfolder_arms(subfolders: list[str], filters: dict) -> dict[str, list]:
    """name -> (path, problem) of each subfolder holding logs (one without, e.g. figures/, is no arm)."""
    arms = {}
    for sub in subfolders:
        entries = filter_names(walk_logs(sub, recursive=True), **filters)
        if entries:
            arms[os.path.basename(sub)] = [(Path(p), why) for p, why in sorted(entries)]
    return arms


def record_sources(folder: str, baseline: str | None = None, **filters) -> tuple[list[ArmSource], list[str]]:
    """The two arms of an upstream record folder, and notes (warnings) on what was left out.

    `comparison_*` files at its top make the baseline and the other logs there the candidate; else one
    subfolder per arm, the baseline's named by `baseline` or by a word of BASELINE_WORDS.
    """
    found = stat_path(folder)
    if found is None or not stat.S_ISDIR(found.st_mode):
        what = "no such folder" if found is None else "not a folder"
        raise InputError(f"{folder}: {what} (give a record folder, e.g. records/track_1_short/DATE_NAME)")
    try:
        top, subfolders = folder_entries(folder)
    except OSError as e:
        raise InputError(f"{folder}: cannot list this folder ({e.strerror or e})") from None
    top = [(Path(p), why) for p, why in filter_names(top, **filters)]
    comparison = [(p, why) for p, why in top if p.name.startswith("comparison_")]
    others = [(p, why) for p, why in top if not p.name.startswith("comparison_")]
    arm_dirs = _subfolder_arms(subfolders, filters)
    flags = _filter_flags(filters)  # said in the commands a message advises
    if comparison:
        return _comparison_split(folder, baseline, comparison, others, arm_dirs)
    if others:
        where = (
            f"logs at its top and in subfolders ({_dir_list(arm_dirs)})" if arm_dirs else "one set of logs"
        )
        raise InputError(
            f"{folder}: {where}, no comparison_* files; compare two sets with --baseline-logs and "
            f"--candidate-logs, or check one: ablate compare --logs {folder}{flags}"
        )
    if len(arm_dirs) < 2:
        read = f"read with{flags}" if flags else ""
        if arm_dirs:  # one pair of parentheses: the subfolder, then the filters it was read with
            what = f"one subfolder of logs ({'; '.join(filter(None, [_dir_list(arm_dirs), read]))})"
        else:
            what = f"no log files ({read})" if read else "no log files"
        raise InputError(f"{folder}: {what}; a record folder has comparison_* files or one subfolder per arm")
    return _subfolder_split(folder, baseline, arm_dirs, flags), []


def _filter_flags(filters: dict) -> str:
    """The prefix filters in effect as the flags that set them (` --exclude-prefix X`), or ""."""
    return "".join(f" --{k.replace('_', '-')} {shlex.quote(v)}" for k, v in sorted(filters.items()) if v)


def _dir_list(arm_dirs) -> str:
    return ", ".join(f"{n}/" for n in arm_dirs)


def _comparison_split(folder, baseline, comparison, others, arm_dirs):
    if baseline is not None:
        raise InputError(
            f"--baseline {baseline}: {folder} has comparison_* files, which are its baseline; "
            "--baseline names a subfolder"
        )
    if not others:
        raise InputError(f"{folder}: only comparison_* logs (the baseline); the candidate's logs are missing")
    notes = [
        f"{folder}: subfolders not read: {_dir_list(arm_dirs)} (its comparison_* files are the baseline)"
    ]
    arms = [
        ArmSource(
            "baseline", f"{folder} comparison_* files", tuple(comparison), False, folder, "comparison_*"
        ),
        ArmSource("candidate", f"{folder} other files", tuple(others), False, folder, "the other files"),
    ]
    return arms, notes if arm_dirs else []


def _subfolder_split(folder: str, baseline: str | None, arm_dirs: dict, flags: str) -> list[ArmSource]:
    names = list(arm_dirs)
    if len(names) != 2:  # before the baseline's name: naming it would not help
        raise InputError(
            f"{folder}: {len(names)} subfolders of logs ({_dir_list(arm_dirs)}), a record folder has one "
            f"per arm; name the arms: --baseline-logs DIR --candidate-logs DIR{flags}"
        )
    if baseline is not None:
        base = baseline.rstrip("/")
        if base not in arm_dirs:
            raise InputError(
                f"--baseline {baseline}: not a subfolder of {folder} with logs ({_dir_list(arm_dirs)})"
            )
    else:
        said = [n for n in names if any(w in n.lower() for w in BASELINE_WORDS)]
        if len(said) != 1:
            raise InputError(
                f"{folder}: cannot tell which subfolder holds the baseline ({_dir_list(arm_dirs)}); "
                f"name it: ablate compare {folder} --baseline NAME{flags}"
            )
        base = said[0]
    rest = [n for n in names if n != base]

    def source(name, sub):
        path = os.path.join(folder, sub)
        return ArmSource(name, f"{sub}/", tuple(arm_dirs[sub]), False, path, f"{sub}/")

    return [source("baseline", base), source("candidate", rest[0])]


def select_arms(
    record_dir=None, baseline=None, baseline_logs=None, candidate_logs=None, logs=None, **filters
) -> tuple[list[Arm], list[str]]:
    """The arms the user named (one form of three, see the module docstring), read; and warnings."""
    forms = [
        record_dir is not None,
        baseline_logs is not None or candidate_logs is not None,
        logs is not None,
    ]
    if sum(forms) != 1:
        raise InputError(
            ("give only one of: " if sum(forms) else "give one of: ")
            + "a record folder (ablate compare DIR), --baseline-logs with --candidate-logs, "
            "or --logs DIR_OR_GLOB"
        )
    if baseline is not None and record_dir is None:
        raise InputError(
            f"--baseline {baseline}: names a subfolder of a record folder: ablate compare DIR --baseline NAME"
        )
    notes = []
    if logs is not None:
        sources = [spec_source("runs", "--logs", logs, **filters)]
    elif record_dir is not None:
        sources, notes = record_sources(record_dir, baseline, **filters)
    else:
        for flag, value in (("--baseline-logs", baseline_logs), ("--candidate-logs", candidate_logs)):
            if value is None:
                raise InputError(
                    f"{flag} is missing: the two-arm form needs --baseline-logs and --candidate-logs"
                )
        sources = [
            spec_source("baseline", "--baseline-logs", baseline_logs, **filters),
            spec_source("candidate", "--candidate-logs", candidate_logs, **filters),
        ]
    if len(sources) == 2:
        sources = list(split_overlap(*sources))
    arms = [read_arm(s) for s in sources]
    check_across(arms)
    return arms, notes + [w for a in arms for w in a.warnings]


def _skip_counts(arm: Arm) -> str:
    counts = Counter(kind for _, kind, _ in arm.skipped)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))


def file_lines(arms: list[Arm], verbose: bool = False) -> list[str]:
    """The file count per arm (with reasons), then each skipped file when few or `verbose`."""
    parts, listed = [], []
    for a in arms:
        text = f"{a.name} {len(a.used)} used" if len(arms) > 1 else f"{len(a.used)} used"
        if a.source.origin:
            text += f" ({a.source.origin})"
        if a.skipped:
            listing = verbose or len(a.skipped) <= LIST_SKIPPED
            more = "" if listing else "; --verbose lists them"
            text += f", {len(a.skipped)} skipped ({_skip_counts(a)}{more})"
            if listing:
                arm = f"{a.name} " if len(arms) > 1 else ""
                listed += [f"skipped {arm}log {a.show(f)}: {why}" for f, _, why in a.skipped]
        parts.append(text)
    return ["logs: " + "; ".join(parts), *listed]


def files_json(arms: list[Arm]) -> dict:
    """Per arm: the files used and those skipped with their reason (paths as matched)."""
    return {
        a.name: {
            "used": [str(f.path) for f in a.used],
            "skipped": [{"path": str(f.path), "reason": why} for f, _, why in a.skipped],
        }
        for a in arms
    }


def skipped_json(arms: list[Arm]) -> dict:
    """The older per-arm list of "name: reason" strings (kept: `--json` readers may rely on it)."""
    return {a.name: [f"{a.show(f)}: {why}" for f, _, why in a.skipped] for a in arms}
