"""Executing blocks: one interface, a Ray backend and an in-process backend (submitit-style).

A block runs on one node, its runs back to back in planned order (`run_block`, the worker side).
It is a generator of events (`orchestrator.events`: BlockStart, RunStart, Step, AttemptEnd, RunEnd,
CachePacked) so the driver sees progress and stores each run as soon as it ends, even if the node
dies later; the executor adds BlockEnd, BlockLost (node or worker died) and BlockCancelled, and
hands the driver typed events only (`events.from_wire`). `RayExecutor` runs each block as one Ray
generator task holding the block's GPUs and CPUs; `InProcessExecutor` runs them in this process on
fake nodes, one event per `wait()`, so scheduler logic can be stepped through and tested without Ray.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import nodecache
from orchestrator.events import (
    AttemptEnd,
    BlockCancelled,
    BlockEnd,
    BlockLost,
    BlockStart,
    CacheNext,
    CachePacked,
    Event,
    PreflightFailed,
    RunEnd,
    RunStart,
    from_wire,
)
from orchestrator.launch import NodeInfo, run_attempt
from orchestrator.preflight import PreflightError, gpu_preflight
from orchestrator.runspec import Block, RunSpec

DEFAULT_SCRATCH = Path("~/.cache/ablate/runs")


@dataclass(frozen=True)
class BlockContext:
    """What a worker needs besides the block: where to put scratch files and compile caches."""

    scratch_root: str | None = None
    """Node-local folder for tees and the trainer's --log-dir (default ~/.cache/ablate/runs)."""
    cache_root: str | None = None
    """Root of the per-node compile caches (default ~/.cache/ablate/compile)."""
    cache_key: str = "host"
    """'host': one cache per hostname (real clusters); 'node': one per Ray node id (fake nodes in tests)."""
    use_compile_cache: bool = True
    shared_cache_dir: str | None = None
    """A folder every node sees: cold nodes seed from it, the first warm node publishes to it."""
    seed: Any = None
    """A packed cache for cold nodes: bytes, or a Ray ObjectRef to them (resolved only when needed)."""
    want_seed: bool = False
    """Pack this node's cache after its first run if it started cold (the driver has no seed yet)."""
    preflight_wait_s: float = 60.0
    grace_s: float = 10.0
    attempt_offsets: dict[str, int] = field(default_factory=dict)
    """run_id -> attempts already made (earlier drivers, lost blocks), so attempt numbers keep counting."""


def _resolve_seed(seed: Any) -> bytes | None:
    if seed is None or isinstance(seed, bytes):
        return seed
    import ray

    return ray.get(seed)


def _cache_for(ctx: BlockContext, node: NodeInfo) -> Path | None:
    if not ctx.use_compile_cache:
        return None
    key = node.hostname if ctx.cache_key == "host" else node.node_id
    return nodecache.node_cache_dir(ctx.cache_root, key)


def _run_with_retries(run: RunSpec, ctx: BlockContext, node: NodeInfo, gpu_ids, cache_dir, first_state, gpu):
    """Attempts of one run (yields their events); a failed attempt is retried up to `run.retries` times."""
    scratch = Path(ctx.scratch_root or DEFAULT_SCRATCH).expanduser() / run.sweep
    env = nodecache.cache_env(cache_dir) if cache_dir is not None else {}
    offset = ctx.attempt_offsets.get(run.run_id, 0)
    for k in range(run.retries + 1):
        attempt = offset + k + 1
        if k == 0 or cache_dir is None:  # no cache (--no-compile-cache): nothing to look at
            state = first_state
        else:
            state = "warm" if nodecache.is_warm(cache_dir) else "cold"
        yield RunStart(run.run_id, attempt, node.node_id, compile_cache=state)
        result = yield from run_attempt(
            run,
            attempt=attempt,
            scratch_dir=scratch,
            node=node,
            gpu_ids=gpu_ids,
            extra_env=env,
            grace_s=ctx.grace_s,
        )
        if cache_dir is None:
            cache_state = "none"  # --no-compile-cache
        elif state == "cold" and not nodecache.is_warm(cache_dir):
            cache_state = "unused"  # it compiled nothing (e.g. an uncompiled CPU run)
        else:
            cache_state = state
        result.row.update(gpu, compile_cache=cache_state)
        final = result.status != "failed" or k == run.retries
        yield (RunEnd if final else AttemptEnd)(result.row, result.steps, result.log_text)
        if final:
            return
        first_state = None


