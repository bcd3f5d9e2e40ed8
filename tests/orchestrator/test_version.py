"""Provenance: the version a results row records names the code that produced it."""

import re
import subprocess

from orchestrator import version


def test_version_from_a_checkout_names_the_commit():
    v = version.ablate_version()
    head = subprocess.run(
        ["git", "-C", str(version.ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+\+g[0-9a-f]{12}(\.dirty)?", v), v
    assert head and f"+g{head}" in v


def test_version_without_git_is_the_pyproject_version(monkeypatch, tmp_path):
    version.ablate_version.cache_clear()
    monkeypatch.setattr(version, "ROOT", tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ablate"\nversion = "9.8.7"\n')
    try:
        assert version.ablate_version() == "9.8.7"
    finally:
        version.ablate_version.cache_clear()
