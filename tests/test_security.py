"""Security properties that hold for the whole code base: commands never go through a shell, YAML is
never loaded with an unsafe loader, and nothing read from a results folder is unpickled or executed."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# calls that run a shell, execute text, or unpickle (pickles execute code when loaded)
FORBIDDEN = {"os.system", "os.popen", "eval", "exec", "pickle.load", "pickle.loads", "pd.read_pickle",
             "pandas.read_pickle", "torch.load"}  # fmt: skip
SOURCES = sorted(p for pkg in ("trainer", "orchestrator", "analysis") for p in (ROOT / pkg).rglob("*.py"))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else "?"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_no_unsafe_loaders(path):
    for call in _calls(path):
        name = _name(call.func)
        assert name not in FORBIDDEN, f"{path}: {name}"
        for kw in call.keywords:
            if kw.arg == "shell":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, f"{path}: shell="
        if name == "yaml.load":
            loader = next((kw.value for kw in call.keywords if kw.arg == "Loader"), None)
            assert loader is not None and _name(loader) == "_SpecLoader", (
                f"{path}: yaml.load without SafeLoader"
            )


def test_the_spec_loader_is_a_safe_loader():
    import yaml

    from orchestrator.spec import _SpecLoader

    assert issubclass(_SpecLoader, yaml.SafeLoader)


def test_spec_command_arguments_are_never_shell_interpreted(tmp_path):
    """An argument with shell syntax reaches the program as one literal argument."""
    import subprocess
    import sys

    from orchestrator.launch import resolve_command, start_process

    evil = "x; touch PWNED $(touch PWNED2) `touch PWNED3`"
    cmd = resolve_command(["python", "-c", "import sys; print(repr(sys.argv[1]))", evil])
    proc = start_process(cmd, {"PATH": "/usr/bin:/bin"}, str(tmp_path))
    out, _ = proc.communicate(timeout=60)
    text = out.decode() if isinstance(out, bytes) else out
    assert repr(evil) in text
    assert not any(tmp_path.glob("PWNED*"))
    assert cmd[0] == sys.executable and subprocess.list2cmdline  # resolved to the worker's interpreter


def test_results_readers_ignore_pickles_and_hidden_files(tmp_path):
    """A results folder with a planted pickle and hidden/temp files: readers never open them."""
    import json

    from analysis import store
    from tests.analysis.helpers import run_row

    root = tmp_path / "res"
    store.write_run(root, run_row("r1", "baseline", loss=3.3, time_ms=1000), {})
    (root / "runs" / "evil.pkl").write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    (root / "runs" / ".tmp-half.parquet").write_bytes(b"PAR1 not really")
    (root / "sweep.json").write_text(json.dumps({"name": "x"}))
    runs = store.read_runs(root)
    assert list(runs["run_id"]) == ["r1"]
    assert not re.search("PWNED", " ".join(p.name for p in tmp_path.rglob("*") if p.name != "evil.pkl"))
