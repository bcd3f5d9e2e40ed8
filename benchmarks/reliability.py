"""Reliability and security figures (issue 8): chaos, storage faults, fuzzing, load, security.

    python benchmarks/reliability.py [--quick] [--only chaos,storage,fuzz,load,security] [--seed N]

- chaos: a sweep of 50 short CPU jobs (tests/orchestrator/fake_job.py, one command arm per run) on a
  3-node `ray.cluster_utils.Cluster` with 4 fake GPUs per node, driven by `python -m orchestrator.cli
  run --address` in a subprocess. While it runs: random job kills (SIGKILL of the job process; the
  orchestrator retries it), one node removed (its processes killed, as in a crash) and a new node
  added, and the driver SIGKILLed and restarted twice. Then: every planned run has exactly one
  final result and all are ok; no job process (or grandchild) is left. The fault plan (when, which
  job, which node) is drawn from `--seed`; the exact interleaving still depends on timing.
- storage: `ablate run` on a local Ray whose disk "fills up" while writing the 3rd run's result
  (pyarrow's write fails part-way with ENOSPC, as `tests/analysis/test_store.py` simulates it):
  no partial file a reader takes for a result, one error line and no traceback, no job left, and
  a rerun resumes with only the missing runs.
- fuzz: the hypothesis properties of the spec parser and the log parser (tests/orchestrator/
  test_spec_fuzz.py, tests/analysis/test_logs.py), N examples each: a result or a one-line error,
  and sweep, profile and arm names that become folder names are safe.
- load: `benchmarks/load.py`: plan, `ablate status` and `ablate report` at 10,000 runs (goal < 10 s).
- security: tests/test_security.py, then a live check that the embedded Ray listens on loopback
  only with its dashboard off, and that no code of ours touches Ray's token authentication.

--quick (the ci tier): 12 chaos runs with the same fault kinds, 500 fuzz examples, 2,000 load runs.
Prints a summary table; exits 1 if a run was lost or duplicated, a process orphaned, or any part
failed.

It takes the test suite's fakes and properties from tests/ on purpose (the fake job, the process
helpers, the fuzz properties): this is the suite's own checks run longer and harder, and each of
them is defined once, where the default tier runs it with few examples. Moving them out of tests/
would only turn the dependency around; `tests/benchmarks/test_reliability.py` checks in the default
tier that every name taken from tests/ is there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the fake job and the test helpers live in the repository, not the package
    sys.path.insert(0, str(ROOT))

PARTS = ("chaos", "storage", "fuzz", "load", "security")
FAKE_JOB = ROOT / "tests" / "orchestrator" / "fake_job.py"
# Ray notices a dead node after period x threshold (~5 s); lenient enough for a busy 2-core machine
HEALTH = {
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 5,
    "health_check_initial_delay_ms": 0,
}
ORPHAN_WAIT_S = 20.0
"""A job process still alive this long after its driver or node died counts as an orphan."""


@dataclass
class Part:
    """The outcome of one part: its figures (printed) and what did not hold (empty: it held)."""

    name: str
    figures: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    headline: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def say(text: str = "") -> None:
    print(text, flush=True)


def _env(**extra: str) -> dict[str, str]:
    """Environment for our subprocesses: the repository importable, no usage stats, nothing else changed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update(extra)
    return env


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


# ------------------------------------------------------------------------------------------- chaos


@dataclass(frozen=True)
class ChaosSize:
    runs: int
    job_kills: int
    cpus_per_run: int
    """Nodes have 2 CPUs: 1 gives two runs per node at once, 2 one (more rounds for the faults to land in)."""
    steps: int = 10
    sleep: float = 0.25


CHAOS_FULL = ChaosSize(runs=50, job_kills=8, cpus_per_run=1)
CHAOS_QUICK = ChaosSize(runs=12, job_kills=3, cpus_per_run=2)


def _chaos_spec(folder: Path, size: ChaosSize, pid_dir: Path) -> Path:
    """One command arm per run (its --tag says which run a process is), 1 fake GPU each, retries 3."""
    import yaml

    arms = {}
    for i in range(size.runs):
        tag = f"r{i:02d}"
        arms[tag] = {
            "command": ["python", str(FAKE_JOB), "--steps", str(size.steps), "--sleep", str(size.sleep),
                        "--child", "--pid-dir", str(pid_dir), "--tag", tag],
        }  # fmt: skip
    spec = {
        "name": "reliability-chaos",
        "description": "benchmarks/reliability.py: fake jobs under random kills, node churn, driver kills",
        "resources": {"gpus_per_run": 1, "cpus_per_run": size.cpus_per_run},
        "retries": 3,
        "timeout_s": 120,
        "target_val_loss": None,
        "arms": arms,
    }
    path = folder / "chaos.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@dataclass
