"""Land results folders brought back from the GPU machine into this checkout's `results/`.

    python benchmarks/land_results.py PATH/results.tgz [--only NAME ...] [--dest results]

`benchmarks/h200_collect.sh` packs the chain's `results/` folders into `results.tgz`. This unpacks the
named ones (all by default) into `--dest`, drops the driver's `.lock` and the read index (`.cache/`),
makes the machine's absolute paths in the runs' logs relative to the repository (torch's recompile
notices name the source files by absolute path; a committed file names no machine's paths), and
redraws each report with today's code (`ablate report`). A folder that exists already is replaced
only with `--replace`. It prints one line per folder: runs, size, and what it changed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# an absolute path that ends in one of our packages: everything before the package is the machine's
_PACKAGES = "trainer|orchestrator|analysis|benchmarks|tests"
_SOURCE_PATH = re.compile(rf"(?<![\w.])/(?:[\w.+-]+/)+?(?=(?:{_PACKAGES})/)")


def relative_sources(text: str) -> tuple[str, int]:
    """`text` with absolute paths to our source files made repository-relative; and how many."""
    return _SOURCE_PATH.subn("", text)


def land(tgz: Path, dest: Path, only: list[str] | None = None, replace: bool = False) -> list[str]:
    """Unpack the chain's results folders from `tgz` into `dest`; one summary line per folder."""
    from analysis.report import write_report
    from analysis.resultsdir import ResultsDir

    lines = []
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
        root = Path(tmp) / "results"
        if not root.is_dir():
            raise SystemExit(f"land_results: {tgz} holds no results/ folder (made by h200_collect.sh?)")
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
        missing = sorted(set(only or []) - set(names))
        if missing:
            raise SystemExit(f"land_results: {tgz} has no {', '.join(missing)}; it has {', '.join(names)}")
        for name in only or names:
            src, target = root / name, dest / name
            if target.exists() and not replace:
                raise SystemExit(f"land_results: {target} exists; pass --replace to overwrite it")
            folder = ResultsDir(src)
            folder.drop_machine_state()
            scrubbed = 0
            for log in sorted(src.glob("**/*.txt")):
                text, n = relative_sources(log.read_text(errors="replace"))
                if n:
                    folder.write_text(log, text)
                    scrubbed += n
            if target.exists():
                shutil.rmtree(target)
            runs = folder.copy_to(target).read_runs()
            if len(runs):
                write_report(target)
            size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            report = "redrawn" if len(runs) else "none"
            lines.append(
                f"{target}: {len(runs)} run(s), {size / 2**20:.2f} MiB, "
                f"{scrubbed} absolute source path(s) made relative, report {report}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tgz", type=Path, help="results.tgz from benchmarks/h200_collect.sh")
    p.add_argument("--only", nargs="+", metavar="NAME", help="land only these folders")
    p.add_argument("--dest", type=Path, default=REPO / "results", help="where to (default: results/)")
    p.add_argument("--replace", action="store_true", help="replace folders that exist already")
    args = p.parse_args(argv)
    if not args.tgz.is_file():
        print(f"land_results: {args.tgz} is not a file", file=sys.stderr)
        return 2
    try:
        for line in land(args.tgz, args.dest, args.only, args.replace):
            print(line)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    except (tarfile.TarError, EOFError) as e:  # a truncated or foreign file: one line
        print(f"land_results: cannot read {args.tgz} as a tar.gz ({e}); collect it again", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
