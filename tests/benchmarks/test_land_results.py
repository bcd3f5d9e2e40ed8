"""benchmarks/land_results.py: results brought back from the GPU machine land complete and clean."""

import tarfile

import pytest

from analysis import store
from benchmarks.land_results import land, main, relative_sources
from tests.analysis.helpers import make_ab_results

NOTICE = "[__recompiles] Recompiling function forward in /srv/gpu-7/repo/trainer/model.py:409\n"


def test_relative_sources_touches_only_paths_into_our_packages():
    text = (
        "Recompiling function newton_schulz in /srv/run-7/repo/trainer/optim.py:28\n"
        "data /tmp/shards/fineweb_val_000000.bin, results/h200-ab/logs, ./trainer/model.py\n"
        'File "/usr/lib/python3.12/site-packages/torch/_dynamo/guards.py", line 4760\n'
    )
    out, n = relative_sources(text)
    assert n == 1
    assert out.splitlines() == [
        "Recompiling function newton_schulz in trainer/optim.py:28",
        "data /tmp/shards/fineweb_val_000000.bin, results/h200-ab/logs, ./trainer/model.py",
        'File "/usr/lib/python3.12/site-packages/torch/_dynamo/guards.py", line 4760',
    ]


@pytest.fixture
def tgz(tmp_path):
    chain = tmp_path / "chain"
    folder = make_ab_results(chain / "results" / "h200-x")
    (folder / ".lock").write_text("pid 1 on gpu-host")
    (folder / "logs").mkdir(exist_ok=True)
    (folder / "logs" / "r.txt").write_text("step:0/10 val_loss:10.8\n" + NOTICE)
    path = tmp_path / "results.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(chain / "results", arcname="results")
    return path


def test_land_unpacks_scrubs_and_reports(tgz, tmp_path):
    dest = tmp_path / "repo-results"
    (line,) = land(tgz, dest)
    target = dest / "h200-x"
    assert line.startswith(f"{target}: {len(store.read_runs(target))} run(s),")
    assert "1 absolute source path(s) made relative, report redrawn" in line
    assert not (target / ".lock").exists() and (target / "report.md").is_file()
    assert "in trainer/model.py:409" in (target / "logs" / "r.txt").read_text()
    # landing again neither overwrites silently nor fails with a traceback
    assert main([str(tgz), "--dest", str(dest)]) == 2
    assert main([str(tgz), "--dest", str(dest), "--replace"]) == 0
    assert main([str(tgz), "--dest", str(dest), "--only", "h200-nope"]) == 2
    assert main([str(tmp_path / "missing.tgz")]) == 2
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(tgz.read_bytes()[:200])  # a transfer cut short
    assert main([str(cut), "--dest", str(tmp_path / "elsewhere")]) == 2


def test_a_sweep_in_parts_resumes_from_the_landed_folder(tmp_path, capsys):
    """The GPU workflow of a sweep in two sessions: part one on the machine (--max-blocks), its folder
    brought back and landed, part two resumes the landed folder and runs only what is missing."""
    from orchestrator.cli import main as ablate
    from tests.orchestrator.helpers import write_spec

    spec = write_spec(tmp_path)
    machine = tmp_path / "chain" / "results" / "h200-parts"
    common = ["--plain", "--no-report", "--num-cpus", "2"]
    assert ablate(["run", str(spec), "--results", str(machine), "--max-blocks", "1", *common]) == 3
    first = set(store.read_runs(machine)["run_id"])
    tgz = tmp_path / "results.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(machine.parent, arcname="results")
    dest = tmp_path / "repo" / "results"
    (line,) = land(tgz, dest)
    assert "h200-parts" in line and not (dest / "h200-parts" / ".lock").exists()
    capsys.readouterr()
    assert ablate(["run", str(spec), "--results", str(dest / "h200-parts"), *common]) == 0
    out = capsys.readouterr().out
    assert "already done of 4 planned" in out and f"{4 - len(first)} run(s) to run" in out
    runs = store.read_runs(dest / "h200-parts")
    assert len(runs) == 4 and first < set(runs["run_id"]) and (runs["status"] == "ok").all()


def _landed_index_keys(folder):
    """(run_id, file key) of every row the folder's index (snapshot and journal) holds."""
    import json

    import pyarrow.parquet as pq

    from analysis.resultsdir import KEY_COLUMN, ResultsDir

    index = ResultsDir(folder).index
    keys = []
    if index.snapshot.exists():
        snap = pq.read_table(index.snapshot, columns=["run_id", KEY_COLUMN])
        keys += zip(snap.column("run_id").to_pylist(), snap.column(KEY_COLUMN).to_pylist(), strict=True)
    if index.journal.exists():
        keys += [
            (r["row"]["run_id"], r["key"]) for r in map(json.loads, index.journal.read_text().splitlines())
        ]
    return keys


@pytest.mark.parametrize("n_blocks", [4, 40])
def test_the_landed_index_is_rebuilt_from_the_landed_files_not_carried(tmp_path, n_blocks):
    """The machine's `.cache/` names its own files (inode, size, mtime): landed as it is, it is a stale
    index of files that are not there, committed with the folder. It is dropped; the report's read
    rebuilds it from the landed files once there are enough rows to save one (64: 80 runs do, 8 not)."""
    from analysis.resultsdir import ResultsDir, _file_key

    chain = tmp_path / "chain"
    machine = make_ab_results(chain / "results" / "h200-x", n_blocks=n_blocks)
    n = 2 * n_blocks
    assert len(store.read_runs(machine)) == n and len(_landed_index_keys(machine)) == n
    tgz = tmp_path / "results.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(chain / "results", arcname="results")
    target = tmp_path / "repo-results" / "h200-x"
    (line,) = land(tgz, target.parent)
    assert line.startswith(f"{target}: {n} run(s),")
    landed = ResultsDir(target)
    files = {p.stem: _file_key(p.stat()) for p in landed.runs_dir.glob("*.parquet")}
    keys = _landed_index_keys(target)
    assert all(files[run_id] == key for run_id, key in keys)  # no row of the machine's files
    if n >= 64:
        assert landed.index.snapshot.exists() and dict(keys) == files  # rebuilt by the report's read
    else:
        assert not landed.index.folder.exists()