def run_block(
    block: Block,
    ctx: BlockContext,
    node: NodeInfo,
    gpu_ids: list[str],
    get_seed: Callable[[], Any] | None = None,
) -> Iterator[Event | bytes]:
    """The worker side of a block: preflight, compile cache, then each run in order (yields events)."""
    try:
        report = gpu_preflight(gpu_ids, wait_s=ctx.preflight_wait_s)
    except PreflightError as e:
        yield PreflightFailed(str(e), node.node_id)
        return
    gpu = {}
    if report is not None:
        gpu = {
            "gpu_name": report.gpu_name,
            "driver_version": report.driver_version,
            "cuda_version": report.cuda_version,
        }
    preflight = None if report is None else [dict(g) for g in report.gpus]
    yield BlockStart(node.node_id, node.hostname, list(gpu_ids), preflight)
    cache_dir = _cache_for(ctx, node)
    seed_getter = get_seed or (lambda: _resolve_seed(ctx.seed))
    packed = not ctx.want_seed
    for i, run in enumerate(block.runs):
        if cache_dir is None:
            state = None
        elif i == 0:
            state = nodecache.prepare(
                cache_dir, seed=_seed_if_cold(cache_dir, seed_getter), shared_dir=ctx.shared_cache_dir
            )
        else:
            state = "warm" if nodecache.is_warm(cache_dir) else "cold"
        yield from _run_with_retries(run, ctx, node, gpu_ids, cache_dir, state, gpu)
        if not packed and state == "cold" and nodecache.is_warm(cache_dir):
            packed = True
            yield from _publish_cache(cache_dir, ctx)


def _seed_if_cold(cache_dir: Path, get_seed: Callable[[], Any]) -> bytes | None:
    """Fetch the seed only when this node's cache is cold (a seed may be hundreds of MB)."""
    return None if nodecache.is_warm(cache_dir) else get_seed()


def _publish_cache(cache_dir: Path, ctx: BlockContext) -> Iterator[Any]:
    """Hand this node's fresh cache to the others: to the shared folder, or as the next yielded item."""
    with nodecache.locked(cache_dir):
        data = nodecache.pack(cache_dir)
    if data is None:
        return
    if ctx.shared_cache_dir is not None:
        nodecache.publish_to_shared(data, ctx.shared_cache_dir)
        return
    yield CacheNext()
    yield data


@dataclass
class Job:
    """A submitted block. `node_id` is known once the block has started."""

    job_id: int
    block: Block
    node_id: str | None = None
    reported: set[str] = field(default_factory=set)
    """run_ids whose final outcome the driver has received."""


class Executor(ABC):
    """Runs blocks somewhere; the driver submits, waits for events, cancels."""

    @abstractmethod
    def submit(self, block: Block, ctx: BlockContext) -> Job: ...

    @abstractmethod
    def wait(self, timeout: float) -> list[tuple[Job, Event]]:
        """Events from running blocks (possibly none after `timeout` seconds); BlockEnd, BlockLost and
        BlockCancelled end a job."""

    @abstractmethod
    def cancel(self, job: Job) -> None: ...

    @abstractmethod
    def slots(self, block: Block) -> int:
        """How many blocks like this one the cluster can run at once (0: it fits on no node)."""

    @abstractmethod
    def nodes(self) -> dict[str, dict[str, float]]:
        """Alive nodes: node id -> total resources ({'GPU': 8, 'CPU': 64, ...})."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release what the executor started (Ray: cancel blocks, stop a Ray we started)."""