class Proc:
    """A process the fake job recorded in the pid folder: the job itself or its grandchild."""

    pid: int
    kind: str  # job | child
    tag: str
    started: float | None


def _read_procs(pid_dir: Path) -> dict[int, Proc]:
    out = {}
    if not pid_dir.is_dir():
        return out
    for p in pid_dir.iterdir():
        try:
            parts = p.read_text().split()
        except OSError:
            continue
        if len(parts) < 2:
            continue  # being written
        started = float(parts[2]) if len(parts) > 2 else None
        out[int(p.name)] = Proc(int(p.name), parts[0], parts[1], started)
    return out


class ChaosCluster:
    """A `ray.cluster_utils.Cluster` on loopback: a head and worker nodes with fake GPUs."""

    def __init__(self, nodes: int, cpus: int = 2, gpus: int = 4):
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster

        from tests.orchestrator.helpers import fake_gpus_allowed

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False  # every node on 127.0.0.1
        self.cpus, self.gpus = cpus, gpus
        self._fake_gpus = fake_gpus_allowed
        with fake_gpus_allowed():
            self.cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": cpus,
                    "num_gpus": gpus,
                    "node_ip_address": "127.0.0.1",
                    "include_dashboard": False,
                    "_system_config": HEALTH,
                },
            )
        self.head = self.cluster.head_node
        self.names = {self.head.node_id: "head"}
        for _ in range(nodes - 1):
            self.add()

    @property
    def address(self) -> str:
        return self.cluster.address

    def add(self):
        with self._fake_gpus():
            node = self.cluster.add_node(num_cpus=self.cpus, num_gpus=self.gpus, node_ip_address="127.0.0.1")
            self.cluster.wait_for_nodes()
        self.names[node.node_id] = f"node{len(self.names)}"
        return node

    def remove(self, node) -> None:
        self.cluster.remove_node(node, allow_graceful=False)  # as in a crash: SIGKILL, no clean-up
        self.names[node.node_id] += " (removed)"

    def raylet_pids(self) -> dict[int, object]:
        """raylet pid -> node, for the nodes alive now."""
        from ray._private import ray_constants

        out = {}
        for node in self.cluster.list_all_nodes():
            procs = node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET) or []
            if procs:
                out[procs[0].process.pid] = node
        return out

    def node_of(self, pid: int):
        """The cluster node whose raylet is an ancestor of `pid` (None if none is)."""
        import psutil

        raylets = self.raylet_pids()
        try:
            for parent in psutil.Process(pid).parents():
                if parent.pid in raylets:
                    return raylets[parent.pid]
        except psutil.NoSuchProcess:
            return None
        return None

    def shutdown(self) -> None:
        self.cluster.shutdown()


@dataclass
class Fault:
    at: int  # fires once this many runs have finished (and it can)
    kind: str  # kill_job | remove_node | add_node | kill_driver
    done: bool = False
    note: str = ""


def fault_plan(size: ChaosSize, rng: random.Random) -> list[Fault]:
    """When each fault fires, in finished runs: spread over the sweep, the same kinds at every size."""
    n = size.runs

    def at(lo: float, hi: float) -> int:
        return int(rng.uniform(lo, hi) * n)

    faults = [Fault(at(0.0, 0.8), "kill_job") for _ in range(size.job_kills)]
    removal = at(0.1, 0.3)
    faults += [Fault(removal, "remove_node"), Fault(removal, "add_node")]
    faults += [Fault(at(0.35, 0.5), "kill_driver"), Fault(at(0.55, 0.75), "kill_driver")]
    return sorted(faults, key=lambda f: f.at)  # stable: a node is added after the removal


