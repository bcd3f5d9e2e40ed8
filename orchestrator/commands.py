"""`ablate run` and `ablate status`: thin `cmd_*` functions over the driver, executor and store.

Ray is imported only inside `cmd_run` (never at import), so `ablate status`, `report` and `--help`
work without starting anything; `ablate run --dry-run` needs neither Ray nor pandas. The results
folder is read and written through its owner, `analysis.resultsdir.ResultsDir`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections import Counter
from pathlib import Path

from analysis import InputError
from analysis.resultsdir import ResultsDir, SweepInfo, split_current_ids
from orchestrator.driver import ResultsLock, SweepDriver, SweepOptions
from orchestrator.errors import UserError, storage_error
from orchestrator.executor import LOOPBACK, LOOPBACK_HOSTS, split_address

DEFAULT_RESULTS_ROOT = Path("results")


def add_run_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="run a sweep spec on Ray (a local Ray by default), resuming what is missing",
        description="Expand SPEC into runs, run the missing ones on Ray (blocks of an A/B on one node, in "
        "planned order), store each run as it ends in results/<spec name>/ and write the report at the end. "
        "Running the same spec again runs only what is missing.",
        epilog="Exit status: 0 every planned run ok or diverged; 1 some planned run failed or timed out "
        "(in this invocation or before: --retry-failed runs them again); 2 a mistake in the spec or the "
        "options (one line says which); 3 runs left for the next invocation (--max-blocks, --time-limit), "
        "which wins over 1: run again until the status is not 3, then 1 says failed runs remain; 130 "
        "Ctrl-C; 128 + n a stop signal (SIGTERM 143, SIGHUP 129). Finished runs are kept in every case.",
    )
    p.add_argument("spec", help="sweep spec file (YAML), e.g. sweeps/demo.yaml")
    p.add_argument("--profile", metavar="NAME", help="apply the spec's named profile (e.g. cpu)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: results/<spec name>)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan and its GPU-hour estimate; run nothing"
    )
    p.add_argument(
        "--address", metavar="ADDR", help="join this Ray cluster (host:port or 'auto') instead of a local one"
    )
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, metavar="N", help="GPUs of the local Ray (default: detected)")
    p.add_argument(
        "--dashboard", action="store_true", help=f"start the Ray dashboard (on {LOOPBACK}) with the local Ray"
    )
    p.add_argument(
        "--max-parallel", type=int, metavar="N", help="at most N blocks at once (default: as many as fit)"
    )
    p.add_argument(
        "--max-blocks",
        type=int,
        metavar="N",
        help="start at most N blocks this time (a sweep in parts); run again to go on (exit 3 while runs "
        "are left)",
    )
    p.add_argument(
        "--time-limit",
        metavar="DURATION",
        help="start no block that would not end within DURATION (e.g. 25m, 1h30m) of the start, by the "
        "ETA's prediction of its runs (the plan's estimate before any is measured); running blocks are "
        "never cut; exit 3 while runs are left",
    )
    p.add_argument(
        "--until-decided",
        action="store_true",
        help="A/B: stop adding blocks once the sequential test has decided (or at runs_per_arm)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="run the failed and timed-out runs again (each attempt kept under attempts/; a retry's "
        "outcome replaces the failed one); without it they count as done and the exit status is 1",
    )
    p.add_argument(
        "--force-spec-change",
        action="store_true",
        help="accept a spec that differs from the one stored in the results folder in what identifies runs",
    )
    p.add_argument(
        "--compile-cache-dir",
        metavar="DIR",
        help="root of the per-node compile caches (default ~/.cache/ablate/compile)",
    )
    p.add_argument("--no-compile-cache", action="store_true", help="let each run compile from scratch")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("--no-report", action="store_true", help="do not write the report when the sweep ends")
    p.set_defaults(func=cmd_run)
    return p


def add_status_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "status",
        help="show a sweep's progress from its results folder (works while it runs)",
        description="Print done / failed / missing runs per arm and what is running, from RESULTS_DIR.",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="a sweep's results folder, e.g. results/demo")
    p.set_defaults(func=cmd_status)
    return p


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """'90s', '25m', '1h30m', '1.5h' -> seconds; ValueError (with what would be right) otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration; write it with units, e.g. 90s, 25m, 1h30m or 1.5h")
    h, mi, se = (float(g) if g else 0.0 for g in m.groups())
    total = 3600 * h + 60 * mi + se
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration; e.g. 25m")
    return total


