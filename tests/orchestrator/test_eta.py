"""ETAs from live progress (issue 17.4): step rates from the first step lines, start-up split for trainer
arms, no cold start assumed for warm command runs. The sweeps here run on a clock the canned worker
advances, so each ETA is compared with the time the rest of the sweep really took on that clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.driver import SweepDriver, SweepOptions, SweepState
from orchestrator.eta import WARM_START_FRACTION, EtaModel, makespan
from orchestrator.executor import InProcessExecutor
from orchestrator.runspec import Block, Plan
from tests.orchestrator.helpers import fake_run


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def timed_runner(clock: Clock, timing):
    """A worker whose runs take `timing(run, k)` = (start-up s, steps, s per step, compile_s) on `clock`:
    it yields what a real block yields (start, step lines, end row) and moves the clock between them."""

    def runner(block, ctx, node, gpu_ids, get_seed=None):
        yield {"type": "block_start", "node_id": node.node_id, "hostname": node.node_id, "gpu_ids": gpu_ids}
        for r in block.runs:
            k = runner.started = runner.started + 1
            startup, steps, step_s, compile_s = timing(r, k)
            cache = ("cold" if k == 1 else "warm") if r.gpus else "unused"  # a CPU run compiles nothing
            t0 = clock.t
            yield {"type": "run_start", "run_id": r.run_id, "attempt": 1, "node_id": node.node_id,
                   "compile_cache": cache}  # fmt: skip
            clock.t += startup
            for step in range(steps + 1):
                if step:
                    clock.t += step_s
                val = 3.0 if step in (0, steps) else None
                yield {"type": "step", "run_id": r.run_id, "step": step, "total": steps, "val_loss": val,
                       "train_time_ms": 1000 * step * step_s}  # fmt: skip
            row = {"run_id": r.run_id, "arm": r.arm, "status": "ok", "attempt": 1, "wall_s": clock.t - t0,
                   "train_time_ms": 1000 * steps * step_s, "steps": steps, "compile_cache": cache,
                   "compile_s": compile_s}  # fmt: skip
            yield {"type": "run", "row": row, "steps": [], "log": ""}

    runner.started = 0
    return runner


class EtaProbe:
    """A progress view that notes, at each event, the clock, runs finished and the driver's ETA."""

    def __init__(self, clock):
        self.clock, self.seen = clock, []

    def update(self, kind, state, job=None, event=None, text=None):
        step = getattr(event, "step", None) if kind == "step" else None
        self.seen.append((kind, self.clock.t, state.finished, step, state.eta_s(1, now=self.clock.t)))


def run_sweep(plan, timing, slots=1, **options):
    clock = Clock()
    ex = InProcessExecutor({"n1": {"GPU": 1, "CPU": slots}}, runner=timed_runner(clock, timing))
    probe = EtaProbe(clock)
    driver = SweepDriver(
        plan,
        "/nonexistent-unused",
        ex,
        options=SweepOptions(poll_s=0.0, quiet_s=0, **options),
        progress=probe,
    )
    driver.state.clock, driver.state.started = clock, clock()
    driver.recorder = NullRecorder(driver.runs)
    driver.run()
    return probe.seen, clock.t


class NullRecorder:
    """The sweeps here store nothing (the ETA is the driver's state only)."""

    def __init__(self, runs):
        self.runs = runs

    def attempt(self, event):
        return self.runs[event.row["run_id"]]

    outcome = attempt

    def given_up(self, *a):
        pass

    def status(self, *a, **kw):
        pass


def grid_plan(runs) -> Plan:
    blocks = tuple(Block(i, (replace(r, block=i),), gpus=r.gpus) for i, r in enumerate(runs))
    return Plan(name="t", kind="grid", blocks=blocks, baseline_arm="a", arms=("a",), target_val_loss=None,
                knob_types={})  # fmt: skip


def accuracy(seen, end, when):
    """(ETA, the time really left) at the first event that satisfies `when`."""
    kind, t, finished, step, eta = next(s for s in seen if when(*s))
    return eta, end - t


def test_warm_command_runs_are_not_given_the_cold_start(tmp_path):
    """The H200 case: upstream's script under torchrun, 344 s start-up cold, 33 s warm, 40 s of steps.
    After the cold run the ETA said 51 minutes for ~10; now it is within a fifth of the truth."""
    runs = [fake_run(f"u{i}", is_trainer=False, gpus=1, order=i) for i in range(8)]
    seen, end = run_sweep(grid_plan(runs), lambda r, k: (344.0 if k == 1 else 33.0, 100, 0.4, None))
    eta, truth = accuracy(seen, end, lambda kind, t, fin, step, eta: kind == "run" and fin == 1)
    assert truth == pytest.approx(7 * 73.0)
    assert eta == pytest.approx(7 * (344 * WARM_START_FRACTION + 40.0))  # cold start-up x 0.1 until seen
    assert abs(eta - truth) < 0.2 * truth  # the old ETA: 7 x 384 s = 45 min for 8.5
    # once the first warm run has shown its first step line, warm runs are scaled by what it showed
    eta, truth = accuracy(
        seen, end, lambda kind, t, fin, step, eta: kind == "step" and fin == 1 and step == 1
    )
    assert abs(eta - truth) < 0.05 * truth


