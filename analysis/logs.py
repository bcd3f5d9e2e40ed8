"""Parse modded-nanogpt-format training logs: upstream record logs, stdout captures and our trainer's logs.

A log *file* (upstream's or our trainer's) starts with a header: the training script's source (upstream)
or the resolved config (ours), a line of 100 `=`, versions and `nvidia-smi`, another line of 100 `=`.
Upstream's source holds the very f-strings that print the step lines, so a parser that matched anywhere
would read code as data; with a header we therefore read only what follows it. A stdout capture has no
header; there, and after a header, only *whole* lines that match count, so garbage lines, a line cut
short by a crash and CRLF endings are harmless. A capture made with `torchrun --tee` prefixes every line
with the worker's name (`[default0]:`); the prefix is dropped. The keys of a step line are matched as
upstream prints them (lower case); the numbers may be any float Python reads (`nan`, `Inf`, `1e999`).

Two readings of one log give the same status and figures: `all_steps=True` keeps every step line (the
store's steps files), `all_steps=False` only the validation lines and the last step line, which is what
`ablate compare` needs and several times faster on upstream's 1,700-step logs.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from analysis import InputError

SEPARATOR = "=" * 100
LOG_SUFFIXES = (".txt", ".log", ".out")  # each also gzip-compressed (`run.txt.gz`)

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf|infinity)"
_LINE_RE = re.compile(
    rf"step:(\d+)/(\d+)(?: val_loss:({_NUM}))? train_time:({_NUM})ms step_avg:({_NUM})ms[ \t]*"
)
_STEP_RE = re.compile(rf"^(?:{_LINE_RE.pattern})$", re.MULTILINE)
_MEM = "peak memory allocated: "
_MEM_RE = re.compile(r"peak memory allocated: (\d+) MiB reserved: (\d+) MiB[ \t]*")
_DIVERGED = "diverged: "
_TEE_RE = re.compile(r"^\[[A-Za-z_]*\d+\]:", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step line. `val_loss` is None on non-validation steps; times in milliseconds."""

    step: int
    total_steps: int
    val_loss: float | None
    train_time_ms: float
    step_avg_ms: float


@dataclass(frozen=True)
class ParsedLog:
    """What a log says about its run.

    status: `ok` (reached total_steps with a final val line) · `truncated` (stopped early) ·
    `diverged` (a non-finite loss, or the trainer's `diverged:` line) · `empty` (no text) ·
    `garbled` (text, but not one step line). `final_val_loss`/`train_time_ms`/`step_avg_ms` come from
    the last validation line when the run is ok; otherwise from the last line read (loss None).
    `steps`: every step line, or (read with `all_steps=False`) the validation lines and the last line.
    `restarts`: the line numbers (in the file, from 1) of the `step:0` lines that follow a later step's
    line, each the start of another run in the same file (a log appended to, two logs concatenated); ()
    for a file of one run. The other fields read such a file as one run.
    """

    status: str
    steps: tuple[StepRecord, ...]
    final_val_loss: float | None
    train_time_ms: float | None
    step_avg_ms: float | None
    last_step: int | None
    total_steps: int | None
    peak_mem_mib: float | None
    reserved_mem_mib: float | None
    has_header: bool
    message: str
    restarts: tuple[int, ...] = ()

    @property
    def runs(self) -> int:
        """How many runs the file holds (1 + its restarts)."""
        return 1 + len(self.restarts)

    @property
    def restarts_text(self) -> str:
        """`step 0 again at line 5351`: where the file's later runs start (for a file of several runs)."""
        lines = ", ".join(map(str, self.restarts))
        return f"step 0 again at line{'s' if len(self.restarts) > 1 else ''} {lines}"


def _record(m: re.Match) -> StepRecord:
    val = m.group(3)
    return StepRecord(
        step=int(m.group(1)),
        total_steps=int(m.group(2)),
        val_loss=None if val is None else float(val),
        train_time_ms=float(m.group(4)),
        step_avg_ms=float(m.group(5)),
    )