def _duration(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise UserError(f"{name}: {e}") from None


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be a positive integer, got {value}")


def _load(args: argparse.Namespace):
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec

    if not Path(args.spec).is_file():
        raise UserError(f"{args.spec}: no such spec file; pass a YAML file such as sweeps/demo.yaml")
    spec = load_spec(args.spec, profile=args.profile)
    return spec, make_plan(spec)


def _check_stored_spec(results_dir: Path, spec, force: bool) -> None:
    """Refuse a spec that differs in what identifies runs from the one stored with the results."""
    import yaml

    from orchestrator.plan import spec_identity_diff
    from orchestrator.spec import SpecError, parse_spec

    folder = ResultsDir(results_dir)
    stored_path = folder.spec_file
    if not stored_path.exists():
        return
    stored_profile = _stored_sweep_json(folder).get("profile", spec.profile)
    try:
        stored = parse_spec(yaml.safe_load(stored_path.read_text()), str(stored_path), profile=stored_profile)
    except (SpecError, yaml.YAMLError) as e:
        raise UserError(
            f"{stored_path}: the stored spec no longer loads ({e}); use a new --results DIR"
        ) from None
    diffs = spec_identity_diff(stored, spec)
    if diffs and not force:
        raise UserError(
            f"{spec.source} differs from the spec stored in {results_dir} in {', '.join(diffs)}; "
            "use a new --results DIR, or --force-spec-change to add these runs to the same folder"
        )


def sweep_info(plan, spec_path: Path) -> SweepInfo:
    """What sweep.json says of `plan`: the report and `ablate status` count its run ids (other runs in
    runs/, from an earlier version of the trainer or of a script, are kept but left out), and the
    layer-ablation figure draws the layers its grid points sweep."""
    return SweepInfo(
        name=plan.name,
        kind=plan.kind,
        target_val_loss=plan.target_val_loss,
        baseline_arm=plan.baseline_arm,
        arms=tuple(plan.arms),
        profile=plan.profile,
        spec_file=str(spec_path),
        planned_runs=len(plan.runs),
        run_ids=tuple(r.run_id for r in plan.runs),
        point_layers={r.run_id: dict(r.point.layers) for r in plan.runs if r.point.layers},
        description=plan.description or None,
        contrasts=list(plan.contrasts) or None,
    )


def _write_sweep_files(results_dir: Path, spec_path: Path, plan) -> None:
    """`spec.yaml` as submitted and `sweep.json` (what the report needs to know about the sweep)."""
    folder = ResultsDir(results_dir)
    folder.write_text(folder.spec_file, spec_path.read_text())
    folder.write_sweep(sweep_info(plan, spec_path))


def _decider(plan):
    """For --until-decided on an A/B: a function of the results folder giving a verdict or None."""
    if plan.kind != "ab":
        raise UserError(f"--until-decided needs an A/B spec (kind: ab); {plan.name} is kind {plan.kind}")
    from analysis.sequential import sequential_decision

    def decide(results_dir: Path) -> str | None:
        return sequential_decision(ResultsDir(results_dir).read_runs(), plan=plan)

    return decide


def _measured(results_dir: Path, plan, done: set[str]):
    """The dry-run's pace from the folder's finished runs of this plan (`plan.Measured`): ok runs with a
    wall time that did not start on an empty compile cache (a cold compile is once a machine), split
    into the first run of each configuration and the repeats (their configuration ran before them, in
    the order they started). None when none has, without pandas and pyarrow, or when the folder's
    files do not read (the estimate is extra: the plan still prints, and `ablate status` says more)."""
    import importlib.util

    if not done or not all(importlib.util.find_spec(m) for m in ("pandas", "pyarrow")):
        return None  # the GPU machines' slim bundle may lack them: the plan's own estimate stands
    try:
        return _measured_from(ResultsDir(results_dir).read_runs(), plan, done)
    except (OSError, ValueError, KeyError, InputError):  # a damaged or foreign file (pyarrow: ValueError)
        return None


def _measured_from(runs, plan, done: set[str]):
    from orchestrator.plan import Measured, config_key

    keys = {r.run_id: config_key(r) for r in plan.runs}
    ok = runs[runs["run_id"].isin(done & set(keys)) & (runs["status"] == "ok")]
    if ok.empty or "wall_s" not in ok:
        return None
    order = [k for k in ("started_at", "run_id") if k in ok]
    ok = ok.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
    config = ok["run_id"].map(keys)
    repeat = config.duplicated()  # its configuration ran before it
    timed = ok["wall_s"].notna()
    if "compile_cache" in ok:
        timed &= ok["compile_cache"] != "cold"
    if not timed.any():
        return None
    firsts, repeats = ok[timed & ~repeat], ok[timed & repeat]
    return Measured(
        runs=int(timed.sum()),
        wall_s=float(ok[timed]["wall_s"].mean()),
        by_arm={str(a): float(w) for a, w in firsts.groupby("arm")["wall_s"].mean().items()},
        repeat_wall_s=float(repeats["wall_s"].mean()) if len(repeats) else None,
        repeats=len(repeats),
        configs=frozenset(config),
    )


EXIT_RUNS_LEFT = 3
"""`ablate run` stopped starting blocks (--max-blocks, --time-limit) with runs left: run it again."""


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep; the exit status is `run_exit_status`'s (0, 1, or 3 with runs left)."""
    from orchestrator.plan import describe_plan

    _positive("--max-parallel", args.max_parallel)
    _positive("--max-blocks", args.max_blocks)
    time_limit_s = _duration("--time-limit", args.time_limit)
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s  # from the command's start
    spec, plan = _load(args)
    results_dir = Path(args.results) if args.results else DEFAULT_RESULTS_ROOT / plan.name
    if args.dry_run:
        done = ResultsDir(results_dir).finished_run_ids()
        if args.retry_failed:
            done -= _retryable(results_dir, plan) or set()
        print(describe_plan(plan, done_run_ids=frozenset(done), measured=_measured(results_dir, plan, done)))
        _plan_checks(spec, plan, dry_run=True)
        return 0
    _plan_checks(spec, plan, dry_run=False)
    check_ray_address(args.address)  # before anything is written: a wrong address is one line
    decide = _decider(plan) if args.until_decided else None
    with ResultsLock(results_dir):
        _check_stored_spec(results_dir, spec, args.force_spec_change)
        try:
            _write_sweep_files(results_dir, Path(args.spec), plan)
        except OSError as e:
            raise storage_error(e, results_dir) or e from None
        failed = _retryable(results_dir, plan) or set()  # read once: the start line and the driver's
        missing = _missing(plan, results_dir, failed, args.retry_failed)
        state = _execute(args, spec, plan, results_dir, decide, deadline, failed) if missing else None
        if not args.no_report:
            from analysis.report import write_report

            paths = write_report(results_dir)
            print(f"report: {paths['md']}")
        failed_now = len(_retryable(results_dir, plan) or ())  # after this run's retries
    return run_exit_status(state is not None and state.deferred > 0, failed_now)


def _plan_checks(spec, plan, *, dry_run: bool) -> None:
    """Warnings on stderr (an arm turning back on what the baseline has off; with --dry-run, a command's
    script that is nowhere); a real run stops at a missing script: one line, exit 2, before Ray starts."""
    from orchestrator.plan import check_scripts, plan_warnings, script_warnings

    if not dry_run:
        check_scripts(spec)
    for line in [*plan_warnings(spec, plan), *(script_warnings(spec) if dry_run else [])]:
        print(line, file=sys.stderr)


def run_exit_status(runs_left: bool, failed: int) -> int:
    """`ablate run`'s status: 3 while runs are left for the next invocation (it wins: a loop that runs
    again on 3 finishes the sweep), else 1 while any planned run is failed or timed out, else 0."""
    if runs_left:
        return EXIT_RUNS_LEFT
    return 1 if failed else 0


def _retryable(results_dir: Path, plan) -> set[str] | None:
    """The plan's runs whose stored outcome is failed or timed out (None: the rows cannot be read here,
    as on a machine without pyarrow for --dry-run)."""
    try:
        failed = ResultsDir(results_dir).retryable_run_ids()
    except ImportError:
        return None
    return split_current_ids(failed, [r.run_id for r in plan.runs])[0]


def _missing(plan, results_dir: Path, failed: set[str], retry_failed: bool) -> int:
    """Runs still to run (`failed`: the plan's failed and timed-out runs); when none, say so without
    starting Ray."""
    from orchestrator.progress import failed_note, start_line

    done, stale = split_current_ids(ResultsDir(results_dir).finished_run_ids(), [r.run_id for r in plan.runs])
    if stale:
        print(
            f"note: {stale} finished run(s) in {results_dir} are not in this plan (an earlier version of the "
            "trainer, a script or the spec): kept in runs/, left out of the report"
        )
    missing = len(plan.runs) - len(done) + (len(failed) if retry_failed else 0)
    if missing == 0:
        print(f"{start_line(0, len(done), len(plan.runs))}{failed_note(len(failed), 0)}: nothing to do")
    return missing


def check_ray_address(address: str | None, timeout_s: float = 3.0) -> None:
    """One line (UserError) when nothing answers at `--address host:port`, instead of Ray's minutes of
    retries ending in a traceback. `ray start --head` binds the node's address, not 127.0.0.1, so a
    loopback address that does not answer gets that said. None (ablate's own Ray) and 'auto' pass."""
    import socket

    if address is None or address == "auto":
        return
    hostport = split_address(address)
    if hostport is None:
        raise UserError(f"--address {address}: give host:port, e.g. 10.0.0.5:6379, or auto")
    host, port = hostport
    try:
        socket.create_connection(hostport, timeout=timeout_s).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        if host in LOOPBACK_HOSTS:
            raise UserError(
                f"--address {address}: nothing listens there ({why}); `ray start --head` binds this "
                f"machine's address, not {host}: pass the address it printed (e.g. 10.0.0.5:{port}) or "
                "--address auto"
            ) from None
        raise UserError(
            f"--address {address}: cannot connect ({why}); is `ray start --head --port={port}` running on "
            f"{host}, and its port open from here?"
        ) from None


def _execute(
    args: argparse.Namespace, spec, plan, results_dir: Path, decide, deadline: float | None, failed: set[str]
):
    """Start or join Ray, run the driver (`failed`: the plan's failed runs, read once), always shut down
    what we started."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UserError(
            "ablate run needs Ray, which this Python cannot import: pip install 'ray>=2.40' "
            "(on a GPU machine without it, source the slim bundle first: see docs/gpu.md)"
        )
    from orchestrator.executor import BlockContext, RayExecutor
    from orchestrator.progress import make_progress
    from orchestrator.signals import stop_signals_interrupt

    ctx = BlockContext(
        cache_root=args.compile_cache_dir,
        use_compile_cache=not args.no_compile_cache,
        shared_cache_dir=getattr(spec.resources, "compile_cache_dir", None),
        want_seed=not args.no_compile_cache,
    )
    try:
        executor = RayExecutor.start(
            args.address, dashboard=args.dashboard, num_cpus=args.num_cpus, num_gpus=args.num_gpus
        )
    except ConnectionError as e:  # Ray's: no cluster found (--address auto), or none at the address
        if not args.address:
            raise
        raise UserError(f"--address {args.address}: {str(e).splitlines()[0]}") from None
    # Ray's start (seconds on a fresh machine) counts against --time-limit: the driver gets what is left
    time_limit_s = None if deadline is None else max(0.0, deadline - time.monotonic())
    options = SweepOptions(
        max_parallel=args.max_parallel,
        until_decided=args.until_decided,
        retry_failed=args.retry_failed,
        max_blocks=args.max_blocks,
        time_limit_s=time_limit_s,
    )
    progress = None
    try:
        parallel = args.max_parallel or max(1, executor.slots(plan.blocks[0])) if plan.blocks else 1
        progress = make_progress(parallel=parallel, plain=True if args.plain else None)
        driver = SweepDriver(
            plan,
            results_dir,
            executor,
            ctx=ctx,
            options=options,
            progress=progress,
            decide=decide,
            failed=failed,
        )
        with stop_signals_interrupt():  # after Ray's start: SIGTERM / SIGHUP cancel as Ctrl-C does
            return driver.run()
    finally:
        if progress is not None:
            progress.close()
        executor.shutdown()


# ------------------------------------------------------------------------------------------ status


def _stored_sweep_json(folder: ResultsDir) -> dict:
    """sweep.json as stored, {} when absent, unreadable or of wrong types (the spec check goes on without
    it: `ablate run` writes it again)."""
    try:
        data = folder.read_sweep_json()
        SweepInfo.from_json(data, folder.sweep_file)
    except (OSError, InputError):
        return {}
    return data


def status_text(results_dir: Path) -> str:
    """The text `ablate status` prints: per arm done/failed/missing, each failed run's reason, and what
    is running. InputError for a sweep.json that is not valid JSON or has a field of the wrong type."""
    from analysis.summary import failure_lines

    folder = ResultsDir(results_dir)
    sweep, status = folder.read_sweep(), folder.read_status()
    runs, stale = sweep.current_runs(folder.read_runs())
    counts: dict[str, Counter] = {}
    for arm, st in zip(runs.get("arm", []), runs.get("status", []), strict=False):
        counts.setdefault(arm, Counter())[st] += 1
    planned = status.get("planned_per_arm") or {}
    arms = list(dict.fromkeys([*sweep.arms, *planned, *counts]))
    alive = folder.driver_alive()
    head = f"sweep {sweep.name or results_dir.name} ({sweep.kind or '?'}) in {results_dir}: "
    head += (
        f"driver running (pid {status.get('pid')} on {status.get('host')})" if alive else "no driver running"
    )
    lines = [
        head,
        f"{'arm':<24} {'planned':>7} {'ok':>4} {'failed':>6} {'diverged':>8} {'timeout':>7} {'missing':>7}",
    ]
    for arm in arms:
        c = counts.get(arm, Counter())
        n = planned.get(arm)
        missing = "?" if n is None else str(max(0, n - sum(c.values())))
        lines.append(
            f"{arm:<24} {n if n is not None else '?':>7} {c['ok']:>4} {c['failed']:>6} {c['diverged']:>8} "
            f"{c['timeout']:>7} {missing:>7}"
        )
    lines += failure_lines(runs)  # each failed run's reason: the first line of its error
    running = status.get("running", []) if alive else []
    lines.append(f"running: {len(running)}" if running else "running: none")
    for r in running:
        step = f"step {r['step']}/{r['total']}" if r.get("step") is not None else "starting"
        loss = f" val_loss {r['val_loss']:.4f}" if r.get("val_loss") is not None else ""
        node = (r.get("node_id") or "?")[:8]
        lines.append(f"  {r['run_id']} ({r['arm']}) on node {node}, attempt {r['attempt']}, {step}{loss}")
    if status.get("decided"):
        lines.append(f"decided: {status['decided']}")
    if not alive and status.get("state") == "partial":
        lines.append(
            f"the last `ablate run` stopped starting blocks with {status.get('deferred')} run(s) left "
            f"({status.get('stop_reason')}); run it again to go on"
        )
    elif not alive and status.get("state") == "cancelled":
        lines.append("the last `ablate run` was cancelled (Ctrl-C or a stop signal); run it again to go on")
    if stale:
        lines.append(f"not counted: {stale} run(s) of an earlier plan (another version of the code or spec)")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    results_dir = Path(args.results_dir)
    ResultsDir(results_dir).require()
    with contextlib.suppress(BrokenPipeError):
        print(status_text(results_dir))
    sys.stdout.flush()
    return 0
