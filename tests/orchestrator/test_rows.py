"""The one builder of run rows: the plan's columns, the outcome, the driver's provenance."""

from __future__ import annotations

import json

from analysis import store
from orchestrator.rows import complete_row, plan_columns, run_row
from orchestrator.runspec import GridPoint, RunSpec


def _run(**kw) -> RunSpec:
    base = dict(run_id="r1", sweep="s", arm="drop", replicate=1, seed=7, command=("python", "-m", "trainer"))
    return RunSpec(**{**base, **kw})


def test_a_row_holds_the_plan_columns_and_the_grid_point_once():
    run = _run(params={"mlp_off": [0, 3], "steps": 10}, point=GridPoint({"mlp_off": [0, 3]}, {"mlp_off": 3}))
    row = run_row(run, attempt=2, status="ok", node_id="n1", command='["py"]')
    assert row["label"] == '{"mlp_off": [0, 3]}' and json.loads(row["params"])["mlp_off"] == [0, 3]
    assert (row["attempt"], row["status"], row["node_id"], row["command"]) == (2, "ok", "n1", '["py"]')
    assert not [k for k in row if k.startswith("knob_")]  # the schema derives them from params
    assert plan_columns(_run())["label"] is None  # no grid: no point
    assert json.loads(run_row(_run(), attempt=1, status="failed")["command"]) == ["python", "-m", "trainer"]


def test_the_driver_completes_a_foreign_row_and_the_store_derives_the_knob_columns(tmp_path):
    run = _run(params={"mlp_off": [5]}, point=GridPoint({"mlp_off": [5]}, {"mlp_off": 5}), block=3)
    row = complete_row({"run_id": "r1", "status": "ok", "attempt": 1, "block": 9}, run)
    assert row["sweep"] == "s" and row["block"] == 9 and row["replicate"] == 1  # the row's values win
    assert row["ablate_version"] and row["label"] == '{"mlp_off": [5]}'
    store.write_run(tmp_path, row, {"mlp_off": "json"})
    stored = store.read_runs(tmp_path).iloc[0]
    assert stored["knob_mlp_off"] == "[5]" and stored["label"] == '{"mlp_off": [5]}'