def fits(resources: dict[str, float], block: Block) -> int:
    """How many copies of `block` a node with `resources` holds at once (an exclusive block: 0 or 1)."""
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    by_cpu = int(cpus // block.cpus) if block.cpus > 0 else 10**6
    by_gpu = int(gpus // block.gpus) if block.gpus > 0 else 10**6
    return min(1 if block.exclusive_node else 10**6, by_gpu, by_cpu)


def held(resources: dict[str, float], block: Block) -> tuple[int, float]:
    """(GPUs, CPUs) a block holds on a node with `resources`: its own, or for an exclusive block the
    node's whole share of what it runs on (every GPU of a GPU block; every CPU of a CPU block, since on
    CPU too its timing is the point), so no other block runs beside it."""
    if not block.exclusive_node:
        return block.gpus, block.cpus
    if block.gpus > 0:
        return int(resources.get("GPU", block.gpus)), block.cpus
    return block.gpus, max(block.cpus, float(resources.get("CPU", block.cpus)))


# ---------------------------------------------------------------------------------------------- Ray

LOOPBACK = "127.0.0.1"
"""The address every server of the embedded Ray binds, and the node address of a driver that joins a
cluster on this machine's loopback."""
LOOPBACK_HOSTS = (LOOPBACK, "localhost", "::1")
"""The hosts of an `--address host:port` that mean this machine's loopback."""


def split_address(address: str) -> tuple[str, int] | None:
    """`host:port` as (host, port), an IPv6 host's brackets dropped (`[::1]:6379`); None when it is not
    host:port with a port of 1-65535 (`auto`, `ray://...` without a port, a bare host)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def is_loopback_address(address: str | None) -> bool:
    """True for an `--address host:port` whose host is this machine's loopback."""
    hostport = split_address(address) if address else None
    return hostport is not None and hostport[0] in LOOPBACK_HOSTS


def start_local_ray(
    *, num_cpus: int | None = None, num_gpus: int | None = None, dashboard: bool = False
) -> None:
    """Start the embedded Ray instance, every server bound to loopback (`LOOPBACK`, 127.0.0.1).

    Ray resolves "127.0.0.1" to the machine's routable address unless its cluster mode is off; the
    constant it reads for that is set from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import, so we set
    both the variable and, as Ray may be imported already, the constant.
    """
    _loopback_mode()
    import ray

    with _without_token_notice():
        ray.init(
            address="local",  # a new instance, even if another Ray runs on this machine
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=dashboard,
            dashboard_host=LOOPBACK,
            _node_ip_address=LOOPBACK,
            log_to_driver=False,
            configure_logging=False,
        )


TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"
"""Ray's warning (Ray 2.60) each time ray.init starts a cluster, whose default is token auth on."""


@contextlib.contextmanager
def _without_token_notice() -> Iterator[None]:
    """Keep Ray's token notice off the console while the embedded Ray starts: it came with every
    `ablate run`, about a Ray that listens on loopback only, and needs nothing done. It filters
    the message only; Ray's authentication itself is untouched (tests/test_security.py)."""
    import logging

    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def drop(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _loopback_mode() -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def _ray_block_task(block: Block, ctx: BlockContext):
    """Body of the Ray generator task: find our node and GPUs, then run the block."""
    import ray

    rc = ray.get_runtime_context()
    node = NodeInfo(node_id=rc.get_node_id(), hostname=socket.gethostname())
    gpu_ids = [str(g) for g in rc.get_accelerator_ids().get("GPU", [])][: block.gpus]
    yield from run_block(block, ctx, node, gpu_ids)


class RayExecutor(Executor):
    """Blocks as Ray generator tasks: Ray places each on a node with the block's GPUs and CPUs free."""

    def __init__(self, *, owns_ray: bool = False):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayExecutor needs ray.init() first (or use RayExecutor.start)")
        self._ray = ray
        self._owns_ray = owns_ray
        self._task = ray.remote(_ray_block_task)
        self._gens: dict[int, Any] = {}
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count()

    @classmethod
    def start(cls, address: str | None = None, *, dashboard: bool = False, num_cpus=None, num_gpus=None):
        """Join the cluster at `address`, or start (and later shut down) a local one on loopback."""
        import ray

        if is_loopback_address(address):
            _loopback_mode()  # a cluster on this machine's loopback: this driver must be on it too
            ray.init(address=address, _node_ip_address=LOOPBACK, log_to_driver=False, configure_logging=False)
        elif address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            start_local_ray(num_cpus=num_cpus, num_gpus=num_gpus, dashboard=dashboard)
        return cls(owns_ray=True)

    def submit(self, block: Block, ctx: BlockContext) -> Job:
        job = Job(next(self._ids), block)
        gpus, cpus = self._to_hold(block)
        opts = {
            "num_gpus": gpus,
            "num_cpus": cpus,
            "max_retries": 0,
            "name": f"block-{block.block_id}",
        }
        self._gens[job.job_id] = self._task.options(**opts).remote(block, ctx)
        self._jobs[job.job_id] = job
        return job

    def _to_hold(self, block: Block) -> tuple[int, float]:
        """(GPUs, CPUs) for the block's task: an exclusive block holds the whole share (`held`) of the
        smallest node it fits on, so no neighbour skews its timing; its runs still see only `block.gpus`
        GPUs (the rest are held idle). On a cluster of unequal nodes, a block that Ray places on a bigger
        node holds that node's smallest-node share only."""
        if not block.exclusive_node:
            return block.gpus, block.cpus
        fitting = [res for res in self.nodes().values() if fits(res, block)]
        if not fitting:
            return block.gpus, block.cpus
        key = "GPU" if block.gpus > 0 else "CPU"
        return held(min(fitting, key=lambda res: res.get(key, 0.0)), block)

    def wait(self, timeout: float) -> list[tuple[Job, Event]]:
        if not self._gens:
            return []
        gens = list(self._gens.values())
        ready, _ = self._ray.wait(gens, num_returns=1, timeout=timeout)
        by_gen = {id(g): jid for jid, g in self._gens.items()}
        return [ev for g in ready for ev in self._drain(by_gen[id(g)])]

    def _drain(self, job_id: int) -> list[tuple[Job, Event]]:
        """The events one ready generator has for us now (at least one)."""
        job, gen = self._jobs[job_id], self._gens[job_id]
        out = []
        while True:
            try:
                ref = next(gen)
                event = self._ray.get(ref)
            except StopIteration:
                return out + self._end(job, BlockEnd())
            except self._ray.exceptions.TaskCancelledError:
                return out + self._end(job, BlockCancelled())
            except Exception as e:  # node death, worker crash, a bug in the block: the block is lost
                return out + self._end(job, BlockLost(_first_line(e)))
            event = from_wire(event)
            if isinstance(event, CacheNext):
                event = CachePacked(next(gen))  # an ObjectRef: left in the object store
            out.append((job, event))
            ready, _ = self._ray.wait([gen], timeout=0)
            if not ready:
                return out

    def _end(self, job: Job, event: Event) -> list[tuple[Job, Event]]:
        del self._gens[job.job_id], self._jobs[job.job_id]
        return [(job, event)]

    def cancel(self, job: Job) -> None:
        gen = self._gens.get(job.job_id)
        if gen is not None:
            with contextlib.suppress(Exception):
                self._ray.cancel(gen)

    def nodes(self) -> dict[str, dict[str, float]]:
        return {n["NodeID"]: dict(n["Resources"]) for n in self._ray.nodes() if n["Alive"]}

    def slots(self, block: Block) -> int:
        return sum(fits(res, block) for res in self.nodes().values())

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            self.cancel(job)
        if self._owns_ray:
            self._ray.shutdown()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


# ------------------------------------------------------------------------------------- in-process


@dataclass
class _FakeNode:
    node_id: str
    resources: dict[str, float]
    free_gpus: list[str]
    free_cpus: float
    alive: bool = True


@dataclass
class _Running:
    job: Job
    node: _FakeNode
    gpu_ids: list[str]
    gen: Iterator[Any]
    cpus: float = 1.0
    """The CPUs the block holds on its node (all of them for an exclusive CPU block)."""


class InProcessExecutor(Executor):
    """Blocks run in this process on fake nodes, one event per `wait()`: step through a sweep.

    `nodes` maps a node id to its resources ({'GPU': 8, 'CPU': 2}); `runner` is the worker side
    (default `run_block`; tests pass fakes that yield canned events). Placement is first-fit in
    submission order, like a Ray cluster with one pending queue.
    """

    def __init__(
        self, nodes: dict[str, dict[str, float]] | None = None, runner: Callable[..., Iterator] = run_block
    ):
        nodes = nodes or {"local": {"CPU": float(os.cpu_count() or 1), "GPU": 0.0}}
        self._nodes = {
            nid: _FakeNode(
                nid, dict(res), [str(i) for i in range(int(res.get("GPU", 0)))], res.get("CPU", 1.0)
            )
            for nid, res in nodes.items()
        }
        self._runner = runner
        self._pending: list[tuple[Job, BlockContext]] = []
        self._running: list[_Running] = []
        self._ended: list[tuple[Job, Event]] = []
        self._ids = itertools.count()
        self._turn = 0

    def submit(self, block: Block, ctx: BlockContext) -> Job:
        job = Job(next(self._ids), block)
        self._pending.append((job, ctx))
        self._place()
        return job

    def _place(self) -> None:
        for job, ctx in list(self._pending):
            node = next((n for n in self._nodes.values() if n.alive and self._free(n, job.block)), None)
            if node is None:
                continue
            n_gpus, cpus = held(node.resources, job.block)
            gpus, node.free_gpus = node.free_gpus[:n_gpus], node.free_gpus[n_gpus:]
            node.free_cpus -= cpus
            info = NodeInfo(node_id=node.node_id, hostname=node.node_id)
            gen = self._runner(job.block, ctx, info, gpus[: job.block.gpus], get_seed=lambda c=ctx: c.seed)
            self._running.append(_Running(job, node, gpus, gen, cpus))
            self._pending.remove((job, ctx))

    @staticmethod
    def _free(node: _FakeNode, block: Block) -> bool:
        gpus, cpus = held(node.resources, block)
        return len(node.free_gpus) >= gpus and node.free_cpus >= cpus

    def wait(self, timeout: float) -> list[tuple[Job, Event]]:
        if self._ended:
            return [self._ended.pop(0)]
        if not self._running:
            return []
        self._turn = (self._turn + 1) % len(self._running)
        r = self._running[self._turn]
        try:
            raw = next(r.gen)
        except StopIteration:
            return self._finish(r, BlockEnd())
        except Exception as e:
            return self._finish(r, BlockLost(_first_line(e)))
        event = from_wire(raw)  # a worker's dict (a test's canned worker) becomes its typed event
        if isinstance(event, CacheNext):
            event = CachePacked(next(r.gen))
        return [(r.job, event)]

    def _finish(self, r: _Running, event: Event) -> list[tuple[Job, Event]]:
        self._running.remove(r)
        r.node.free_gpus = sorted(r.node.free_gpus + r.gpu_ids, key=int)
        r.node.free_cpus += r.cpus
        self._place()
        return [(r.job, event)]

    def cancel(self, job: Job) -> None:
        for r in list(self._running):
            if r.job is job:
                r.gen.close()
                self._ended.extend(self._finish(r, BlockCancelled()))
        for pj, ctx in list(self._pending):
            if pj is job:
                self._pending.remove((pj, ctx))
                self._ended.append((job, BlockCancelled()))

    def kill_node(self, node_id: str) -> None:
        """Simulate a node's death: its blocks are lost (their processes killed), nothing new lands on it."""
        node = self._nodes[node_id]
        node.alive = False
        for r in [r for r in self._running if r.node is node]:
            r.gen.close()
            self._ended.extend(self._finish(r, BlockLost(f"node {node_id} died")))

    def nodes(self) -> dict[str, dict[str, float]]:
        return {n.node_id: dict(n.resources) for n in self._nodes.values() if n.alive}

    def slots(self, block: Block) -> int:
        return sum(fits(res, block) for res in self.nodes().values())

    def shutdown(self) -> None:
        for r in list(self._running):
            self.cancel(r.job)


def with_seed(ctx: BlockContext, seed: Any) -> BlockContext:
    """The context for later blocks once a node has produced a compile cache."""
    return replace(ctx, seed=seed, want_seed=False)
