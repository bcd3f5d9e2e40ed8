"""Getting registry packages into a cache folder with the registries' own clients.

Debian packages come from ``apt-get download NAME`` (the version the machine's package lists
offer: Debian's mirrors keep only current versions, so they cannot be pinned), npm packages from
``npm pack NAME@VERSION`` (pinned: npm keeps every version). A package already in the cache is
used as it is; ``fetch_missing=False`` makes a missing one an error instead of a download, which
is how the tests run (with archives they build themselves).
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.shards import DataError

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Package:
    """A package of one registry: ``debian`` (``version`` None: what apt offers) or ``npm`` (pinned)."""

    registry: str
    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.registry}:{self.name}" + (f"@{self.version}" if self.version else "")

    def pattern(self) -> str:
        """The archive's file name in the cache, as a glob (``*`` for the Debian version)."""
        if self.registry == "debian":
            return f"{self.name}_*_*.deb"
        return f"{self.name.removeprefix('@').replace('/', '-')}-{self.version}.tgz"

    def fetch_command(self, cache: Path) -> list[str]:
        if self.registry == "debian":
            return ["apt-get", "download", "-q", self.name]
        return ["npm", "pack", "--silent", f"{self.name}@{self.version}", "--pack-destination", str(cache)]


def archive_version(path: Path) -> str:
    """The version in an archive's file name (``perl-doc_5.36.0-7%2bdeb12u4_all.deb``: 5.36.0-7+deb12u4)."""
    if path.name.endswith(".deb"):
        return urllib.parse.unquote(path.name.split("_")[1])
    return path.name.removesuffix(".tgz").rsplit("-", 1)[1]


def find_archive(package: Package, cache: Path) -> Path | None:
    """The cached archive of ``package``; of several Debian versions, the newest file."""
    found = sorted(cache.glob(package.pattern()), key=lambda p: (p.stat().st_mtime, p.name))
    return found[-1] if found else None


def _fetch(package: Package, cache: Path, run: Runner) -> Path:
    command = package.fetch_command(cache)
    try:
        done = run(command, cwd=cache, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise DataError(
            f"{package}: `{command[0]}` is not installed; install it or copy {package.pattern()} into {cache}"
        ) from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{package}: `{' '.join(command)}` got no answer in 10 minutes") from None
    found = find_archive(package, cache)
    if done.returncode != 0 or found is None:
        said = (done.stderr or done.stdout or "").strip().splitlines()
        hint = "; run `apt-get update` first" if package.registry == "debian" else ""
        why = said[-1] if said else f"exit {done.returncode}"
        raise DataError(f"{package}: `{' '.join(command)}` failed ({why}){hint}")
    return found


def ensure_archives(
    packages: Sequence[Package], cache: Path, *, fetch_missing: bool = True, run: Runner = subprocess.run
) -> dict[Package, Path]:
    """The archive of every package, fetched into ``cache`` when missing (unless ``fetch_missing``
    is false: then a missing one is a DataError naming the file to provide)."""
    cache.mkdir(parents=True, exist_ok=True)
    archives = {}
    for package in dict.fromkeys(packages):
        found = find_archive(package, cache)
        if found is None and not fetch_missing:
            raise DataError(f"{package}: no {package.pattern()} in {cache} (and fetching is off)")
        archives[package] = found or _fetch(package, cache, run)
    return archives