def parse_step_line(line: str) -> StepRecord | None:
    """The step record of one whole line (trailing CR/LF ignored), or None if the line is not one."""
    m = _LINE_RE.fullmatch(line.rstrip("\r\n"))
    return _record(m) if m else None


def _separator_lines(text, limit: int = 2) -> list[int]:
    """Offsets of the first `limit` lines that are exactly the separator (str or bytes alike)."""
    sep, nl = (SEPARATOR, "\n") if isinstance(text, str) else (SEPARATOR.encode(), b"\n")
    found, i = [], text.find(sep)
    while i != -1 and len(found) < limit:
        end = i + len(sep)
        if (i == 0 or text[i - 1 : i] == nl) and text[end : end + 1] in (nl, nl[:0]):
            found.append(i)
        nxt = text.find(nl, i)  # a separator is a whole line: go on with the next line
        i = -1 if nxt == -1 else text.find(sep, nxt + 1)
    return found


def _normalise(text):
    """CRLF and lone CR as LF (str or bytes; only scanned when a CR is there)."""
    cr, nl = ("\r", "\n") if isinstance(text, str) else (b"\r", b"\n")
    return text.replace(cr + nl, nl).replace(cr, nl) if cr in text else text


def split_header(text):
    """(code, body) of a log's text or bytes whose line endings are already normalised (`_normalise`):
    code is what precedes the first line of 100 `=` (None without one: no header), body what follows the
    second (or the only one)."""
    seps = _separator_lines(text)
    if not seps:
        return None, text
    return text[: seps[0]], text[seps[-1] + len(SEPARATOR) + 1 :]


def _strip_tee(body: str) -> str:
    """The body without `torchrun --tee` prefixes (`[default0]:`), when a step line carries one."""
    return _TEE_RE.sub("", body) if "]:step:" in body else body


def parse_log_text(text: str, *, all_steps: bool = True) -> ParsedLog:
    """Parse a whole log (file contents or a stdout capture); never raises on bad content."""
    text = _normalise(text)
    code, body = split_header(text)
    return _parse_body(_strip_tee(body), code is not None, all_steps, lambda: _body_line(text, body))


def parse_log_bytes(data: bytes, *, all_steps: bool = True) -> ParsedLog:
    """`parse_log_text(data.decode("utf-8", errors="replace"))`, decoding only what follows the header."""
    data = _normalise(data)
    code, body = split_header(data)
    return _parse_decoded(body, code is not None, all_steps, lambda: _body_line(data, body))


def _body_line(text, body) -> int:
    """The line number (from 1) in `text` of the first line of `body`, its tail."""
    return text.count("\n" if isinstance(text, str) else b"\n", 0, len(text) - len(body)) + 1


def _parse_decoded(body: bytes, has_header: bool, all_steps: bool, first_line) -> ParsedLog:
    text = _strip_tee(body.decode("utf-8", errors="replace"))
    return _parse_body(text, has_header, all_steps, first_line)


def _parse_body(body: str, has_header: bool, all_steps: bool, first_line) -> ParsedLog:
    """The parse of a log's body; `first_line()` gives the file's line number of the body's first line
    (counted only for a file of several runs: a header's lines are many)."""
    steps = tuple(_record(m) for m in _STEP_RE.finditer(body)) if all_steps else _final_steps(body)
    at = _last_line_at(body, _MEM, _MEM_RE)  # the last memory line wins (a restarted run prints more)
    mem = _MEM_RE.fullmatch(_line_at(body, at)) if at != -1 else None
    peak, reserved = (float(mem.group(1)), float(mem.group(2))) if mem else (None, None)
    log = _classify(steps, has_header, body, peak, reserved, _first_line_with(body, _DIVERGED))
    offsets = _restart_offsets(body)
    if not offsets:
        return log
    return replace(log, restarts=tuple(first_line() + body.count("\n", 0, i) for i in offsets))


