"""The owner of a sweep's results folder: every path in it, its one writer, its reads and its lock;
what sweep.json holds (`SweepInfo`, each key's type checked on reading) and which runs are the current
plan's (`split_current`); and the one line for a folder that is not there (`ResultsDir.require`).

Layout (docs/contracts.md has every key):

    runs/<run_id>.parquet          a run's final outcome (one file per run)
    attempts/<run_id>.<k>.parquet  a failed attempt k, and attempts/<run_id>.<k>.txt its log
    steps/<run_id>.parquet         a run's step table          logs/<run_id>.txt  its final output
    sweep.json  spec.yaml  status.json  report.md  report.html  figures/<name>.png
    .lock                          the driver's lock (one driver per folder)
    .cache/runs.parquet            the index: the rows read so far, each keyed by its file's identity
    .cache/runs.journal            rows written since the index was saved, one JSON line each

Every file but two is written by `atomic_write`: a hidden temp name (`.tmp-<name>.<pid>.<thread>`),
fsync where a result is lost otherwise (run, attempt and step files; not for re-creatable bulk writes
such as ingesting logs), then a rename into place (the journal is appended to a line at a time, and
`.lock` is rewritten by its holder). Readers (ours, and pandas, polars or duckdb through pyarrow's
dataset readers) skip names starting with `.` or `_`, so nobody takes a half-written file for a
result. Run files are immutable, but for `replace_run`: a failed or timed-out run's file replaced by
its `--retry-failed` outcome (`RETRYABLE_STATUSES`), in one atomic rename.

The index makes reading a sweep's rows cost one file instead of one per run (a parquet file costs
~1-2 ms to open however small it is). It is keyed by each run file's identity (inode, size, mtime),
not by run id alone: a row is taken from the index only while its file is the very file it was read
from, so a run file replaced atomically (a failed run's file by its retry's) is read again, never
served stale. The writer appends each run row it writes to the journal; a reader takes rows from
the index, then the journal, then reads the few run files neither has, and saves the index again when
they were `INDEX_REFRESH_MIN_NEW` rows or more. Both are caches: a missing, torn or damaged one costs
time, never a wrong row. A folder landed elsewhere (`copy_to`, then `drop_machine_state`) leaves the
lock and the index behind: its files have new identities there, and the first read rebuilds it.

Importing this module needs neither pandas nor pyarrow (`ablate run --dry-run` lists finished runs
on machines without them); the methods that read or write tables import them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from analysis import InputError

INDEX_REFRESH_MIN_NEW = 64
"""A reader saves the index again once it has taken this many rows from the journal or run files."""
KEY_COLUMN = "_file_key"
"""The index's column of each row's file identity: `<inode>:<size>:<mtime_ns>`."""
RETRYABLE_STATUSES = ("failed", "timeout")
"""The final statuses `ablate run --retry-failed` runs again (and whose run file `replace_run` replaces)."""


# ----------------------------------------------------------------------------------------- writing


def atomic_write(
    path: Path, fill: Callable[[IO[bytes]], None], *, overwrite: bool = True, fsync: bool = False
):
    """The one writer of results files: `fill(fh)` writes into a hidden temp file next to `path`, which is
    flushed (and fsynced when `fsync`), then renamed into place; the temp file never survives.

    overwrite=False refuses an existing `path` (FileExistsError) and publishes with link(), which fails if
    the target appeared meanwhile: two writers racing for one run cannot both win. overwrite=True
    publishes with an atomic replace: a reader sees the old file or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: a result already exists; run files are immutable")
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fill(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _file_key(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def result_files(folder: Path) -> dict[str, Path]:
    """`<name>.parquet` files of a folder by name, temp and hidden files (`.`/`_`) left out."""
    if not folder.is_dir():
        return {}
    return {
        p.name[: -len(".parquet")]: p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))
    }


# ------------------------------------------------------------------------------------- sweep.json


