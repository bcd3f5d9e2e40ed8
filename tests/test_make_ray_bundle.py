"""scripts/make-ray-bundle.sh, offline: stand-in wheels in a local folder (WHEELS=DIR) become one
packed bundle whose activate.sh puts it first on the path, trimmed of the Ray libraries ablate never
loads, with Ray's servers still executable and what Ray and the packages named need beyond the bundle
named."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make-ray-bundle.sh"


def _wheel(folder: Path, name: str, version: str, files: dict[str, str], requires=(), executable=()) -> None:
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (0o755 if path in executable else 0o644) << 16
            z.writestr(info, text)
        z.writestr(f"{dist}.dist-info/METADATA", meta)
        z.writestr(
            f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{dist}.dist-info/RECORD", "")


def _stand_ins(folder: Path) -> None:
    folder.mkdir()
    server = "ray/core/src/ray/gcs/gcs_server"
    ray_files = {
        "ray/__init__.py": "__version__ = '2.60.0'\n",
        "ray/scripts/__init__.py": "",
        "ray/scripts/scripts.py": "def main():\n    print('stand-in ray cli')\n    return 0\n",
        "ray/rllib/__init__.py": "",
        "ray/jars/ray_dist.jar": "java",
        "ray/tune/__init__.py": "",
        "ray/dashboard/client/build/main.js": "ui",
        "ray/dashboard/client/build/main.js.map": "map",
        server: "#!/bin/sh\n",
    }
    requires = ["click>=7.0", "jsonschema", "msgpack<2.0.0,>=1.0.0", 'aiohttp>=3.7; extra == "default"']
    _wheel(folder, "ray", "2.60.0", ray_files, requires, executable={server})
    for name in ("jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "pydantic"):
        module = name.replace("-", "_")
        requires = PYDANTIC_REQUIRES if name == "pydantic" else ()
        _wheel(folder, name, "1.0", {f"{module}/__init__.py": f"NAME = {name!r}\n"}, requires)


# a PACKAGE named: what it requires beyond the bundle is named too (its extras' requirements are not)
PYDANTIC_REQUIRES = (
    "pydantic_core==2.0",
    "Typing.Extensions>=4.6",
    "jsonschema",
    'email-validator; extra == "email"',
)


def test_the_bundle_is_trimmed_packed_and_first_on_the_path(tmp_path):
    wheels, dest, site = tmp_path / "wheels", tmp_path / "carry", tmp_path / "site"
    _stand_ins(wheels)
    env = {**os.environ, "WHEELS": str(wheels), "ABLATE_RAY_SITE": str(site), "PYTHONPATH": ""}
    built = subprocess.run(["bash", str(SCRIPT), str(dest), "pydantic"], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    assert "ray 2.60.0 requires: click, jsonschema, msgpack" in lines  # not the 'default' extra's aiohttp
    assert "pydantic 1.0 requires: jsonschema, pydantic-core, typing-extensions" in lines
    assert "expected on the target: click, msgpack, pydantic-core, typing-extensions" in lines
    assert lines[-1].startswith(f"{dest}: ") and "(ray 2.60.0 for Python 3.12, 6 wheels)" in lines[-1]
    assert sorted(p.name for p in dest.iterdir()) == ["activate.sh", "site.tar.xz"]
    probe = (
        f"source {dest}/activate.sh && {sys.executable} -c "
        "'import ray, pydantic, jsonschema; print(ray.__file__); print(pydantic.NAME)' && ray"
    )
    used = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert used.returncode == 0, used.stderr
    assert used.stdout.splitlines() == [str(site / "ray" / "__init__.py"), "pydantic", "stand-in ray cli"]
    kept = {str(p.relative_to(site / "ray")) for p in (site / "ray").rglob("*") if p.is_file()}
    assert "dashboard/client/build/main.js" in kept and "scripts/scripts.py" in kept
    assert not [k for k in kept if k.startswith(("rllib/", "jars/", "tune/")) or k.endswith(".map")]
    assert (site / "ray/core/src/ray/gcs/gcs_server").stat().st_mode & stat.S_IXUSR  # Ray's servers run
    # sourced again: not unpacked again (the packed file is not even read), the bundle first on the path
    (dest / "site.tar.xz").unlink()
    again = f"source {dest}/activate.sh && echo $PYTHONPATH"
    out = subprocess.run(
        ["bash", "-c", again], env={**env, "PYTHONPATH": "/x"}, capture_output=True, text=True
    )
    assert (out.returncode, out.stdout.strip()) == (0, f"{site}:/x")
