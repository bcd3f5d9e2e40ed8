"""`python benchmarks/reliability.py --quick` in the ci tier: chaos (12 runs, every fault kind), a full disk,
the fuzzers, load at 2,000 runs and the security checks, ~70 s on 2 cores. It fails, never skips, when the
benchmark cannot run (no Ray, no hypothesis): the ci tier is where these guarantees are checked."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ci
def test_reliability_quick_loses_duplicates_and_orphans_nothing():
    proc = subprocess.run(
        [sys.executable, "benchmarks/reliability.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    assert "result: everything held" in out, out[-4000:]
    for part in ("chaos", "storage", "fuzz", "load", "security"):
        assert re.search(rf"^  {part}\s+held\s", out, re.M), f"{part} did not hold:\n{out[-4000:]}"
    figures = re.findall(r"^  (runs planned|runs lost|runs duplicated|orphan processes)\s+(\d+)$", out, re.M)
    by_name: dict[str, list[int]] = {}
    for name, value in figures:
        by_name.setdefault(name, []).append(int(value))
    assert by_name["runs planned"][0] == 12  # the chaos sweep
    assert by_name["runs lost"] == [0, 0]  # chaos, storage
    assert by_name["runs duplicated"] == [0]
    assert by_name["orphan processes"] == [0, 0]
    assert int(re.search(r"^  cases tried\s+(\d+)$", out, re.M).group(1)) >= 7 * 100


def test_every_name_reliability_takes_from_the_tests_is_there():
    """The benchmark runs the suite's fakes and properties harder (its docstring says why it imports
    them from tests/): a renamed helper or property table fails here, in the default tier."""
    source = (ROOT / "benchmarks" / "reliability.py").read_text()
    taken = [
        (node.module, alias.name)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.")
        for alias in node.names
    ]
    assert len(taken) >= 4
    missing = [f"{mod}.{name}" for mod, name in taken if not hasattr(importlib.import_module(mod), name)]
    assert missing == []
    paths = re.findall(r'ROOT / "tests" / "(\w+)" / "([\w.]+)"', source)
    assert paths and all((ROOT / "tests" / folder / name).is_file() for folder, name in paths)