@dataclass(frozen=True)
class SweepInfo:
    """`sweep.json`: what the report and `ablate status` need to know about the sweep, written by the
    orchestrator from its plan (and by log ingestion). Every key may be absent in older folders."""

    name: str | None = None
    kind: str | None = None
    """"grid" or "ab"; None: the report infers it from the runs."""
    target_val_loss: float | None = None
    baseline_arm: str | None = None
    arms: tuple[str, ...] = ()
    profile: str | None = None
    spec_file: str | None = None
    planned_runs: int | None = None
    run_ids: tuple[str, ...] | None = None
    """The current plan's run ids: the report and `ablate status` count these and leave other runs in
    runs/ (of an earlier version of the trainer, a script or the spec) out. None: count every run."""
    point_layers: dict[str, dict[str, int]] | None = None
    """run_id -> {knob: the layer its grid point sweeps}, for the runs whose point sweeps a layer (the
    plan's `GridPoint.layers`; the layer-ablation figure draws these). None (folders written before):
    the report infers the layers from the knob values."""
    description: str | None = None
    """The spec's description (its profile's, when the profile sets one): the report's first lines say
    what the sweep is and why its repeats are what they are."""
    contrasts: list[dict[str, Any]] | None = None
    """The spec's contrasts (`{label, arm, knob, layers, against}`, against "baseline" or layers of the
    same arm): the report's "Contrasts" table. None: the spec had none."""

    @classmethod
    def of(cls, sweep: SweepInfo | dict[str, Any]) -> SweepInfo:
        """`sweep` as a SweepInfo (a dict is sweep.json's parsed text)."""
        return sweep if isinstance(sweep, SweepInfo) else cls.from_json(sweep)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str | Path = "sweep.json") -> SweepInfo:
        """sweep.json's parsed text as a SweepInfo; InputError naming `source` and the first field whose
        value has a type ablate never writes (a hand-edited file, or one of another version)."""
        _check_sweep_fields(data, source)
        ids = data.get("run_ids")
        return cls(
            name=data.get("name"),
            kind=data.get("kind"),
            target_val_loss=data.get("target_val_loss"),
            baseline_arm=data.get("baseline_arm"),
            arms=tuple(data.get("arms") or ()),
            profile=data.get("profile"),
            spec_file=data.get("spec_file"),
            planned_runs=data.get("planned_runs"),
            run_ids=None if ids is None else tuple(ids),
            point_layers=data.get("point_layers"),
            description=data.get("description"),
            contrasts=data.get("contrasts"),
        )

    def to_json(self) -> dict[str, Any]:
        """The keys in their documented order (`run_ids` and `point_layers` only when known)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "target_val_loss": self.target_val_loss,
            "baseline_arm": self.baseline_arm,
            "arms": list(self.arms),
            "profile": self.profile,
            "spec_file": self.spec_file,
            "planned_runs": self.planned_runs,
        }
        if self.run_ids is not None:
            out["run_ids"] = list(self.run_ids)
        if self.point_layers is not None:
            out["point_layers"] = self.point_layers
        if self.description:
            out["description"] = self.description
        if self.contrasts is not None:
            out["contrasts"] = self.contrasts
        return out

    def current_runs(self, runs):
        """(the runs of the current plan, how many other runs the folder holds): see `split_current`."""
        return split_current(runs, self.run_ids)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_layers(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_count(n) for k, n in v.items())


def _is_layer_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_count(x) for x in v)


def _is_contrast(v) -> bool:
    return (
        isinstance(v, dict)
        and all(isinstance(v.get(k), str) for k in ("label", "arm", "knob"))
        and _is_layer_list(v.get("layers"))
        and (v.get("against") == "baseline" or _is_layer_list(v.get("against")))
    )


_SWEEP_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "kind": ('a string ("grid" or "ab")', lambda v: isinstance(v, str)),
    "target_val_loss": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "baseline_arm": ("a string", lambda v: isinstance(v, str)),
    "arms": ("a list of arm names", lambda v: isinstance(v, list | tuple)),
    "profile": ("a string", lambda v: isinstance(v, str)),
    "spec_file": ("a string", lambda v: isinstance(v, str)),
    "planned_runs": ("a count (an integer >= 0)", _is_count),
    "run_ids": ("a list of run ids", lambda v: isinstance(v, list | tuple)),
    "point_layers": ("an object of run id -> {knob: layer}", lambda v: isinstance(v, dict)),
    "description": ("a string", lambda v: isinstance(v, str)),
    "contrasts": ("a list of contrasts", lambda v: isinstance(v, list | tuple)),
}
"""sweep.json's keys: what each holds (for the message) and its check (null is always allowed)."""
_ITEMS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "arms": ("an arm name (a string)", lambda v: isinstance(v, str)),
    "run_ids": ("a run id (a string)", lambda v: isinstance(v, str)),
    "point_layers": ("an object of knob -> layer (an integer >= 0)", _is_layers),
    "contrasts": (
        '{label, arm, knob, layers: [layers], against: "baseline" or [layers]}',
        _is_contrast,
    ),
}
"""The check of each item of the list and object keys (their values, for an object)."""


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_sweep_fields(data: dict[str, Any], source: str | Path) -> None:
    """InputError for the first key of sweep.json whose value (or one of its items) has the wrong type."""
    fix = "fix it, or delete the key (`ablate run` writes it again)"
    for key, (want, ok) in _SWEEP_FIELDS.items():
        value = data.get(key)
        if value is not None and not ok(value):
            raise InputError(f"{source}: {key} is {_short(value)}, not {want}; {fix}")
        if value is None or key not in _ITEMS:
            continue
        item_want, item_ok = _ITEMS[key]
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for where, item in items:
            if not item_ok(item):
                at = f"{key}[{json.dumps(where)}]"
                raise InputError(f"{source}: {at} is {_short(item)}, not {item_want}; {fix}")