def test_trainer_step_rate_from_the_first_steps_of_the_first_run():
    """The demo on a loaded day: the plan says 0.18 s a step (tiny), the runs take 0.84: within the first
    steps of the first run the ETA follows the step lines, not the plan."""
    runs = [
        fake_run(f"t{i}", order=i, preset="tiny", params={"steps": 100}, estimate_s=23.0) for i in range(4)
    ]
    seen, end = run_sweep(grid_plan(runs), lambda r, k: (12.0, 100, 0.84, None))
    start_eta = next(s for s in seen if s[0] == "sweep_start")[4]
    assert start_eta == pytest.approx(4 * 23.0)  # the plan's estimate: all there is before a run starts
    eta, truth = accuracy(seen, end, lambda kind, t, fin, step, eta: kind == "step" and step == 5)
    assert fin_is_zero(seen, 5) and abs(eta - truth) < 0.15 * truth  # tiny's start-up (5 s) from the plan
    eta, truth = accuracy(seen, end, lambda kind, t, fin, step, eta: kind == "run" and fin == 1)
    assert eta == pytest.approx(truth)


def fin_is_zero(seen, step):
    return next(s for s in seen if s[0] == "step" and s[3] == step)[2] == 0


def test_a_trainer_runs_start_up_splits_into_compile_and_the_rest():
    """h200-mini: 413 s start-up cold, 373 s of it torch.compile; warm runs start in ~36 s."""
    runs = [fake_run(f"h{i}", order=i, gpus=1, preset="h200-mini", params={"steps": 300}) for i in range(4)]
    timing = lambda r, k: (413.0, 300, 0.134, 373.0) if k == 1 else (36.0, 300, 0.134, 14.0)  # noqa: E731
    seen, end = run_sweep(grid_plan(runs), timing)
    eta, truth = accuracy(seen, end, lambda kind, t, fin, step, eta: kind == "run" and fin == 1)
    assert eta == pytest.approx(3 * (40.0 + 40.2))  # the rest of the cold start-up (40 s), no compile yet
    assert abs(eta - truth) < 0.1 * truth
    eta, truth = accuracy(seen, end, lambda kind, t, fin, step, eta: kind == "run" and fin == 2)
    assert abs(eta - truth) < 0.1 * truth


def test_time_limit_predicts_the_next_run_as_the_eta_does_not_by_a_cold_compile():
    """An H200 session (2026-12-01): the first run of h200-mini compiled cold (start-up 479 s), 13 minutes
    were given, and the next run, warm, was judged by the cold run's wall (8m41s) against the 4m11s left:
    the machine sat idle. The limit now predicts a coming run as the ETA does (start-up less compile)."""
    runs = [fake_run(f"h{i}", order=i, gpus=1, preset="h200-mini", params={"steps": 300}) for i in range(4)]
    timing = lambda r, k: (479.0, 300, 0.137, 366.0) if k == 1 else (75.0, 300, 0.137, 40.0)  # noqa: E731
    seen, end = run_sweep(grid_plan(runs), timing, time_limit_s=780.0)
    ended = [t for kind, t, *_ in seen if kind == "run"]
    assert len(ended) == 3  # the cold run at 520 s, then two warm runs of ~116 s each; a 4th would not fit
    assert ended[0] - 1000.0 == pytest.approx(520.1) and end - 1000.0 <= 780.0


def test_makespan_lays_blocks_over_the_slots():
    assert makespan([], [[10.0], [10.0], [10.0]], 2) == 20.0
    assert makespan([5.0], [[10.0, 10.0], [3.0]], 2) == 20.0  # the long block takes the free slot
    assert makespan([30.0, 1.0, 2.0], [], 2) == 30.0
    assert makespan([], [], 3) == 0.0


def test_state_without_work_and_the_models_fallbacks():
    state = SweepState(planned=2, skipped=0, to_run=2, planned_per_arm={"a": 2})
    assert state.eta_s(1) is None  # runs to do, none known
    model = EtaModel()
    run = fake_run("c", is_trainer=False, estimate_s=60.0)
    assert model.run_s(run) == 60.0  # nothing measured: the spec's estimate_min
    assert model.run_s(replace(run, estimate_s=None)) is None
    model.start("x", "a", False, True, 0.0)
    model.step("x", 50.0, 0, 10, 0.0)  # a cold command run's first step line at 50 s
    assert model.overhead_s(False) == pytest.approx(50.0 * WARM_START_FRACTION)
    model.step("x", 60.0, 5, 10, 10_000.0)
    assert model.run_s(replace(run, estimate_s=None)) == pytest.approx(5.0 + 10 * 2.0)
