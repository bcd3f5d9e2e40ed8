"""Logs -> results folder -> report: the seed's record folder reproduces its numbers in report.md."""

import pytest

from analysis import store
from analysis.ingest import ingest_logs
from analysis.logs import match_logs
from analysis.report import write_report
from tests.analysis.helpers import upstream_log, write_seed_logs


def test_ingest_seed_folder_then_report(tmp_path):
    folder = write_seed_logs(tmp_path / "pr120")
    (folder / "run99.txt").write_text(upstream_log(20, 3.28, 1000)[:-400])  # a crashed run
    arms = {
        "baseline": match_logs(folder, include_prefix="comparison_"),
        "candidate": match_logs(folder, exclude_prefix="comparison_"),
    }
    assert ingest_logs(tmp_path / "res", arms, name="pr120", target=3.28) == 21
    runs = store.read_runs(tmp_path / "res")
    assert runs["status"].value_counts().to_dict() == {"ok": 20, "failed": 1}
    assert "log truncated" in runs.loc[runs["status"] == "failed", "error"].iloc[0]
    md = write_report(tmp_path / "res")["md"].read_text()
    for text in ("candidate: p=0.0003", "baseline: p=0.0000", "candidate: 163.0351", "baseline: 164.4524",
                 "Time improve: 1.4173 sec", "runs: 21 of 21 planned (failed=1, ok=20)"):  # fmt: skip
        assert text in md
    steps = store.read_steps(tmp_path / "res", run_ids=runs.loc[runs["status"] == "ok", "run_id"])
    assert len(steps) == 20 * 21 and steps["val_loss"].notna().sum() == 20 * 5  # steps 0, 5, 10, 15, 20
    with pytest.raises(FileExistsError):  # the same log twice is one run, not two
        ingest_logs(
            tmp_path / "res", {"baseline": arms["baseline"][:1], "candidate": []}, name="x", target=None
        )


def test_a_log_of_two_runs_is_a_failed_run_saying_where_to_split_it(tmp_path):
    first, second = upstream_log(20, 3.30, 1000), upstream_log(20, 3.27, 990)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "two.txt").write_text(first + second)  # a log appended to
    (tmp_path / "logs" / "one.txt").write_text(second)
    arms = {"only": sorted((tmp_path / "logs").glob("*.txt"))}
    assert ingest_logs(tmp_path / "res", arms, name="x", target=None) == 2
    runs = store.read_runs(tmp_path / "res").set_index("params")
    row = runs.loc['{"log": "two.txt"}']
    line = first.count("\n") + second.split("\n").index(
        next(x for x in second.split("\n") if x.startswith("step:0/"))
    )
    assert row["status"] == "failed"
    assert (
        row["error"] == f"log holds 2 runs (step 0 again at line {line + 1}); split it into one file per run"
    )
    assert runs.loc['{"log": "one.txt"}', "status"] == "ok"
