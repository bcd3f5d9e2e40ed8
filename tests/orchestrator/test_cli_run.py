"""`ablate run` / `ablate status` on the command line: errors, dry run, resume, spec changes, status."""

from __future__ import annotations

import json
import re
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

from analysis import store
from orchestrator.cli import build_parser, main
from orchestrator.driver import ResultsLock
from tests.orchestrator.helpers import FAKE_JOB, write_spec


def test_run_help_names_the_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    for opt in (
        "--profile",
        "--results",
        "--dry-run",
        "--address",
        "--max-parallel",
        "--until-decided",
        "--force-spec-change",
        "--dashboard",
        "--retry-failed",
    ):
        assert opt in text
    flat = " ".join(text.split())
    assert "1 some planned run failed or timed out" in flat and "3 runs left for the next invocation" in flat
    assert "which wins over 1" in flat


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no/such.yaml"], "no/such.yaml: no such spec file; pass a YAML file"),
        (["status", "no/such/dir"], "no/such/dir: no such results folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate: error: {message}") and err.count("\n") == 1


def test_bad_max_parallel_and_busy_folder(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert main(["run", str(spec), "--max-parallel", "0"]) == 2
    assert "--max-parallel must be a positive integer, got 0" in capsys.readouterr().err
    results = tmp_path / "busy"
    with ResultsLock(results):
        assert main(["run", str(spec), "--results", str(results), "--no-report"]) == 2
    assert "is in use by another ablate run" in capsys.readouterr().err


def test_run_without_ray_is_one_line(tmp_path, capsys, monkeypatch):
    """The GPU machines have no Ray unless the bundle is on the path: say so, no traceback."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    results = tmp_path / "r"
    assert main(["run", str(write_spec(tmp_path)), "--results", str(results), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: ablate run needs Ray") and err.count("\n") == 1


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["run", str(write_spec(tmp_path)), "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "clitest" in out and "base" in out and "cand" in out
    assert not results.exists()


def test_run_resume_refuse_changed_spec_and_status(tmp_path, capsys):
    """One embedded Ray per `ablate run`: a full sweep, then a resume that runs nothing."""
    spec, results = write_spec(tmp_path), tmp_path / "res"
    argv = ["run", str(spec), "--results", str(results), "--no-report", "--plain", "--num-cpus", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 run(s) to run, 0 already done of 4 planned; about " in out
    assert re.search(r"about (1m00s|2m00s) by the plan's estimate", out)  # 4 runs of 30 s, 1 or 2 at once
    assert "sweep done: 4 ok" in out
    assert (results / "spec.yaml").read_text() == spec.read_text()
    sweep = json.loads((results / "sweep.json").read_text())
    assert (sweep["name"], sweep["kind"], sweep["planned_runs"], sweep["arms"]) == (
        "clitest",
        "ab",
        4,
        ["base", "cand"],
    )
    assert len(list((results / "logs").glob("*.txt"))) == 4

    assert main(["status", str(results)]) == 0
    status = capsys.readouterr().out
    assert "no driver running" in status and "running: none" in status
    assert [line.split()[:3] for line in status.splitlines() if line.startswith(("base", "cand"))] == [
        ["base", "2", "2"],
        ["cand", "2", "2"],
    ]

    # resubmitting the same spec runs nothing; a changed one is refused unless forced
    assert main(argv) == 0
    assert "0 run(s) to run, 4 already done of 4 planned" in capsys.readouterr().out
    assert sorted(sweep["run_ids"]) == sorted(p.stem for p in (results / "runs").glob("*.parquet"))

    # a run left by an earlier version of a script (another run id) is kept, said, and not counted
    table = pq.read_table(results / "runs" / f"{sweep['run_ids'][0]}.parquet")
    old = table.to_pylist()[0]
    assert old["ablate_version"].startswith("0.1.0+g")  # provenance: the commit that ran it
    kinds = {"int64": "int", "double": "float", "bool": "bool"}
    knobs = {f.name[5:]: kinds.get(str(f.type), "str") for f in table.schema if f.name.startswith("knob_")}
    store.write_run(results, {**old, "run_id": "0123456789abcdef"}, knobs)
    assert main(argv) == 0
    assert "note: 1 finished run(s) in" in capsys.readouterr().out
    assert main(["status", str(results)]) == 0
    status = capsys.readouterr().out
    assert "not counted: 1 run(s) of an earlier plan" in status
    assert "base                           2    2" in status
    write_spec(tmp_path, steps=3)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "differs from the spec stored in" in err and "arms.base" in err and "--force-spec-change" in err


def test_status_of_a_running_sweep_shows_what_runs(tmp_path, capsys):
    results = tmp_path / "live"
    results.mkdir()
    (results / "sweep.json").write_text(json.dumps({"name": "live", "kind": "grid", "arms": ["x"]}))
    running = [
        {
            "run_id": "r1",
            "arm": "x",
            "node_id": "abcdef123456",
            "attempt": 1,
            "step": 5,
            "total": 10,
            "val_loss": 4.25,
        }
    ]
    (results / "status.json").write_text(
        json.dumps({"pid": 1, "host": "h", "planned_per_arm": {"x": 3}, "running": running})
    )
    with ResultsLock(results):
        assert main(["status", str(results)]) == 0
    out = capsys.readouterr().out
    assert "driver running (pid" in out
    assert "r1 (x) on node abcdef12, attempt 1, step 5/10 val_loss 4.2500" in out
    assert [ln.split()[:7] for ln in out.splitlines() if ln.startswith("x ")] == [
        ["x", "3", "0", "0", "0", "0", "3"]
    ]


def test_fake_job_is_runnable_alone(tmp_path):
    import subprocess

    out = subprocess.run(
        [sys.executable, FAKE_JOB, "--steps", "1"], capture_output=True, text=True, check=True
    )
    assert textwrap.dedent(out.stdout).splitlines()[1].startswith("step:0/1 val_loss:")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-blocks", "0", "--max-blocks must be a positive integer, got 0"),
        ("--time-limit", "25", "--time-limit: '25' is not a duration; write it with units, e.g. 90s, 25m"),
        ("--time-limit", "25x", "--time-limit: '25x' is not a duration"),
        ("--time-limit", "0m", "--time-limit: '0m' is not a positive duration"),
    ],
)
def test_bad_part_options_are_one_line(tmp_path, capsys, flag, value, message):
    assert main(["run", str(write_spec(tmp_path)), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate: error: {message}") and err.count("\n") == 1


def test_durations():
    from orchestrator.commands import parse_duration

    assert [parse_duration(t) for t in ("90s", "25m", "1h30m", "1.5h", "2m30s", " 1H ")] == [
        90,
        1500,
        5400,
        5400,
        150,
        3600,
    ]


def test_dry_run_needs_neither_pandas_nor_pyarrow(tmp_path):
    """The GPU machines' slim bundle may lack them: the plan, and which runs are done, still print."""
    import subprocess

    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec
    from tests.analysis.helpers import run_row

    spec = write_spec(tmp_path)
    first = make_plan(load_spec(spec)).runs[0].run_id
    results = tmp_path / "r"
    store.write_run(results, run_row(first, "base", loss=3.3, time_ms=1000.0), {})
    code = (
        "import sys; sys.modules['pandas'] = sys.modules['pyarrow'] = None\n"
        "from orchestrator.cli import main\n"
        f"sys.exit(main(['run', {str(spec)!r}, '--dry-run', '--results', {str(results)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"{first}\s+done", proc.stdout) and "to run: 3 of 4 runs (1 done)" in proc.stdout


def test_dry_run_estimates_the_runs_left_at_the_pace_the_folder_measured(tmp_path, capsys):
    """A sweep in parts plans its next part from what its runs took: a cold start left out, a repeat of a
    configuration that ran at the repeats' pace, another at its arm's."""
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec
    from tests.analysis.helpers import run_row

    spec = write_spec(tmp_path)
    runs = {(r.arm, r.replicate): r.run_id for r in make_plan(load_spec(spec)).runs}
    results = tmp_path / "r"
    walls = {("base", 0): ("cold", 500.0), ("cand", 0): ("warm", 130.0), ("base", 1): ("warm", 70.0)}
    for when, ((arm, rep), (cache, wall)) in enumerate(walls.items()):
        row = run_row(runs[arm, rep], arm, loss=3.3, time_ms=1000.0, when=when)
        store.write_run(results, {**row, "replicate": rep, "wall_s": wall, "compile_cache": cache}, {})
    assert main(["run", str(spec), "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    # cand's second run repeats a configuration that ran: 70 s, the one repeat's (base's second run)
    assert (
        "measured here: 2 finished run(s) that did not compile cold took 100 s each (wall, start-up "
        "included); the 1 left, one after another: ~1 min, 1 of them repeats of a configuration that "
        "ran here (70 s each, as the 1 repeat(s) so far)"
    ) in out
    # without a repeat yet: each arm's pace, the measured runs' where its arm has none (base: cold only)
    fresh = tmp_path / "r2"
    for when, (arm, rep) in enumerate([("base", 0), ("cand", 0)]):
        cache, wall = walls[arm, rep]
        row = run_row(runs[arm, rep], arm, loss=3.3, time_ms=1000.0, when=when)
        store.write_run(fresh, {**row, "wall_s": wall, "compile_cache": cache}, {})
    assert main(["run", str(spec), "--dry-run", "--results", str(fresh)]) == 0
    out = capsys.readouterr().out
    assert "1 finished run(s) that did not compile cold took 130 s each" in out
    assert "the 2 left, one after another: ~4 min" in out and "repeats" not in out.split("measured")[1]
    # a damaged run file: the plan still prints, without the measured line (no traceback)
    (fresh / "runs" / f"{runs['cand', 1]}.parquet").write_bytes(b"not parquet")
    assert main(["run", str(spec), "--dry-run", "--results", str(fresh)]) == 0
    out = capsys.readouterr().out
    assert "to run: " in out and "measured here" not in out


# ------------------------------------------------------------------------------------------ issue 17

FAKE_TRAINER = """\
import sys  # stands in for `python -m trainer`: takes any arguments, prints a short run's step lines
print("step:0/2 val_loss:4.0000 train_time:0ms step_avg:0.00ms")
print("step:1/2 train_time:5ms step_avg:5.00ms")
print("step:2/2 val_loss:3.5000 train_time:10ms step_avg:5.00ms")
"""

UNDO_SPEC = """\
name: undo
trainer: {preset: tiny, set: {mlp_off: [0]}}
resources: {gpus_per_run: 0}
retries: 0
estimate_min: 0.1
target_val_loss: null
arms:
  baseline: {}
  attn3: {set: {attn_off: [3]}}
  attn3_kept: {set: {attn_off: {add: [3]}}}
  broken: {command: [python, -c, "import sys; sys.exit('boom: no shards in /nowhere')"]}
"""


def test_undone_baseline_is_shown_and_failed_runs_say_why(tmp_path, capsys, monkeypatch):
    """One embedded Ray, trainer arms run by a stand-in: the dry-run and the run warn of the arm that
    turns layer 7's attention back on, the report names each configuration by its difference from the
    baseline, and the failed run's reason (its error's first line) is in `ablate status` and the report."""
    from orchestrator import plan as plan_mod

    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setattr(plan_mod, "_trainer_launcher", lambda gpus: [sys.executable, str(fake)])
    spec, results = tmp_path / "undo.yaml", tmp_path / "res"
    spec.write_text(UNDO_SPEC)

    assert main(["run", str(spec), "--results", str(results), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "vs baseline: attn_off: [7] -> [3]\n" in out and "vs baseline: attn_off: [7] -> [3, 7]\n" in out
    assert err.count("\n") == 1 and err.startswith(
        f"warning: {spec}: arms.attn3: turns the attention of layer 7"
    )

    argv = ["run", str(spec), "--results", str(results), "--plain", "--num-cpus", "2", "--no-compile-cache"]
    assert main(argv) == 1  # a failed run remains
    assert "arms.attn3: turns the attention of layer 7 back on" in capsys.readouterr().err
    rows = store.read_runs(results).set_index("arm")
    assert list(rows.loc[["baseline", "attn3", "attn3_kept"], "status"]) == ["ok"] * 3
    broken_id, error = rows.loc["broken", "run_id"], rows.loc["broken", "error"]
    reason = error.splitlines()[0]
    assert reason == "exit code 1: boom: no shards in /nowhere"

    assert main(["status", str(results)]) == 0
    status = capsys.readouterr().out
    assert "failed runs: 1 (reason: the first line of each run's error" in status
    assert f"  1 failed (broken 1; {broken_id}): {reason}\n" in status

    md = (results / "report.md").read_text()
    assert (
        "| attn3 (attn_off: [7] -> [3]) | 1 |" in md and "| attn3_kept (attn_off: [7] -> [3, 7]) | 1 |" in md
    )
    assert "## Failed runs (reason: the first line of the run's error" in md
    assert f"| {broken_id} | broken | failed | 1 | {reason} |" in md
    assert f"<td>{reason}</td>" in (results / "report.html").read_text()


MISSING_SPEC = """\
name: missing
resources: {gpus_per_run: 0}
arms:
  baseline: {command: [python, gone.py]}
  other: {command: [python, -m, json.tool, --help]}
"""


def test_a_missing_script_warns_in_the_dry_run_and_stops_a_run_before_ray(tmp_path, capsys, monkeypatch):
    from orchestrator.executor import RayExecutor

    def no_ray(*a, **k):
        raise AssertionError("Ray started")

    monkeypatch.setattr(RayExecutor, "start", no_ray)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(MISSING_SPEC)
    assert main(["run", "m.yaml", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "warning: m.yaml: arms.baseline.command: gone.py not found in the current folder; its runs would "
        "fail: run from the folder that holds it, or set the arm's cwd\n"
    )
    assert main(["run", "m.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ablate: error: m.yaml: arms.baseline.command: gone.py not found in the current folder; run from "
        "the folder that holds it, or set the arm's cwd (nothing was run)\n"
    )
    assert not (tmp_path / "results").exists()  # nothing written, no lock taken


def test_record_ab_dry_run_warns_of_the_scripts_a_user_brings_and_exits_0(capsys):
    assert main(["run", "sweeps/record_ab.yaml", "--dry-run"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in err] == ["arms.baseline.command", "arms.candidate.command"]
    assert "records/prev/train_gpt.py not found in sweeps (the spec's folder) or the current folder" in err[0]


AB_CPU_SPEC = """\
name: abcpu
kind: ab
runs_per_arm: 2
order: alternate
resources: {{gpus_per_run: 0}}
target_val_loss: null
arms:
  base: {{command: [python, {job}, --steps, "3", --sleep, "0.2"]}}
  cand: {{command: [python, {job}, --steps, "3", --sleep, "0.2", --loss, "3.2"]}}
"""


def test_ab_blocks_on_cpu_run_one_at_a_time_on_their_node_and_the_report_says_so(tmp_path, capsys):
    """exclusive_node (the default of kind ab) holds on CPU too: with 2 CPUs, the blocks still take turns."""
    spec = tmp_path / "abcpu.yaml"
    spec.write_text(AB_CPU_SPEC.format(job=FAKE_JOB))
    results = tmp_path / "res"
    assert main(["run", str(spec), "--dry-run", "--results", str(results)]) == 0
    assert "each block on an exclusive node" in capsys.readouterr().out
    assert main(["run", str(spec), "--results", str(results), "--plain", "--num-cpus", "2"]) == 0
    runs = store.read_runs(results)
    spans = (
        runs.groupby("block").agg(start=("started_at", "min"), end=("ended_at", "max")).sort_values("start")
    )
    assert len(spans) == 2 and runs["node_id"].nunique() == 1
    assert spans["start"].iloc[1] >= spans["end"].iloc[0]  # block 1 began after block 0 had ended
    assert "blocks: 2 on 1 node(s), one at a time on each node" in (results / "report.md").read_text()


def test_report_line_counts_blocks_that_shared_a_node():
    import pandas as pd

    from analysis.report import blocks_line

    t = pd.Timestamp("2026-12-01T08:00:00Z")
    s = pd.Timedelta(seconds=1)
    runs = pd.DataFrame(
        {
            "block": [0, 1, 2, 3],
            "node_id": ["n1", "n1", "n1", "n2"],
            "started_at": [t, t + 5 * s, t + 10 * s, t],  # block 1 starts as block 0 ends: one at a time
            "ended_at": [t + 5 * s, t + 12 * s, t + 20 * s, t + 9 * s],  # block 2 starts inside block 1
        }
    )
    assert blocks_line(runs) == ["blocks: 4 on 2 node(s), up to 2 at once on one node (sharing it)"]
    assert blocks_line(runs[runs["block"] != 2]) == ["blocks: 3 on 2 node(s), one at a time on each node"]
    assert blocks_line(runs.iloc[0:0]) == []


ETA_SPEC = """\
name: etatest
resources: {{gpus_per_run: 0}}
target_val_loss: null
estimate_min: 10
arms:
  base: {{command: [python, {job}, --steps, "20", --sleep, "0.05"]}}
  cand: {{command: [python, {job}, --steps, "20", --sleep, "0.05", --loss, "3.2"]}}
repeats: 2
"""


def test_the_eta_follows_the_step_lines_not_the_plan(tmp_path, capsys):
    """The plan says 10 minutes a run (estimate_min); the runs take about a second. By the first run's
    last step line the ETA comes from its step rate, long before the plan's figure would have gone."""
    spec = tmp_path / "eta.yaml"
    spec.write_text(ETA_SPEC.format(job=FAKE_JOB))
    argv = ["run", str(spec), "--results", str(tmp_path / "res"), "--no-report", "--plain", "--num-cpus", "1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "4 run(s) to run, 0 already done of 4 planned; about 40m00s by the plan's estimate" in lines[0]
    first_end = next(ln for ln in lines if " step 20/20 val_loss " in ln)  # no run has ended yet
    mins, secs = re.search(r"ETA (\d+)m(\d\d)s", first_end).groups()
    assert int(mins) == 0, first_end  # seconds: three runs of ~1 s each, not 30 minutes