def split_current(runs, run_ids: Iterable[str] | None):
    """The rows of `runs` (a DataFrame with `run_id`) whose id is in `run_ids`, and how many are not.

    Editing the trainer or a script gives new run ids; the older runs stay in runs/ (results are never
    deleted) but counting them with the new ones would compare two versions of the code. None: all."""
    if run_ids is None or runs.empty:
        return runs, 0
    current = runs["run_id"].isin(set(run_ids))
    return runs[current].reset_index(drop=True), int((~current).sum())


def split_current_ids(run_ids: Iterable[str], plan_ids: Iterable[str] | None) -> tuple[set[str], int]:
    """`split_current` for a set of run ids (a folder's finished runs): those of the plan, and how many
    are not."""
    found = set(run_ids)
    if plan_ids is None:
        return found, 0
    current = found & set(plan_ids)
    return current, len(found) - len(current)


# ------------------------------------------------------------------------------------------- lock


class FolderBusy(InputError):
    """Another process holds the folder's lock (one driver per folder)."""


class FolderLock:
    """An exclusive fcntl lock on `<results>/.lock`, which holds `pid N on HOST` of its holder."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 -- held open for the lock's lifetime
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise FolderBusy(
                f"{self.path.parent} is in use by another ablate run ({holder}); wait for it to end, "
                "or write elsewhere with --results DIR"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None


# ------------------------------------------------------------------------------------- the owner


class ResultsDir:
    """A sweep's results folder (`results/<sweep name>`): paths, writes, reads, the lock.

    Cheap to make (no I/O); make one per folder and call its methods. A run file is immutable for
    `write_run` (a second write of one run id fails). The one exception is `replace_run`: a failed or
    timed-out run's file replaced by its retry's outcome, published with `atomic_write(self.run_file(id),
    ..., overwrite=True)` and then appended to `self.index`: readers see the old row or the new one,
    never a mix, and the index serves the new one only (it is keyed by the file, not the run id).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.index = RunIndex(self.root / ".cache")

    def __repr__(self) -> str:
        return f"ResultsDir({str(self.root)!r})"

    # -- paths

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def attempts_dir(self) -> Path:
        return self.root / "attempts"

    @property
    def steps_dir(self) -> Path:
        return self.root / "steps"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    def run_file(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.parquet"

    def attempt_file(self, run_id: str, attempt: int) -> Path:
        return self.attempts_dir / f"{run_id}.{attempt}.parquet"

    def attempt_log_file(self, run_id: str, attempt: int) -> Path:
        return self.attempts_dir / f"{run_id}.{attempt}.txt"

    def steps_file(self, run_id: str) -> Path:
        return self.steps_dir / f"{run_id}.parquet"

    def log_file(self, run_id: str) -> Path:
        return self.logs_dir / f"{run_id}.txt"

    def figure_file(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"

    @property
    def sweep_file(self) -> Path:
        return self.root / "sweep.json"

    @property
    def spec_file(self) -> Path:
        """The spec as submitted (`spec.yaml`), compared with a resubmitted one."""
        return self.root / "spec.yaml"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def is_results(self) -> bool:
        """A folder written by ablate: it has runs/ or sweep.json."""
        return self.runs_dir.is_dir() or self.sweep_file.exists()

    def require(self) -> ResultsDir:
        """This folder, or InputError naming what is missing (`missing_folder_text` for no folder)."""
        if not self.root.is_dir():
            raise InputError(missing_folder_text(self.root))
        if not self.is_results():
            raise InputError(f"{self.root}: not a results folder (no runs/ and no sweep.json inside)")
        return self

    # -- writing results

    def write_run(self, row: dict, knob_types: dict[str, str], *, fsync: bool = True) -> Path:
        """A run's final outcome to `runs/<run_id>.parquet`, refused (FileExistsError) if it exists;
        then its row to the index's journal. fsync=False only for re-creatable bulk writes."""
        table, knob_types = self._table(row, knob_types), dict(knob_types)
        path = self._write_table(self.run_file(row["run_id"]), table, overwrite=False, fsync=fsync)
        self.index.append(path, table, knob_types)
        return path

    def replace_run(self, row: dict, knob_types: dict[str, str]) -> Path:
        """A retried run's outcome in place of its failed or timed-out run file (`--retry-failed`): the
        new file is fsynced under a hidden name and renamed over the old one (a reader opens the old
        file or the new, never a mix), then its row goes to the index's journal, keyed by the new file
        (the old row's key no longer matches, so no read serves it). Refused (FileExistsError) when the
        stored outcome is ok or diverged: those are final. Without a stored file: `write_run`."""
        import pyarrow.parquet as pq

        path = self.run_file(row["run_id"])
        try:
            old = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        except FileNotFoundError:
            return self.write_run(row, knob_types)
        if not old or old[0] not in RETRYABLE_STATUSES:
            raise FileExistsError(f"{path}: its outcome is {old[0] if old else 'unknown'}, not replaced")
        table, knob_types = self._table(row, knob_types), dict(knob_types)
        path = self._write_table(path, table, overwrite=True, fsync=True)
        self.index.append(path, table, knob_types)
        return path

    def write_attempt(self, row: dict, knob_types: dict[str, str]) -> Path:
        """A failed attempt to `attempts/<run_id>.<attempt>.parquet` (the run schema)."""
        path = self.attempt_file(row["run_id"], int(row.get("attempt") or 0))
        return self._write_table(path, self._table(row, knob_types), overwrite=False, fsync=True)

    def write_steps(self, run_id: str, steps: list[dict], *, fsync: bool = True) -> Path:
        """A run's step table to `steps/<run_id>.parquet`; may replace it (a retried run's curve)."""
        from analysis.schema import steps_table

        return self._write_table(
            self.steps_file(run_id), steps_table(run_id, steps), overwrite=True, fsync=fsync
        )

    @staticmethod
    def _table(row: dict, knob_types: dict[str, str]):
        from analysis.schema import row_table, run_schema

        return row_table(row, run_schema(knob_types))

    @staticmethod
    def _write_table(path: Path, table, *, overwrite: bool, fsync: bool) -> Path:
        import pyarrow.parquet as pq

        return atomic_write(path, lambda fh: pq.write_table(table, fh), overwrite=overwrite, fsync=fsync)

    # -- writing the other files (re-creatable, or rewritten whole: no fsync)

    def write_text(self, path: Path, text: str) -> Path:
        """Any text file of the folder (a log, spec.yaml, a report), replaced whole."""
        return self.write_bytes(path, text.encode("utf-8"))

    def write_bytes(self, path: Path, data: bytes) -> Path:
        path = Path(path)
        if self.root.resolve() not in path.resolve().parents:
            raise ValueError(f"{path} is not inside the results folder {self.root}")
        return atomic_write(path, lambda fh: fh.write(data), overwrite=True)

    def write_json(self, path: Path, data: dict) -> Path:
        return self.write_text(path, json.dumps(data, indent=1) + "\n")

    def write_sweep(self, info: SweepInfo) -> Path:
        return self.write_json(self.sweep_file, info.to_json())

    def write_status(self, status: dict) -> Path:
        return self.write_json(self.status_file, status)

    # -- reading

    def finished_run_ids(self) -> set[str]:
        """run_ids that have a final result file (a listing: no file is opened)."""
        return set(result_files(self.runs_dir))

    def run_statuses(self) -> dict[str, str]:
        """run_id -> the status of its final row (from the index: one file, not one per run)."""
        table = self.runs_table()
        if table is None:
            return {}
        return dict(zip(table.column("run_id").to_pylist(), table.column("status").to_pylist(), strict=True))

    def retryable_run_ids(self) -> set[str]:
        """run_ids whose final row is failed or timed out (what `--retry-failed` runs again)."""
        return {run_id for run_id, st in self.run_statuses().items() if st in RETRYABLE_STATUSES}

    def attempt_counts(self) -> Counter:
        """run_id -> how many failed attempts are stored (so a resumed run keeps counting)."""
        return Counter(name.split(".")[0] for name in result_files(self.attempts_dir))

    def read_runs(self):
        """Every final run row, sorted by run_id, as a DataFrame (empty, with the columns, if none)."""
        table = self.runs_table()
        if table is None:
            from analysis.schema import run_schema

            return run_schema({}).empty_table().to_pandas()
        return table.to_pandas()

    def runs_table(self):
        """Every final run row as a pyarrow Table sorted by run_id (None if there is none): from the index
        where its row is of the file that is there now, else from the run file."""
        import pyarrow as pa

        files = self._run_file_keys()
        if not files:
            return None
        known, from_journal = self.index.load(files)
        covered = set() if known is None else set(known.column("run_id").to_pylist())
        missing = sorted(set(files) - covered)
        parts = [t for t in (known, _scan_keyed([files[r] for r in missing])) if t is not None and t.num_rows]
        table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        table = table.combine_chunks().sort_by("run_id")  # one chunk per file otherwise: slow to sort
        if from_journal + len(missing) >= INDEX_REFRESH_MIN_NEW:
            self.index.save(table)
        return table.drop_columns([KEY_COLUMN])

    def _run_file_keys(self) -> dict[str, tuple[Path, str]]:
        """run_id -> (its run file, the file's identity key)."""
        out = {}
        for run_id, path in result_files(self.runs_dir).items():
            with contextlib.suppress(FileNotFoundError):  # removed since the listing
                out[run_id] = (path, _file_key(path.stat()))
        return out

    def read_attempts(self):
        """All failed-attempt rows (the run schema), as a DataFrame."""
        table = _scan(sorted(str(p) for p in result_files(self.attempts_dir).values()))
        if table is None:
            from analysis.schema import run_schema

            return run_schema({}).empty_table().to_pandas()
        return table.to_pandas()

    def read_steps(self, run_ids=None, *, val_only: bool = False):
        """Step rows (all runs, or those in `run_ids`) sorted by run_id and step, as a DataFrame.

        val_only: only validation steps (val_loss not null), filtered inside the scan: loss curves of
        thousands of runs then cost a few rows per run instead of every step.
        """
        import pyarrow.dataset as ds

        from analysis.schema import STEP_SCHEMA

        files = result_files(self.steps_dir)
        if run_ids is not None:
            wanted = set(run_ids)
            files = {r: p for r, p in files.items() if r in wanted}
        if not files:
            return STEP_SCHEMA.empty_table().to_pandas()
        filter_ = ds.field("val_loss").is_valid() if val_only else None
        paths = [str(files[r]) for r in sorted(files)]
        table = ds.dataset(paths, format="parquet", schema=STEP_SCHEMA).to_table(filter=filter_)
        return table.sort_by([("run_id", "ascending"), ("step", "ascending")]).to_pandas()

    def read_sweep(self) -> SweepInfo:
        """sweep.json (an empty SweepInfo when absent); InputError if it is not valid JSON or a field has
        the wrong type."""
        return SweepInfo.from_json(self.read_sweep_json(), self.sweep_file)

    def read_sweep_json(self) -> dict:
        if not self.sweep_file.exists():
            return {}
        try:
            data = json.loads(self.sweep_file.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{self.sweep_file}: not valid JSON ({e})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(
                f"{self.sweep_file}: cannot be read ({getattr(e, 'strerror', None) or e})"
            ) from None
        if not isinstance(data, dict):
            raise InputError(
                f'{self.sweep_file}: not a JSON object; ablate writes one such as {{"name": ...}}'
            )
        return data

    def read_status(self) -> dict:
        """status.json, or {} when absent or unreadable (it is advisory)."""
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def drop_machine_state(self) -> None:
        """Remove what belongs to the machine that wrote the folder, not to its results: the lock file
        and the read index (a folder copied elsewhere gets new file identities anyway)."""
        self.lock_file.unlink(missing_ok=True)
        shutil.rmtree(self.index.folder, ignore_errors=True)

    def copy_to(self, target: str | Path) -> ResultsDir:
        """A copy of the whole folder at `target` (which must not exist): landing results elsewhere."""
        shutil.copytree(self.root, target)
        return ResultsDir(target)

    # -- the lock

    def lock(self) -> FolderLock:
        """The driver's exclusive lock (`with rd.lock(): ...`); FolderBusy when another holds it."""
        return FolderLock(self.lock_file)

    def driver_alive(self) -> bool:
        """True when a driver holds the folder's lock right now."""
        if not self.lock_file.exists():
            return False
        with open(self.lock_file) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False


def missing_folder_text(root: Path, shown: int = 5) -> str:
    """One line for a results folder that is not there, naming the results folders beside it, nearest
    name first (`results/drop_one_mlp` when `--profile cpu` wrote `results/drop_one_mlp-cpu`)."""
    from difflib import SequenceMatcher

    parent = root.parent
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir() and ResultsDir(p).is_results()]
    except OSError:
        names = []
    where = "this folder" if str(parent) == "." else str(parent)
    if not names:
        none = f"and {where} holds none" if parent.is_dir() else f"nor is there a folder {parent}"
        return (
            f"{root}: no such results folder, {none}; `ablate run SPEC` writes results/<spec name> "
            "(results/<spec name>-<profile> with --profile)"
        )
    names.sort(key=lambda n: (-SequenceMatcher(None, root.name, n).ratio(), n))
    listed = ", ".join(str(parent / n) for n in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{root}: no such results folder; {where} has {listed}{more} (nearest first)"


# ------------------------------------------------------------------------------------------ index


class RunIndex:
    """`.cache/runs.parquet` (rows with their file keys) and `.cache/runs.journal` (rows appended since).

    Hidden from every other reader of the folder (a `.` name, outside runs/). Nothing here raises for a
    missing, torn or unwritable index: the run files are the truth.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.snapshot = folder / "runs.parquet"
        self.journal = folder / "runs.journal"

    def append(self, path: Path, table, knob_types: dict[str, str]) -> None:
        """Record the row just written to `path` (one line, one write: a reader sees it whole or torn)."""
        import pyarrow as pa

        with contextlib.suppress(OSError):  # a full disk: the result is written, the index catches up later
            key = _file_key(path.stat())
            row = {
                f.name: (table.column(f.name).cast(pa.int64()) if pa.types.is_timestamp(f.type) else
                         table.column(f.name)).to_pylist()[0]
                for f in table.schema
            }  # fmt: skip
            line = json.dumps({"key": key, "knob_types": knob_types, "row": row}) + "\n"
            self.folder.mkdir(exist_ok=True)
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(line)

    def load(self, files: dict[str, tuple[Path, str]]):
        """(a Table of the known rows whose key matches its file now, with the key column; how many came
        from the journal)."""
        import pyarrow as pa

        keys = {run_id: key for run_id, (_, key) in files.items()}
        parts, covered = [], set()
        snap = self._snapshot()
        if snap is not None:
            pairs = zip(snap.column("run_id").to_pylist(), snap.column(KEY_COLUMN).to_pylist(), strict=True)
            ok = [keys.get(run_id) == key for run_id, key in pairs]
            snap = snap.filter(pa.array(ok, type=pa.bool_()))
            covered = set(snap.column("run_id").to_pylist())
            parts.append(snap)
        journal = self._journal_tables(keys, covered)
        from_journal = sum(t.num_rows for t in journal)
        parts += journal
        parts = [t for t in parts if t.num_rows]
        if not parts:
            return None, from_journal
        try:
            return pa.concat_tables(parts, promote_options="permissive"), from_journal
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a knob changed type between plans: read the files
            return None, 0

    def _snapshot(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.snapshot)
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return None  # none yet, or a damaged one
        return table if KEY_COLUMN in table.column_names else None  # an index from before the keys

    def _journal_tables(self, keys: dict[str, str], covered: set[str]) -> list:
        """Tables (one per knob-type set) of the journal rows whose key matches the file there now."""
        import pyarrow as pa

        from analysis.schema import run_schema

        groups: dict[str, tuple[dict, dict[str, dict]]] = {}
        for rec in self._records():
            run_id = rec["row"].get("run_id")
            if run_id in covered or keys.get(run_id) != rec["key"]:
                continue
            types = rec["knob_types"]
            group = groups.setdefault(json.dumps(types, sort_keys=True), (types, {}))
            group[1][run_id] = {**rec["row"], KEY_COLUMN: rec["key"]}  # a later line wins
        out = []
        for types, rows in groups.values():
            schema = run_schema(types).append(pa.field(KEY_COLUMN, pa.string()))
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                out.append(pa.Table.from_pylist(list(rows.values()), schema=schema))
        return out

    def _records(self):
        try:
            text = self.journal.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line (a writer mid-append, or killed)
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                continue
            if isinstance(rec.get("row"), dict) and isinstance(rec.get("knob_types"), dict):
                yield rec

    def save(self, table) -> None:
        """Write `table` (rows and their keys) as the index, then drop the journal it has taken in.

        A row a writer appended meanwhile may go with the journal: its run file is then read once more."""
        import pyarrow.parquet as pq

        with contextlib.suppress(OSError):  # a read-only folder: reading works, only without the speed-up
            atomic_write(self.snapshot, lambda fh: pq.write_table(table, fh), overwrite=True)
            done = self.journal.with_name(f".{self.journal.name}.{os.getpid()}.{threading.get_ident()}")
            os.replace(self.journal, done)
            os.unlink(done)


def _scan(files: list[str]):
    """One dataset over the files (a single C++ scan, not a loop of reads); None for no files."""
    if not files:
        return None
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    # the first file's schema, widened by the last one's (a resumed sweep may have added knobs)
    schema = pq.read_schema(files[0])
    if len(files) > 1:
        schema = pa.unify_schemas([schema, pq.read_schema(files[-1])], promote_options="permissive")
    return ds.dataset(files, format="parquet", schema=schema).to_table()


def _scan_keyed(files: list[tuple[Path, str]]):
    """`_scan` of run files with each row's file key added (the files' order is the rows' order)."""
    import pyarrow as pa

    table = _scan([str(p) for p, _ in files])
    if table is None:
        return None
    by_id = {p.name[: -len(".parquet")]: key for p, key in files}
    keys = [by_id.get(r) for r in table.column("run_id").to_pylist()]
    return table.append_column(KEY_COLUMN, pa.array(keys, type=pa.string()))