def _restart_offsets(body: str) -> list[int]:
    """Offsets of the whole `step:0` lines that follow another step's line: each starts another run.

    Found by the text, not the steps read, so both readings (`all_steps`) agree; a file of one run costs
    one `find`.
    """
    zeros, i = [], body.find("step:0/")
    while i != -1:
        if (i == 0 or body[i - 1] == "\n") and _LINE_RE.fullmatch(_line_at(body, i)):
            zeros.append(i)
        i = body.find("step:0/", i + 1)
    pairs = zip(zeros, zeros[1:], strict=False)  # each step-0 line with the next
    return [b for a, b in pairs if _STEP_RE.search(body, body.find("\n", a) + 1, b)]


def _line_at(body: str, start: int) -> str:
    end = body.find("\n", start)
    return body[start:] if end == -1 else body[start:end]


def _first_line_with(body: str, head: str) -> str | None:
    """The first line that starts with `head`, or None."""
    i = body.find(head)
    while i != -1:
        if i == 0 or body[i - 1] == "\n":
            return _line_at(body, i)
        i = body.find(head, i + 1)
    return None


def _last_line_at(body: str, head: str, pattern: re.Pattern) -> int:
    """Offset of the last whole line that starts with `head` and matches `pattern`, or -1."""
    i = body.rfind(head)
    while i != -1:
        if (i == 0 or body[i - 1] == "\n") and pattern.fullmatch(_line_at(body, i)):
            return i
        i = body.rfind(head, 0, i)
    return -1


def _final_steps(body: str) -> tuple[StepRecord, ...]:
    """The validation lines in order, then the last step line unless it is the last validation line."""
    vals, val_at, i = [], -1, body.find(" val_loss:")
    while i != -1:
        start = body.rfind("\n", 0, i) + 1
        line = _line_at(body, start)
        m = _LINE_RE.fullmatch(line)
        if m:
            vals.append(_record(m))
            val_at = start
        i = body.find(" val_loss:", start + len(line))
    last_at = _last_line_at(body, "step:", _LINE_RE)
    if last_at in (-1, val_at):
        return tuple(vals)
    return (*vals, _record(_LINE_RE.fullmatch(_line_at(body, last_at))))


def _classify(steps, has_header, body, peak, reserved, diverged_line) -> ParsedLog:
    def out(status, message, final=None, last=None):
        return ParsedLog(
            status=status,
            steps=steps,
            final_val_loss=final,
            train_time_ms=last.train_time_ms if last else None,
            step_avg_ms=last.step_avg_ms if last else None,
            last_step=steps[-1].step if steps else None,
            total_steps=steps[-1].total_steps if steps else None,
            peak_mem_mib=peak,
            reserved_mem_mib=reserved,
            has_header=has_header,
            message=message,
        )

    if not steps:
        if not body.strip():
            return out("empty", "no log lines" + (" after the header" if has_header else ""))
        return out(
            "garbled", "no step lines; expected e.g. 'step:17/1705 train_time:1620ms step_avg:95.29ms'"
        )
    bad = next((s for s in steps if s.val_loss is not None and not math.isfinite(s.val_loss)), None)
    if bad is not None:
        return out("diverged", f"non-finite val_loss at step {bad.step}", last=bad)
    if diverged_line is not None:
        return out("diverged", diverged_line.strip(), last=steps[-1])
    last = steps[-1]
    final_val = next((s for s in reversed(steps) if s.val_loss is not None), None)
    if last.step >= last.total_steps and final_val is not None and final_val.step == last.step:
        return out("ok", "", final=final_val.val_loss, last=final_val)
    why = "no final val line" if last.step >= last.total_steps else f"stopped at step {last.step}"
    return out("truncated", f"{why} of {last.total_steps}", last=last)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic number, whatever its name)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        import gzip
        import zlib

        try:
            return gzip.decompress(data)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise OSError(f"not a readable gzip file: {e}") from None
    return data


