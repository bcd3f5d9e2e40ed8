"""benchmarks/readme_timings.py: what it prints for each README figure (its runs are the README's own)."""

from __future__ import annotations

import pytest

from benchmarks import readme_timings as rt
from tests.analysis.helpers import run_row


def test_a_sweeps_figures_come_from_its_rows_and_print_with_their_load(tmp_path):
    from analysis.resultsdir import ResultsDir

    folder = ResultsDir(tmp_path / "demo")
    for i, (arm, ms) in enumerate([("baseline", 5000.0), ("baseline", 5200.0), ("mlp0", 4900.0)]):
        row = {**run_row(f"r{i}", arm, loss=4.2, time_ms=ms), "startup_s": 4.0}
        folder.write_run(row, {})
    m = rt.run_rows(folder.root)
    assert (m["runs"], m["ok"], m["startup_s"], m["mlp0_time_ratio"]) == (3, 3, 4.0, round(4900 / 5100, 3))
    m |= {"what": "bash scripts/demo.sh", "wall_s": 62.4, "exit": 0, "load": "load avg 2.9 (max 3.3)"}
    text = rt.line("demo", m)
    assert text.startswith("demo: `bash scripts/demo.sh` 1 min 02 s (exit 0); 3 of 3 runs ok")
    assert text.endswith("of the baseline's; load avg 2.9 (max 3.3)")


def test_unknown_items_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        rt.main(["--only", "demo,tests"])
    assert e.value.code == 2
    assert (
        "--only: unknown tests; choose from demo, trainer, drop_one_mlp, record_ab" in capsys.readouterr().err
    )


def test_the_machine_names_its_cores():
    assert "-core " in rt.machine()