class Chaos:
    """Runs the chaos sweep: drives the driver subprocess and injects the faults."""

    def __init__(self, size: ChaosSize, seed: int, work: Path, deadline_s: float):
        self.size, self.rng, self.work = size, random.Random(seed), work
        self.deadline = time.monotonic() + deadline_s
        self.pid_dir = work / "pids"
        self.pid_dir.mkdir(parents=True)
        self.results = work / "results"
        self.spec = _chaos_spec(work, size, self.pid_dir)
        self.faults = fault_plan(size, self.rng)
        self.driver: subprocess.Popen | None = None
        self.driver_logs: list[Path] = []
        self.driver_codes: list[int] = []
        self.killed_tags: set[str] = set()
        self.seen: dict[int, Proc] = {}
        self.concurrent: set[str] = set()
        self.orphans: set[int] = set()
        self.watch: list[tuple[set[int], float, str]] = []
        self.problems: list[str] = []
        self.removed_node_id: str | None = None
        self.added_node_id: str | None = None

    # -- the driver --------------------------------------------------------------------------------

    def start_driver(self, address: str) -> None:
        log = self.work / f"driver{len(self.driver_logs)}.log"
        self.driver_logs.append(log)
        cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(self.spec), "--address", address,
               "--results", str(self.results), "--plain", "--no-report", "--no-compile-cache"]  # fmt: skip
        with open(log, "wb") as out:
            self.driver = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)

    def kill_driver(self, address: str) -> str:
        procs = [p for p in self._live().values()]
        self.driver.send_signal(signal.SIGKILL)
        self.driver_codes.append(self.driver.wait())
        self._expect_gone([p.pid for p in procs], "after the driver was SIGKILLed")
        self.start_driver(address)
        return f"{len([p for p in procs if p.kind == 'job'])} job(s) were running"

    # -- processes ---------------------------------------------------------------------------------

    def _live(self) -> dict[int, Proc]:
        procs = _read_procs(self.pid_dir)
        self.seen.update(procs)
        return {pid: p for pid, p in procs.items() if _alive(pid)}

    def _expect_gone(self, pids: list[int], when: str) -> None:
        """These processes must be gone within ORPHAN_WAIT_S (checked while the sweep goes on)."""
        if pids:
            self.watch.append((set(pids), time.monotonic() + ORPHAN_WAIT_S, when))

    def _check_gone(self) -> None:
        for item in list(self.watch):
            pids, deadline, when = item
            alive = {pid for pid in pids if _alive(pid)}
            if alive and time.monotonic() < deadline:
                continue
            self.watch.remove(item)
            if alive:
                self.orphans.update(alive)
                self.problems.append(f"{len(alive)} job process(es) still alive {ORPHAN_WAIT_S:.0f} s {when}")

    def _running_jobs(self, live: dict[int, Proc], min_age_s: float = 0.5) -> list[Proc]:
        """Jobs running for a while, and not already doomed (their driver or node was killed)."""
        now = time.time()
        doomed = {pid for pids, _, _ in self.watch for pid in pids}
        jobs = [
            p
            for p in live.values()
            if p.kind == "job" and p.started and now - p.started > min_age_s and p.pid not in doomed
        ]
        return sorted(jobs, key=lambda p: p.tag)

    # -- faults ------------------------------------------------------------------------------------

    def _try(self, fault: Fault, cluster: ChaosCluster, live: dict[int, Proc]) -> bool:
        """Inject `fault` if it can be now (a job to kill, a job on a node to remove); True when done."""
        if fault.kind == "kill_job":
            jobs = [p for p in self._running_jobs(live) if p.tag not in self.killed_tags]
            if not jobs:
                return False
            victim = self.rng.choice(jobs)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim.pid, signal.SIGKILL)
            self.killed_tags.add(victim.tag)
            fault.note = f"job {victim.tag} (pid {victim.pid})"
            return True
        if fault.kind == "remove_node":
            on_node: dict[str, list[Proc]] = {}
            nodes = {}
            for p in self._running_jobs(live):
                node = cluster.node_of(p.pid)
                if node is not None and node is not cluster.head:
                    on_node.setdefault(node.node_id, []).append(p)
                    nodes[node.node_id] = node
            if not on_node:
                return False
            node_id = self.rng.choice(sorted(on_node))
            victims = [q.pid for p in on_node[node_id] for q in live.values() if q.tag == p.tag]
            cluster.remove(nodes[node_id])
            self.removed_node_id = node_id
            self._expect_gone(victims, "after their node was removed")
            fault.note = f"node {node_id[:8]} with {len(on_node[node_id])} running job(s)"
            return True
        if fault.kind == "add_node":
            if self.removed_node_id is None:
                return False
            self.added_node_id = cluster.add().node_id
            fault.note = f"node {self.added_node_id[:8]}"
            return True
        if fault.kind == "kill_driver":
            if not self._running_jobs(live, min_age_s=0.2):
                return False
            fault.note = self.kill_driver(cluster.address)
            return True
        raise ValueError(fault.kind)

    def run(self, cluster: ChaosCluster) -> float:
        from analysis.store import finished_run_ids

        t0 = time.monotonic()
        self.start_driver(cluster.address)
        while True:
            code = self.driver.poll()
            if code is not None:
                self.driver_codes.append(code)
                break
            if time.monotonic() > self.deadline:
                self.driver.send_signal(signal.SIGKILL)
                self.driver_codes.append(self.driver.wait())
                self.problems.append("the sweep did not end before the deadline (driver killed)")
                break
            live = self._live()
            by_tag = Counter(p.tag for p in live.values() if p.kind == "job")
            self.concurrent.update(tag for tag, n in by_tag.items() if n > 1)
            finished = len(finished_run_ids(self.results))
            for fault in self.faults:
                if not fault.done and fault.at <= finished and self._try(fault, cluster, live):
                    fault.done = True
                    at = time.monotonic() - t0
                    say(f"  {at:5.1f} s  {fault.kind:<11} after {finished:>2} finished runs: {fault.note}")
                    break
            self._check_gone()
            time.sleep(0.2)
        wall = time.monotonic() - t0
        # the sweep has ended: nothing of it may be left running
        self._expect_gone(list(self._live()), "after the sweep ended")
        while self.watch:
            self._check_gone()
            time.sleep(0.2)
        return wall