def parse_log_file(path: str | Path, *, all_steps: bool = True) -> ParsedLog:
    """Parse one log file, plain or gzip (undecodable bytes replaced, so a damaged file still parses)."""
    p = Path(path)
    try:
        return parse_log_bytes(_read_bytes(p), all_steps=all_steps)
    except FileNotFoundError:
        raise InputError(f"{p}: no such log file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a folder; give a log file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read it ({e.strerror or e})") from None


def code_fingerprint(data: bytes) -> str | None:
    """16 hex digits naming the training code in a log's header (None without a header).

    The code is what precedes the first separator: upstream's script source, or our trainer's resolved
    config. Left out, as they differ between runs of one code by design: the versions and `nvidia-smi`
    block (after the separator), leading comment and blank lines (an annotation such as `# run 3 of 10`),
    and our trainer's `{"seed": ...}` line.
    """
    return _code_digest(split_header(_normalise(data))[0])


def _code_digest(code: bytes | None) -> str | None:
    """`code_fingerprint` of the header's code part (`split_header`)."""
    if code is None:
        return None
    start = 0
    while start < len(code) and (code.startswith(b"#", start) or code.startswith(b"\n", start)):
        nxt = code.find(b"\n", start)
        start = len(code) if nxt == -1 else nxt + 1
    code = code[start:]
    if code.startswith(b"{"):  # our trainer: one JSON object per knob
        code = b"\n".join(line for line in code.split(b"\n") if not line.startswith(b'{"seed":'))
    return hashlib.sha256(code).hexdigest()[:16]


@dataclass(frozen=True)
class LogFile:
    """One matched file as `ablate compare` reads it.

    digest: 16 hex of sha256 of the log's text (decompressed; for a plain file, `ingest`'s run_id);
    code: `code_fingerprint`; log: the parse (`all_steps=False`); error: why it could not be read, in
    words (then digest, code and log are None); run: `run_identity` of the parse (None without one).
    """

    path: Path
    digest: str | None
    code: str | None
    log: ParsedLog | None
    error: str | None
    run: str | None = None


