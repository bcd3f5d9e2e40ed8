"""benchmarks/compare_speed.py's copies: every copy is another run for `ablate compare` (none counted as
a duplicate, so the timed work is the number of logs it says), with the seed's statistics unchanged."""

from __future__ import annotations

from benchmarks.compare_speed import copy_logs
from orchestrator.cli import main
from tests.analysis.helpers import write_seed_logs


def test_copies_are_distinct_runs_with_the_seeds_figures(tmp_path, capsys):
    record = write_seed_logs(tmp_path / "record")
    assert copy_logs(record, tmp_path / "x3", 3) == 60
    code = main(["compare", "--baseline-logs", str(tmp_path / "x3" / "master"),
                 "--candidate-logs", str(tmp_path / "x3" / "pr")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Time improve: 1.4173 sec" in out and "warning" not in out + err and "duplicate" not in out
    assert "baseline 30 used" in out and "candidate 30 used" in out