def _result_mtimes(results: Path) -> dict[str, float]:
    from analysis.resultsdir import ResultsDir, result_files

    return {run_id: p.stat().st_mtime for run_id, p in result_files(ResultsDir(results).runs_dir).items()}


def part_chaos(quick: bool, seed: int) -> Part:
    from analysis import store
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec

    size = CHAOS_QUICK if quick else CHAOS_FULL
    part = Part("chaos")
    say(f"chaos: {size.runs} runs on 3 nodes (2 CPUs, 4 fake GPUs each), seed {seed}")
    with tempfile.TemporaryDirectory(prefix="ablate-chaos-") as tmp:
        chaos = Chaos(size, seed, Path(tmp), deadline_s=300 if quick else 600)
        t0 = time.monotonic()
        cluster = ChaosCluster(nodes=3)
        say(f"  cluster of 3 nodes up in {time.monotonic() - t0:.1f} s")
        try:
            wall = chaos.run(cluster)
        finally:
            leftovers = [pid for pid in chaos.seen if _alive(pid)]
            cluster.shutdown()
            for pid in leftovers:  # orphans are counted already; do not leave them behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        plan = make_plan(load_spec(chaos.spec))
        planned = {r.run_id: r for r in plan.runs}
        tag_of = {r.run_id: r.arm for r in plan.runs}
        rows = store.read_runs(chaos.results)
        attempts = store.read_attempts(chaos.results)
        files = store.finished_run_ids(chaos.results)
        mtimes = _result_mtimes(chaos.results)
        per_id = Counter(rows["run_id"])
        ok_ids = set(rows.loc[rows["status"] == "ok", "run_id"])
        # duplicated: more than one result for a run, a result outside the plan, a job of a run started
        # after its result was stored, or two processes of one run alive at once
        started_late = {
            tag_of[rid]
            for rid in planned
            if rid in mtimes
            and any(
                p.kind == "job" and p.tag == tag_of[rid] and p.started > mtimes[rid] + 0.01
                for p in chaos.seen.values()
            )
        }
        dup_tags = {tag_of[r] for r, n in per_id.items() if n > 1 and r in tag_of}
        dup_tags |= started_late | chaos.concurrent
        unplanned = files - set(planned)
        lost = sorted(tag_of[r] for r in planned if r not in ok_ids)
        on_added = int((rows["node_id"] == chaos.added_node_id).sum()) if chaos.added_node_id else 0
        if chaos.added_node_id:
            cluster.names[chaos.added_node_id] += " (added)"
        per_node = Counter(cluster.names.get(n, str(n)[:8]) for n in rows["node_id"])
        outputs = [log.read_text(errors="replace") for log in chaos.driver_logs]
        tracebacks = sum(_tracebacks(t) for t in outputs)
        lost_lines = [line for t in outputs for line in t.splitlines() if re.search(r"block \d+ lost", line)]
        # a block lost to an exception raised in our worker code (RayTaskError) is a bug, not a fault
        ours = [line for line in lost_lines if "RayTaskError" in line]
        jobs_started = sum(1 for p in chaos.seen.values() if p.kind == "job")
        f = part.figures
        f["runs planned"] = len(planned)
        f["runs done (one ok result each)"] = len(ok_ids & set(planned))
        f["runs lost"] = len(lost)
        f["runs duplicated"] = len(dup_tags) + len(unplanned)
        f["failed attempts retried"] = len(attempts)
        f["runs retried (attempt > 1)"] = int((rows["attempt"] > 1).sum()) if len(rows) else 0
        f["job processes started"] = jobs_started
        f["job kills"] = sum(1 for x in chaos.faults if x.kind == "kill_job" and x.done)
        f["blocks lost with their node (re-run elsewhere)"] = len(lost_lines) - len(ours)
        f["blocks lost to an error in our code"] = len(ours)
        f["node removed / added"] = (
            f"{int(chaos.removed_node_id is not None)} / {int(chaos.added_node_id is not None)}"
        )
        f["runs finished on the added node"] = on_added
        f["final results per node"] = ", ".join(f"{k} {v}" for k, v in sorted(per_node.items()))
        f["driver SIGKILLs (restarts)"] = sum(1 for x in chaos.faults if x.kind == "kill_driver" and x.done)
        f["orphan processes"] = len(chaos.orphans)
        f["tracebacks in driver output"] = tracebacks
        f["sweep wall time (s)"] = round(wall, 1)
        part.problems += chaos.problems
        if lost:
            part.problems.append(f"lost runs (no ok result): {', '.join(lost)}")
        if dup_tags or unplanned:
            part.problems.append(
                f"duplicated runs: {', '.join(sorted(dup_tags)) or 'none'}; results outside the plan: "
                f"{len(unplanned)}"
            )
        if not_done := [x.kind for x in chaos.faults if not x.done]:
            part.problems.append(f"faults not injected before the sweep ended: {', '.join(not_done)}")
        if chaos.driver_codes[-1:] != [0]:
            part.problems.append(f"the last driver exited {chaos.driver_codes[-1:]}; see its output below")
            say(outputs[-1][-3000:])
        if tracebacks:
            part.problems.append(f"{tracebacks} traceback(s) in the drivers' output")
            for t in outputs:
                if _tracebacks(t):
                    say(t[t.index("Traceback") :][:3000])
        if ours:
            part.problems.append(f"{len(ours)} block(s) lost to an error in the worker, e.g. {ours[0][:300]}")
        if chaos.added_node_id and on_added == 0:
            part.problems.append("no run finished on the node added mid-sweep")
        _clean_scratch(plan)
    part.headline = (
        f"{f['runs planned']} planned, {f['runs done (one ok result each)']} done, {f['runs lost']} lost, "
        f"{f['runs duplicated']} duplicated, {f['failed attempts retried']} retried, "
        f"{f['orphan processes']} orphans"
    )
    return part