def run_identity(log: ParsedLog) -> str | None:
    """16 hex naming a run by what its log says: the step lines read (step, val loss, train time, step
    average, each as parsed), so one run saved with CRLF line ends, captured through `torchrun --tee` or
    with a line of notes added is one run. None when no step after step 0 was read: step 0's line
    (train time 0, the val loss of the initial weights) is the same in different runs of one code.
    """
    if not any(s.step > 0 for s in log.steps):
        return None
    text = "\n".join(
        f"{s.step}/{s.total_steps} {s.val_loss!r} {s.train_time_ms!r} {s.step_avg_ms!r}" for s in log.steps
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_log(path: Path, problem: str | None = None) -> LogFile:
    """Read and parse one file; any OS error (or the `problem` its match found) is an error, not raised."""
    if problem is not None:
        return LogFile(path, None, None, None, problem)
    try:
        data = _read_bytes(path)
    except OSError as e:
        return LogFile(path, None, None, None, f"cannot read it ({e.strerror or e})")
    digest = hashlib.sha256(data).hexdigest()[:16]
    data = _normalise(data)
    code, body = split_header(data)  # once, for both the fingerprint and the parse
    log = _parse_decoded(body, code is not None, False, lambda: _body_line(data, body))
    return LogFile(path, digest, _code_digest(code), log, None, run_identity(log))


def is_log_name(name: str) -> bool:
    """A name that a folder's log files have: *.txt, *.log, *.out, each also as *.gz (any case)."""
    low = name.lower()
    return (low[:-3] if low.endswith(".gz") else low).endswith(LOG_SUFFIXES)


def _entry_problem(path: str) -> str | None:
    """Why a matched name cannot be read as a log file (None: it is a file, or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken link (its target does not exist)" if os.path.islink(path) else "no such file"
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    return "is a folder" if stat.S_ISDIR(mode) else "not a regular file"


def folder_entries(folder: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(path, problem) of a folder's log-named entries, and its subfolders (links to folders too),
    both sorted by name; raises OSError when the folder cannot be listed."""
    logs, subfolders = [], []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if _entry_is_dir(e):
            subfolders.append(e.path)
        elif is_log_name(e.name):
            logs.append((e.path, _entry_problem(e.path)))
    return logs, subfolders


def walk_logs(folder: str, recursive: bool) -> list[tuple[str, str | None]]:
    """(path, problem) of the log-named entries of a folder, and of its subfolders when `recursive`.

    Links to folders are followed once (a loop of links ends); a subfolder that cannot be listed is an
    entry with its problem; the folder itself not listable is an InputError.
    """
    found, seen, todo = [], set(), [folder]
    while todo:
        d = todo.pop(0)
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        try:
            logs, subfolders = folder_entries(d)
        except OSError as e:
            if d == folder:
                raise InputError(f"{folder}: cannot list this folder ({e.strerror or e})") from None
            found.append((d, f"cannot list this folder ({e.strerror or e})"))
            continue
        found += logs
        todo += subfolders if recursive else []
    return found


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def stat_path(spec: str) -> os.stat_result | None:
    """os.stat of what the user named (None if nothing is there); an OS error other than 'missing' is
    one line naming it (`File name too long` for a component over the file system's limit)."""
    try:
        return os.stat(spec)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise InputError(f"{spec}: {e.strerror or e} (give a folder of logs, a log file or a glob)") from None


def filter_names(entries: list, *, include_prefix=None, exclude_prefix=None) -> list:
    """The (path, ...) entries whose file name starts with include_prefix and not with exclude_prefix."""
    return [
        e
        for e in entries
        if (not include_prefix or os.path.basename(e[0]).startswith(include_prefix))
        and not (exclude_prefix and os.path.basename(e[0]).startswith(exclude_prefix))
    ]


def scan_logs(
    dir_or_glob: str | Path, *, exclude_prefix=None, include_prefix=None, recursive: bool = False
) -> list[tuple[Path, str | None]]:
    """(path, problem) for every log a folder, glob or file names, sorted by path.

    A folder gives its log-named files (`is_log_name`), and its subfolders' with `recursive`; a glob
    gives every file it matches, whatever the name, and reads a folder it matches as a folder. `problem`
    is None for a readable-looking file, else why it is not one (a broken link, an unlistable folder).
    Raises InputError when the argument names nothing or no log is left after the prefix filters.
    """
    spec = str(dir_or_glob)
    found_at = stat_path(spec)
    if found_at is not None and stat.S_ISDIR(found_at.st_mode):
        found = walk_logs(spec, recursive)
    elif glob.has_magic(spec):
        found = []
        for q in sorted(glob.glob(spec, recursive=True)):
            found += walk_logs(q, recursive) if os.path.isdir(q) else [(q, _entry_problem(q))]
    elif found_at is not None or os.path.islink(spec):
        found = [(spec, _entry_problem(spec))]
    else:
        raise InputError(f"{spec}: no such folder or file (give a folder of logs, a log file or a glob)")
    found = filter_names(found, include_prefix=include_prefix, exclude_prefix=exclude_prefix)
    if not found:
        raise InputError(
            f"{spec}: no log files matched (logs are *.txt, *.log or *.out, also .gz; check the prefixes)"
        )
    return sorted((Path(q), why) for q, why in found)


def match_logs(
    dir_or_glob: str | Path, *, exclude_prefix=None, include_prefix=None, recursive: bool = False
) -> list[Path]:
    """The readable-looking log paths of `scan_logs` (sorted by path)."""
    kw = {"exclude_prefix": exclude_prefix, "include_prefix": include_prefix, "recursive": recursive}
    return [q for q, why in scan_logs(dir_or_glob, **kw) if why is None]


def collect_logs(
    dir_or_glob: str | Path, *, exclude_prefix: str | None = None, include_prefix: str | None = None
) -> list[tuple[Path, ParsedLog]]:
    """Parse every log named by a folder or glob; raises InputError when nothing matches."""
    paths = match_logs(dir_or_glob, exclude_prefix=exclude_prefix, include_prefix=include_prefix)
    return [(q, parse_log_file(q)) for q in paths]
