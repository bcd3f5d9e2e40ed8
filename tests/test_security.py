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


AUTH_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret-token", "RAY_AUTH_TOKEN_PATH": "token-file"}


@pytest.mark.parametrize("address", ["10.1.2.3:6379", "127.0.0.1:6379", "auto", None])
def test_joining_or_starting_ray_keeps_token_authentication(monkeypatch, address):
    """Ray's token authentication is set by RAY_AUTH_MODE / RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH (or
    ~/.ray/auth_token): `ablate run` passes them to ray.init unchanged and adds nothing about auth, whether
    it joins a cluster (--address) or starts its own (then on loopback, dashboard off)."""
    import os

    import ray
    from ray._private import ray_constants

    from orchestrator.executor import RayExecutor

    for k, v in AUTH_ENV.items():
        monkeypatch.setenv(k, v)
    # what start() may change for a loopback cluster, restored after the test
    monkeypatch.setenv(
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    )
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    calls = []
    monkeypatch.setattr(
        ray, "init", lambda *a, **kw: calls.append((kw, {k: os.environ.get(k) for k in AUTH_ENV}))
    )
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    RayExecutor.start(address, num_cpus=1)
    ((kwargs, env_at_init),) = calls
    assert env_at_init == AUTH_ENV and {k: os.environ.get(k) for k in AUTH_ENV} == AUTH_ENV
    assert not [k for k in kwargs if "auth" in k.lower()]
    assert not [k for k in kwargs.get("_system_config") or {} if "auth" in str(k).lower()]
    if address is None:
        assert (kwargs["_node_ip_address"], kwargs["dashboard_host"]) == ("127.0.0.1", "127.0.0.1")
        assert kwargs["include_dashboard"] is False
    else:
        assert kwargs["address"] == address