def _clean_scratch(plan) -> None:
    """The workers' tee files of our runs (`~/.cache/ablate/runs/<sweep>/<run_id>.*`): ours only."""
    from orchestrator.executor import DEFAULT_SCRATCH

    folder = DEFAULT_SCRATCH.expanduser() / plan.name
    for run in plan.runs:
        for p in folder.glob(f"{run.run_id}.*"):
            with contextlib.suppress(OSError):
                p.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


# ----------------------------------------------------------------------------------------- storage

# `ablate run` with pyarrow's parquet writer failing part-way (ENOSPC) on the FAIL_AT-th run result,
# as a disk that fills up while the result is written; everything else is the real command.
FULL_DISK_DRIVER = """
import errno, sys
from pathlib import Path
from analysis import store
real, count, fail_at = store.pq.write_table, [0], int(sys.argv[1])
def write_table(table, where, **kw):
    if Path(getattr(where, "name", str(where))).parent.name == "runs":
        count[0] += 1
        if count[0] == fail_at:
            where.write(b"PAR1" + bytes(100))  # some bytes landed, then the disk was full
            raise OSError(errno.ENOSPC, "No space left on device")
    return real(table, where, **kw)
store.pq.write_table = write_table
from orchestrator.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _storage_spec(folder: Path, runs: int, pid_dir: Path) -> Path:
    import yaml

    arms = {
        f"s{i}": {"command": ["python", str(FAKE_JOB), "--steps", "4", "--sleep", "0.2", "--child",
                              "--pid-dir", str(pid_dir), "--tag", f"s{i}"]}
        for i in range(runs)
    }  # fmt: skip
    spec = {"name": "reliability-storage", "resources": {"gpus_per_run": 0}, "target_val_loss": None,
            "arms": arms}  # fmt: skip
    path = folder / "storage.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def part_storage(quick: bool, seed: int) -> Part:
    import pandas as pd
    import pyarrow.parquet as pq

    from analysis import store
    from analysis.resultsdir import ResultsDir
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec
    from tests.orchestrator.helpers import read_pids, wait_gone

    part, f = Part("storage"), {}
    runs, fail_at = 5, 3
    with tempfile.TemporaryDirectory(prefix="ablate-storage-") as tmp:
        work = Path(tmp)
        pid_dir, results = work / "pids", work / "results"
        spec = _storage_spec(work, runs, pid_dir)
        plan = make_plan(load_spec(spec))
        args = ["run", str(spec), "--results", str(results), "--num-cpus", "2", "--plain", "--no-report",
                "--no-compile-cache"]  # fmt: skip
        say(f"storage: {runs} runs on a local Ray; the disk fills up while run {fail_at}'s result is written")
        cmd = [sys.executable, "-c", FULL_DISK_DRIVER, str(fail_at), *args]
        first = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
        errors = [line for line in first.stderr.splitlines() if line.startswith("ablate: error:")]
        stored = store.finished_run_ids(results)
        runs_dir = ResultsDir(results).runs_dir  # read as any parquet tool would, names and all
        visible = sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith((".", "_")))
        unreadable = []
        for name in visible:
            try:
                pq.read_table(runs_dir / name)
            except Exception:
                unreadable.append(name)
        try:
            pandas_rows = len(pd.read_parquet(runs_dir))
        except Exception as e:
            pandas_rows = f"failed: {type(e).__name__}"
        temp_left = sorted(p.name for p in runs_dir.iterdir() if p.name.startswith("."))
        orphans = wait_gone(read_pids(pid_dir), timeout=ORPHAN_WAIT_S)
        f["runs planned"] = runs
        f["first run: exit code"] = first.returncode
        f["first run: error"] = errors[0] if errors else "(none)"
        f["first run: tracebacks"] = _tracebacks(first.stdout + first.stderr)
        f["results stored before the disk was full"] = len(stored)
        f["partial files readers take for a result"] = len(unreadable) + (len(visible) - len(stored))
        f["rows pandas reads from runs/"] = pandas_rows
        f["temporary files left in runs/"] = len(temp_left)
        f["orphan processes"] = len(orphans)
        if first.returncode != 2 or len(errors) != 1:
            part.problems.append(
                f"the full disk gave exit {first.returncode} and {len(errors)} error line(s)"
            )
            say(first.stderr[-3000:])
        if f["first run: tracebacks"]:
            part.problems.append("a traceback instead of one error line")
        if len(stored) != fail_at - 1 or unreadable or pandas_rows != len(stored):
            part.problems.append(
                f"{len(stored)} result(s) stored, {len(unreadable)} unreadable, pandas {pandas_rows}"
            )
        if orphans:
            part.problems.append(f"{len(orphans)} job process(es) left after the failed sweep")
        second = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=ROOT, env=_env(),
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        resumed = re.search(r"(\d+) run\(s\) to run, (\d+) already done", second.stdout)
        rows = store.read_runs(results)
        ok = set(rows.loc[rows["status"] == "ok", "run_id"])
        f["rerun: exit code"] = second.returncode
        f["rerun: ran / already done"] = f"{resumed.group(1)} / {resumed.group(2)}" if resumed else "?"
        f["runs with one ok result at the end"] = len(ok & {r.run_id for r in plan.runs})
        f["runs lost"] = runs - f["runs with one ok result at the end"]
        if second.returncode != 0 or _tracebacks(second.stdout + second.stderr):
            part.problems.append(f"the rerun exited {second.returncode}")
            say(second.stdout[-2000:] + second.stderr[-2000:])
        if not resumed or int(resumed.group(2)) != len(stored) or len(rows) != runs or f["runs lost"]:
            part.problems.append("the rerun did not resume cleanly (see the figures)")
        if leftover := wait_gone(read_pids(pid_dir), timeout=ORPHAN_WAIT_S):
            part.problems.append(f"{len(leftover)} job process(es) left after the rerun")
            f["orphan processes"] += len(leftover)
        _clean_scratch(plan)
    part.figures = f
    part.headline = (
        f"disk full at run {fail_at}: exit {f['first run: exit code']}, one error line, "
        f"{f['partial files readers take for a result']} partial results, rerun resumed "
        f"{f['rerun: ran / already done']}, {f['runs lost']} lost"
    )
    return part


# -------------------------------------------------------------------------------------------- fuzz


def part_fuzz(quick: bool, seed: int) -> Part:
    import hypothesis
    from hypothesis import HealthCheck, given, settings

    from tests.analysis.test_logs import PROPERTIES as LOG_PROPERTIES
    from tests.orchestrator.test_spec_fuzz import PROPERTIES as SPEC_PROPERTIES

    examples = 500 if quick else 2000
    part = Part("fuzz")
    say(f"fuzz: {examples} examples per property (hypothesis, seed {seed})")
    total = 0
    for name, (strategies, prop) in {**SPEC_PROPERTIES, **LOG_PROPERTIES}.items():
        calls = [0]

        @functools.wraps(prop)  # hypothesis reads the property's signature through __wrapped__
        def counted(*args, _prop=prop, _calls=calls, **kwargs):
            _calls[0] += 1
            _prop(*args, **kwargs)

        test = settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )(given(*strategies)(counted))
        t0 = time.monotonic()
        try:
            hypothesis.seed(seed)(test)()
            verdict = "held"
        except Exception as e:  # the falsifying example, after shrinking
            verdict = f"FALSIFIED: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
            part.problems.append(f"{name}: {verdict}")
        total += calls[0]
        part.figures[name] = f"{calls[0]} cases, {verdict} ({time.monotonic() - t0:.1f} s)"
    part.figures["cases tried"] = total
    part.headline = f"{total} cases over {len(SPEC_PROPERTIES) + len(LOG_PROPERTIES)} properties: " + (
        "each a result or a one-line error" if part.ok else "a property failed"
    )
    return part


# -------------------------------------------------------------------------------------------- load


def part_load(quick: bool, seed: int) -> Part:
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import load

    n = 2000 if quick else 10_000
    part = Part("load")
    say(f"load: {n} runs (benchmarks/load.py)")
    with tempfile.TemporaryDirectory(prefix="ablate-load-") as tmp:
        root = Path(tmp) / "results"
        plan_s = load.time_plan(n, Path(tmp))
        write_s = load.write_results(n, root, np.random.default_rng(seed))
        status_first = load.time_cli("status", str(root))
        status_again = load.time_cli("status", str(root))
        report_s = load.time_cli("report", str(root))
        rebuild_s = load.time_rebuild(root)
    f = part.figures
    f[f"plan of {n} runs (s)"] = round(plan_s, 2)
    f[f"ablate status, {n} runs, first / again (s)"] = f"{status_first:.2f} / {status_again:.2f}"
    f[f"ablate report, {n} runs (s)"] = round(report_s, 2)
    f["ablate status, index deleted: rebuilt from the run files (s, not a goal)"] = round(rebuild_s, 2)
    f["writing the results folder (setup, s)"] = round(write_s, 1)
    for what, secs in (("plan", plan_s), ("status", status_first), ("report", report_s)):
        if secs >= load.GOAL_S:
            part.problems.append(f"{what} took {secs:.1f} s, goal {load.GOAL_S:.0f} s")
    part.headline = (
        f"{n} runs: plan {plan_s:.1f} s, status {status_first:.1f} s, report {report_s:.1f} s "
        f"(goal < {load.GOAL_S:.0f} s)"
    )
    return part


# ---------------------------------------------------------------------------------------- security

# Starts the embedded Ray as `ablate run` does, then lists the sockets its processes listen on.
LISTEN_PROBE = """
import json, psutil, time
from orchestrator.executor import start_local_ray
import ray
start_local_ray(num_cpus=1)
time.sleep(2)
me = psutil.Process()
seen = []
for p in [me, *me.children(recursive=True)]:
    try:
        conns = (p.net_connections if hasattr(p, "net_connections") else p.connections)(kind="inet")
        name = " ".join(p.cmdline()[:2])[-50:]
    except psutil.Error:
        continue
    seen += [[c.laddr.ip, c.laddr.port, name] for c in conns if c.status == psutil.CONN_LISTEN]
