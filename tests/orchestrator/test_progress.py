"""The plain progress lines: what a user reads in a CI log or a detached run's log."""

import io
from types import SimpleNamespace

from orchestrator.progress import PlainProgress


def _lines(kind, event, state=None):
    out = io.StringIO()
    state = state or SimpleNamespace(finished=1, to_run=2, eta_s=lambda parallel: 60.0)
    PlainProgress(out=out).update(kind, state, event=event)
    return out.getvalue()


def _start(cache, node_id="abcdef0123", attempt=1):
    event = {"run_id": "r1", "node_id": node_id, "attempt": attempt, "compile_cache": cache}
    return _lines("run_start", event).rstrip()


def test_start_line_names_how_the_nodes_compile_cache_began():
    expected = "start r1 on node abcdef01 (attempt 1, compile cache seeded from another node)"
    assert _start("seeded").endswith(expected)
    assert _start("cold", attempt=2).endswith("(attempt 2, compile cache empty)")
    # no node cache (--no-compile-cache, or an older event): nothing about a cache
    assert _start(None).endswith("(attempt 1)")


def test_end_line_gives_wall_time_and_start_up():
    row = {
        "run_id": "r1",
        "arm": "base",
        "status": "ok",
        "final_val_loss": 2.75,
        "wall_s": 77.6,
        "startup_s": 37.3,
        "attempt": 1,
    }
    line = _lines("run", {"row": row})
    assert "[1/2] r1 (base) ok val_loss 2.7500 in 77.6s (start-up 37.3s) (attempt 1); ETA 1m00s" in line
    row.update(startup_s=None)  # a script that prints no train_time: no start-up to give
    assert "in 77.6s (attempt 1)" in _lines("run", {"row": row})


def test_a_failed_runs_line_gives_its_reason_and_a_retried_attempt_says_so():
    row = {"run_id": "r1", "arm": "base", "status": "failed", "wall_s": 2.0, "attempt": 1}
    row["error"] = "exit code 2: python3: can't open file 'train.py'\nlog: garbled\nlast lines"
    line = _lines("run", {"row": row})
    assert (
        "r1 (base) failed in 2.0s (attempt 1): exit code 2: python3: can't open file 'train.py'; ETA" in line
    )
    assert "log: garbled" not in line  # one line: the error's first
    assert _lines("attempt", {"row": row}).rstrip().endswith("can't open file 'train.py'; will retry")
    row.update(status="ok", error=None)
    assert ": " not in _lines("run", {"row": row}).split("(attempt 1)")[1].split(";")[0]


def test_failure_reason_is_the_line_that_says_why():
    from orchestrator.launch import failure_reason

    assert failure_reason(
        "gpus: 0\n/usr/bin/python3: can't open file '/x/t.py': [Errno 2] No such file\n"
    ) == ("/usr/bin/python3: can't open file '/x/t.py': [Errno 2] No such file")
    traceback = 'step:1/9 train_time:3ms\nTraceback (most recent call last):\n  File "t.py", line 3\n'
    assert failure_reason(traceback + "ValueError: bad shard\n") == "ValueError: bad shard"
    torchrun = (
        '[default0]:  File "t.py", line 9\n[default0]:torch.OutOfMemoryError: CUDA out of memory\n'
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
        + "=" * 60
        + "\nt.py FAILED\n"
        + "-" * 60
        + "\n"
    )
    assert failure_reason(torchrun) == "torch.OutOfMemoryError: CUDA out of memory"
    assert failure_reason("trainer: error: unknown knob 'mlpoff'") == "trainer: error: unknown knob 'mlpoff'"
    assert failure_reason("step:3/10 train_time:3ms\n\n") is None and failure_reason("") is None


def test_live_lines_style_the_time_and_print_no_markup_tags():
    from rich.console import Console

    from orchestrator.driver import SweepState
    from orchestrator.progress import LiveProgress

    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    live = LiveProgress(console=console)
    try:
        state = SweepState(planned=1, skipped=0, to_run=1, planned_per_arm={"a": 1})
        live.update("message", state, text="block 3 [lost] (node [abc])")
    finally:
        live.close()
    text = console.file.getvalue()
    assert "[dim]" not in text and "[/dim]" not in text
    assert "block 3 [lost] (node [abc])" in text  # the message's own brackets stay as they are


def test_live_table_shows_each_running_run_and_how_its_cache_began():
    from rich.console import Console

    from orchestrator.driver import RunningRun, SweepState
    from orchestrator.progress import LiveProgress

    console = Console(file=io.StringIO(), width=140, force_terminal=False)
    live = LiveProgress(console=console)
    try:
        state = SweepState(planned=4, skipped=0, to_run=4, planned_per_arm={"a": 2, "b": 2}, deferred=2)
        state.running["r1"] = RunningRun("r1", "a", "abcdef0123", 1, 0.0, compile_cache="seeded")
        state.running["r2"] = RunningRun("r2", "b", "n2", 1, 0.0, step=5, total=10, val_loss=3.5, val_step=0)
        live.update("step", state)
        probe = Console(file=io.StringIO(), width=140)
        probe.print(live._render())
        text = probe.file.getvalue()
        # the refresh thread renders what the driver's thread took at its last event, never the state
        # the driver is changing
        state.running["r3"] = RunningRun("r3", "a", "n3", 1, 0.0)
        later = Console(file=io.StringIO(), width=140)
        later.print(live._render())
        assert "r3" not in later.file.getvalue()
    finally:
        live.close()
    assert "0/4 runs done · 0 skipped · ETA ? · 2 left for the next run" in text
    assert "starting (cache seeded)" in text and "5/10" in text
    assert "3.5000 (step 0)" in text  # the last validation's loss says when it was measured
