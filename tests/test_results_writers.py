"""No module writes into a results folder except through its owner, `analysis.resultsdir.ResultsDir`.

A grep over the syntax trees of the orchestrator, analysis and our benchmarks: every call that writes
a file directly (Path.write_text/write_bytes with the data as the only argument, open() or .open() in
a writing mode, os.replace/rename/link, shutil's copies, parquet writers, tempfile.mkstemp, tar
extraction, savefig) must sit in the owner or in a function listed below with why it is no results
folder. `folder.write_text(path, text)` (two arguments) is the owner's API and passes. The trainer is
left out by design: it never sees a results folder, and its shard and log writers stay its own, as do
compile caches; benchmarks/compare_speed.py and trainer_speed.py write benchmark outputs only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWNER = "analysis/resultsdir.py"
SCANNED = ("orchestrator", "analysis", "benchmarks")
NOT_SCANNED = {"benchmarks/compare_speed.py", "benchmarks/trainer_speed.py"}
# (file, function) -> why what it writes is not a results folder
ELSEWHERE = {
    ("orchestrator/launch.py", "run_attempt"): "the job's tee, in the node's scratch folder",
    ("orchestrator/nodecache.py", "locked"): "a node compile cache's lock file",
    ("orchestrator/nodecache.py", "unpack"): "a node compile cache, from a packed one",
    ("orchestrator/nodecache.py", "publish_to_shared"): "the packed compile cache in the shared folder",
    ("analysis/report.py", "_png"): "a figure into a BytesIO; the owner writes the bytes",
    ("benchmarks/ingest_logs.py", "generate"): "synthetic upstream logs to ingest, in a temp folder",
    ("benchmarks/land_results.py", "land"): "unpacks the tarball into a temp folder",
    ("benchmarks/load.py", "time_plan"): "the load spec file",
    ("benchmarks/reliability.py", "_chaos_spec"): "the chaos part's spec file",
    ("benchmarks/reliability.py", "_storage_spec"): "the storage part's spec file",
    ("benchmarks/reliability.py", "start_driver"): "the chaos driver's own stdout log",
    ("benchmarks/readme_timings.py", "timed"): "a timed command's output log, in a temp folder",
    ("benchmarks/readme_timings.py", "main"): "the --json file of the figures",
}
WRITE_METHODS = {"write_text", "write_bytes"}
WRITE_CALLS = {
    ("os", "replace"),
    ("os", "rename"),
    ("os", "link"),
    ("shutil", "copy"),
    ("shutil", "copy2"),
    ("shutil", "copyfile"),
    ("shutil", "copytree"),
    ("shutil", "move"),
    ("pq", "write_table"),
    ("tempfile", "mkstemp"),
}
WRITE_ANY_RECEIVER = {"to_parquet", "to_csv", "extractall", "savefig"}


def _writing_mode(call: ast.Call, mode_at: int) -> bool:
    mode = call.args[mode_at] if len(call.args) > mode_at else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if not isinstance(mode, ast.Constant) or not isinstance(mode.value, str):
        return mode is not None  # a mode we cannot read counts as writing
    return any(c in mode.value for c in "wax+")


def is_direct_write(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id == "open" and _writing_mode(call, 1)
    if not isinstance(f, ast.Attribute):
        return False
    if f.attr in WRITE_METHODS:
        return len(call.args) == 1  # Path.write_text(data); ResultsDir.write_text(path, data) passes
    if f.attr == "open" and not (isinstance(f.value, ast.Name) and f.value.id in ("tarfile", "os")):
        return _writing_mode(call, 0)
    if isinstance(f.value, ast.Name) and (f.value.id, f.attr) in WRITE_CALLS:
        return True
    return f.attr in WRITE_ANY_RECEIVER


def direct_writes(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every direct write in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Call) and is_direct_write(child):
                out.append((func, child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return out


def test_the_matcher_tells_direct_writes_from_the_owners_api():
    def hits(src: str) -> int:
        return sum(is_direct_write(n) for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call))

    assert hits("p.write_text('x'); open(p, 'w'); p.open('ab'); os.replace(a, b); pq.write_table(t, f)") == 5
    assert hits("df.to_parquet(p); tar.extractall(d); shutil.copytree(a, b); fig.savefig(p)") == 4
    assert hits("folder.write_text(folder.log_file(r), text); open(p); open(p, 'rb'); p.read_text()") == 0


def test_only_the_owner_writes_into_a_results_folder():
    found = []
    for pkg in SCANNED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == OWNER or rel in NOT_SCANNED:
                continue
            found += [
                f"{rel}:{line} in {func}"
                for func, line in direct_writes(path)
                if (rel, func) not in ELSEWHERE
            ]
    assert found == [], "write through analysis.resultsdir.ResultsDir, or list the function with why"


def test_every_listed_exception_still_writes():
    """A listed function that no longer writes anything is dropped from the list (it would hide one)."""
    stale = [
        f"{rel} {func}" for rel, func in ELSEWHERE if func not in {f for f, _ in direct_writes(ROOT / rel)}
    ]
    assert stale == []
