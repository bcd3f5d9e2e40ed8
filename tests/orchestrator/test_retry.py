"""`ablate run --retry-failed`: failed and timed-out runs run again, their files replaced safely.

End to end through `ablate run` on the embedded Ray with fake jobs, then the replacement path of the
results folder's owner (`ResultsDir.replace_run`) with a reader racing it.
"""

from __future__ import annotations

import threading

import pyarrow.parquet as pq
import pytest

from analysis import resultsdir
from analysis.resultsdir import ResultsDir
from orchestrator.cli import main
from tests.analysis.helpers import run_row
from tests.orchestrator.helpers import FAKE_JOB

RETRY_SPEC = """\
name: retrytest
resources: {{gpus_per_run: 0}}
target_val_loss: null
timeout_s: 4
retries: 0
arms:
  base: {{command: [python, {job}, --steps, "2"]}}
  flaky: {{command: [python, {job}, --steps, "2", --exit, "1", --unless, "{fixed}"]}}
  stuck: {{command: [python, {job}, --steps, "2", --hang, --unless, "{fixed}"]}}
"""


def _statuses(results) -> dict[str, str]:
    runs = ResultsDir(results).read_runs()
    return dict(zip(runs.arm, runs.status, strict=True))


def test_retry_failed_end_to_end(tmp_path, capsys, monkeypatch):
    fixed = tmp_path / "fixed"  # what the user repairs between invocations (a full disk, a bad node)
    spec = tmp_path / "retry.yaml"
    spec.write_text(RETRY_SPEC.format(job=FAKE_JOB, fixed=fixed))
    results = tmp_path / "res"
    argv = ["run", str(spec), "--results", str(results), "--no-report", "--plain", "--num-cpus", "2"]

    # 1. two of three blocks: one run ok, one failed; runs are left, and 3 wins over 1
    assert main([*argv, "--max-blocks", "2"]) == 3
    out = capsys.readouterr().out
    assert "(flaky) failed" in out and "(attempt 1): exit code 1: crash: exit 1 on purpose; ETA" in out
    # 2. the last block times out; the start line names the failed run left as it is; exit 1
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "1 run(s) to run, 2 already done of 3 planned (1 failed: --retry-failed runs them again)" in out
    assert "(stuck) timeout" in out and ": timed out after 4 s; log: truncated" in out
    assert _statuses(results) == {"base": "ok", "flaky": "failed", "stuck": "timeout"}
    # 3. again without the flag: nothing runs (no Ray started), and the status stays 1
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "0 run(s) to run, 3 already done of 3 planned (2 failed: --retry-failed runs them again)" in out
    assert "nothing to do" in out and "start " not in out

    # the read index holds the failed rows now (saved after one new row), keyed by their files
    monkeypatch.setattr(resultsdir, "INDEX_REFRESH_MIN_NEW", 1)
    folder = ResultsDir(results)
    assert folder.read_runs() is not None and folder.index.snapshot.exists()
    indexed = pq.read_table(folder.index.snapshot).to_pylist()
    assert {r["arm"]: r["status"] for r in indexed} == {"base": "ok", "flaky": "failed", "stuck": "timeout"}
    old_ok = folder.run_file(next(r["run_id"] for r in indexed if r["arm"] == "base")).stat()

    # 4. repaired: --retry-failed runs both again, attempt numbers go on, and the new rows are served
    fixed.write_text("repaired")
    assert main([*argv, "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) to run, 1 already done of 3 planned (2 of them failed before and run again" in out
    assert _statuses(results) == {"base": "ok", "flaky": "ok", "stuck": "ok"}
    runs = folder.read_runs().set_index("arm")
    assert (runs.loc["flaky", "attempt"], runs.loc["stuck", "attempt"]) == (2, 2)
    assert not isinstance(runs.loc["flaky", "error"], str)  # no error left from the failed attempt
    ids = {arm: runs.loc[arm, "run_id"] for arm in ("flaky", "stuck")}
    kept = sorted(p.name for p in folder.attempts_dir.iterdir())
    assert kept == sorted(f"{ids[a]}.1.{ext}" for a in ids for ext in ("parquet", "txt"))
    assert "crash: exit 1 on purpose" in folder.attempt_log_file(ids["flaky"], 1).read_text()
    assert "crash" not in folder.log_file(ids["flaky"]).read_text()  # the retry's log
    assert folder.run_file(runs.loc["base", "run_id"]).stat().st_ino == old_ok.st_ino  # ok runs untouched
    assert main(["status", str(results)]) == 0
    status = capsys.readouterr().out
    assert [ln.split()[:4] for ln in status.splitlines() if ln.startswith(("flaky", "stuck"))] == [
        ["flaky", "1", "1", "0"],
        ["stuck", "1", "1", "0"],
    ]


def test_replace_run_refuses_final_outcomes_and_readers_never_see_a_stale_or_half_row(tmp_path):
    folder = ResultsDir(tmp_path / "res")
    failed = {**run_row("r1", "a", loss=None, time_ms=None), "status": "failed", "attempt": 1}
    folder.write_run(failed, {})
    folder.write_run(run_row("r2", "a", loss=3.3, time_ms=1000.0), {})
    with pytest.raises(FileExistsError, match="its outcome is ok, not replaced"):
        folder.replace_run(run_row("r2", "a", loss=3.1, time_ms=900.0), {})
    assert folder.read_runs().set_index("run_id").loc["r1", "status"] == "failed"  # cached now

    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            row = ResultsDir(folder.root).read_runs().set_index("run_id").loc["r1"]
            seen.append((row["status"], row["attempt"], row["final_val_loss"]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for attempt in range(2, 12):  # failed again and again, then ok: each replaces the last
            status = "ok" if attempt == 11 else "failed"
            loss = 3.2 if status == "ok" else None
            new = {**run_row("r1", "a", loss=loss, time_ms=900.0), "status": status, "attempt": attempt}
            folder.replace_run(new, {})
    finally:
        stop.set()
        thread.join()
    assert folder.read_runs().set_index("run_id").loc["r1", "status"] == "ok"
    assert seen, "the reader never read"
    # every read is one whole row as written: a failed row without a loss, or the ok one with its loss
    for st, attempt, loss in seen:
        assert (st == "failed" and loss != loss) or (st, attempt, loss) == ("ok", 11, 3.2), (
            st,
            attempt,
            loss,
        )
    attempts = [a for _, a, _ in seen]
    assert attempts == sorted(attempts)  # never an older row after a newer one (no stale cache)
    with pytest.raises(FileExistsError):
        folder.replace_run({**new, "attempt": 12, "status": "failed"}, {})