heads = [p.cmdline() for p in me.children(recursive=True) if any("dashboard.py" in a for a in p.cmdline())]
print(json.dumps({"listen": seen, "ui_off": all("--disable-frontend" in c for c in heads)}))
ray.shutdown()
"""
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
RAY_AUTH_NAMES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "AUTH_MODE")


def part_security(quick: bool, seed: int) -> Part:
    import ast

    part, f = Part("security"), {}
    say("security: tests/test_security.py, the embedded Ray's sockets, Ray's token authentication")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_security.py"]
    tests = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    summary = (tests.stdout.strip().splitlines() or ["(no output)"])[-1]
    f["tests/test_security.py"] = summary
    if tests.returncode != 0:
        part.problems.append(f"tests/test_security.py: {summary}")
        say(tests.stdout[-3000:])
    # no source of ours names Ray's auth settings, so nothing of ours can turn them off or override them
    named = []
    for pkg in ("orchestrator", "analysis", "trainer"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
                if any(n in text for n in RAY_AUTH_NAMES):
                    named.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    f["places in our code naming Ray's auth settings"] = len(named)
    if named:
        part.problems.append(f"Ray's auth settings named in {', '.join(named)}")
    probe = subprocess.run([sys.executable, "-c", LISTEN_PROBE], cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=180)  # fmt: skip
    try:
        info = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        info = None
        part.problems.append(f"the loopback probe failed (exit {probe.returncode})")
        say(probe.stderr[-2000:])
    if info is not None:
        listen = info["listen"]
        outside = [f"{ip}:{port} ({name})" for ip, port, name in listen if ip not in LOOPBACK]
        dash = [port for _, port, _ in listen if port == 8265]
        f["embedded Ray: listening sockets"] = len(listen)
        f["embedded Ray: listening beyond loopback"] = len(outside)
        f["embedded Ray: dashboard"] = (
            "off (port 8265 closed, web UI disabled)" if not dash and info["ui_off"] else "ON"
        )
        if outside or not listen:
            part.problems.append(f"listening beyond loopback: {', '.join(outside) or 'no sockets seen'}")
        if dash or not info["ui_off"]:
            part.problems.append("the dashboard runs although it was not asked for")
    part.figures = f
    part.headline = (
        f"{summary}; embedded Ray: {f.get('embedded Ray: listening beyond loopback', '?')} sockets beyond "
        f"loopback; auth settings named in our code: {len(named)}"
    )
    return part


# ------------------------------------------------------------------------------------------- main


def print_part(part: Part) -> None:
    say(f"{part.name}: {'held' if part.ok else 'FAILED'} ({part.wall_s:.1f} s)")
    width = max((len(k) for k in part.figures), default=0)
    for k, v in part.figures.items():
        say(f"  {k:<{width}}  {v}")
    for p in part.problems:
        say(f"  problem: {p}")


PART_FUNCS = {
    "chaos": part_chaos,
    "storage": part_storage,
    "fuzz": part_fuzz,
    "load": part_load,
    "security": part_security,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="smaller sizes (the ci tier): the same checks, ~70 s on 2 cores"
    )
    ap.add_argument(
        "--only", metavar="PARTS", default=",".join(PARTS), help=f"comma list of {','.join(PARTS)}"
    )
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the chaos fault plan and the fuzzers (default 0)"
    )
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if bad := [p for p in parts if p not in PARTS]:
        ap.error(f"--only: unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    done: list[Part] = []
    t0 = time.monotonic()
    for name in parts:
        t = time.monotonic()
        try:
            part = PART_FUNCS[name](args.quick, args.seed)
        except (Exception, SystemExit) as e:  # a part that crashes has failed; the others still run
            import traceback

            traceback.print_exc()
            part = Part(name, problems=[f"crashed: {type(e).__name__}: {e}"])
        part.wall_s = time.monotonic() - t
        print_part(part)
        done.append(part)
    say("")
    say(f"summary ({'quick' if args.quick else 'full'}, seed {args.seed}, {time.monotonic() - t0:.0f} s):")
    for part in done:
        say(f"  {part.name:<9} {'held  ' if part.ok else 'FAILED'} {part.wall_s:6.1f} s  {part.headline}")
    ok = all(p.ok for p in done)
    say(f"result: {'everything held' if ok else 'FAILED: ' + ', '.join(p.name for p in done if not p.ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
