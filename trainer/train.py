"""The training loop: upstream modded-nanogpt's loop, configurable, on CPU (gloo) or GPU (NCCL).

``train(cfg, opts)`` runs one training run and returns the process exit code (0 ok, 3 diverged).
Timing follows upstream exactly: the clock runs only over training steps; compile warm-up happens
before it starts and validation pauses it (with a device synchronize on each side).
"""

from __future__ import annotations

import copy
import math
import os
import platform
import resource
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from trainer import data as data_mod
from trainer.config import TrainConfig, config_to_dict
from trainer.logfmt import RunLog, diverged_line, memory_line, step_line, val_line
from trainer.model import build_model
from trainer.optim import DistAdam, Muon
from trainer.schedule import grad_accum_for, window_sizes, window_tokens_at
from trainer.shards import file_sha256

EXIT_OK = 0
EXIT_DIVERGED = 3


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to a config: where data and logs live, which device."""

    data_dir: Path
    run_id: str | None = None
    log_dir: Path | None = None
    device: str = "auto"  # auto | cpu | cuda
    profile: Path | None = None  # write a per-kernel table of a few timed steps here (rank 0)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


# ----------------------------------------------------------------------------- schedules (pure)


def lr_scale(step: int, cfg: TrainConfig) -> float:
    """LR multiplier at training step ``step`` (0-based): 1, then linear towards lr_final_frac over
    the last cooldown_frac of the steps (upstream: 0.45 and 0.1)."""
    x = step / cfg.steps
    if x < 1 - cfg.cooldown_frac:
        return 1.0
    w = (1 - x) / cfg.cooldown_frac
    return w + (1 - w) * cfg.lr_final_frac


def muon_momentum(step: int, cfg: TrainConfig) -> float:
    """Muon momentum: linear from muon_momentum_start to muon_momentum over the warm-up steps."""
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0) if cfg.muon_momentum_warmup_steps > 0 else 1.0
    return (1 - frac) * cfg.muon_momentum_start + frac * cfg.muon_momentum


def is_val_step(step: int, cfg: TrainConfig) -> bool:
    """Validate at step 0, every val_every steps and the last step (val_every 0: the two ends only)."""
    return step in (0, cfg.steps) or (cfg.val_every > 0 and step % cfg.val_every == 0)


class UsageError(ValueError):
    """A mistake in how the trainer was invoked (missing data, bad device): exit 2, one line."""


# ----------------------------------------------------------------------------- setup


def init_distributed(device_request: str) -> DistEnv:
    """Join the torchrun process group if there is one (NCCL on GPU, gloo on CPU)."""
    if device_request not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device {device_request!r} is not valid; valid: auto, cpu, cuda")
    if device_request == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; valid here: auto, cpu")
    use_cuda = device_request == "cuda" or (device_request == "auto" and torch.cuda.is_available())
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not use_cuda and "OMP_NUM_THREADS" not in os.environ:
        # Small CPU models gain little from intra-op threads, and on a shared machine (several runs
        # or ranks per host) OpenMP threads spin against each other: measured 35x slower on 2 busy
        # cores. One thread per process unless the user says otherwise.
        torch.set_num_threads(1)
    if world_size > 1:
        backend = "nccl" if use_cuda else "gloo"
        kwargs = {"device_id": device} if use_cuda else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistEnv(rank=rank, world_size=world_size, device=device)


def warmup_step_count(cfg: TrainConfig, compiled: bool) -> int:
    """Untimed warm-up steps: cfg.warmup_steps, and when compiling at least one per distinct window
    (the window is a Python int in the graph, so each value is its own compiled graph)."""
    return max(cfg.warmup_steps, len(window_sizes(cfg))) if compiled else cfg.warmup_steps


def build_optimizers(model: nn.Module, cfg: TrainConfig, compiled: bool) -> list[torch.optim.Optimizer]:
    """Adam for embeddings, head and scalars (one group each, own lr); Muon for hidden matrices."""
    groups = model.param_groups()
    adam_groups = [
        dict(params=list(groups[key]), lr=lr)
        for key, lr in (("embed", cfg.lr_embed), ("head", cfg.lr_head), ("scalar", cfg.lr_scalar))
        if len(groups.get(key, ())) > 0
    ]
    adam = DistAdam(adam_groups, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps, weight_decay=cfg.adam_wd)
    muon = Muon(
        groups["hidden"],
        lr=cfg.lr_muon,
        momentum=cfg.muon_momentum,
        weight_decay=cfg.muon_wd,
        compile=compiled,
    )
    optimizers: list[torch.optim.Optimizer] = [adam, muon]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers


def find_shards(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """The ``*train*.bin`` and ``*val*.bin`` shards of ``data_dir``, sorted; both must exist."""
    train = sorted(data_dir.glob("*train*.bin"))
    val = sorted(data_dir.glob("*val*.bin"))
    if not data_dir.is_dir() or not train or not val:
        raise UsageError(
            f"--data-dir {data_dir}: needs *train*.bin and *val*.bin shards "
            f"(found {len(train)} train, {len(val)} val); make some with `python -m trainer.data synth`"
        )
    return train, val


def check_vocab(cfg: TrainConfig, files: list[Path]) -> None:
    """A UsageError naming the knobs when the shards hold token ids the embedding lacks (else a
    raw IndexError from deep inside torch at the first step)."""
    top = max((int(t.max()) for t in map(data_mod.read_shard, files) if len(t)), default=-1)
    if top >= cfg.vocab_size:
        raise UsageError(
            f"--data-dir {files[0].parent}: the shards hold token ids up to {top}, beyond vocab_size "
            f"{cfg.vocab_size}; set --set vocab_size={top + 1} or more and --set bos_id=<their BOS> (GPT-2 "
            f"shards: vocab_size=50257 bos_id=50256), or make shards with --vocab-size {cfg.vocab_size}"
        )


def version_lines(env: DistEnv) -> list[str]:
    gpu = (
        torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else platform.processor() or "cpu"
    )
    return [
        f"Running Python {sys.version}",
        f"Running PyTorch {torch.__version__} compiled for CUDA {torch.version.cuda}",
        f"Device: {env.device.type} ({gpu}) world_size: {env.world_size}",
    ]


def peak_memory_mib(device: torch.device) -> tuple[int, int]:
    """(allocated, reserved) peak MiB: CUDA caching-allocator peaks on GPU; on CPU both are the
    process's peak resident set size (ru_maxrss), the closest honest analogue."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) >> 20, torch.cuda.max_memory_reserved(device) >> 20
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10  # KiB on Linux
    return rss_mib, rss_mib


def _allow_recompiles(n_windows: int) -> None:
    """Each window size is one graph (train) plus one (eval); dynamo's default limit of 8 would
    silently fall back to eager for PR 117's 14 windows."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), 2 * n_windows + 8))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- train losses


class LossTracker:
    """Train losses of every step, read back without a host sync per step on CUDA.

    Each step's loss stays on the device; a non-blocking copy into pinned memory and a CUDA event
    are queued, and the value is read ``lag`` steps later, when the GPU has long finished it (so the
    host may run at most ``lag`` steps ahead, which keeps the GPU fed). On CPU values are read at once.
    """

    def __init__(self, device: torch.device, lag: int = 2) -> None:
        self.device = device
        self.lag = lag if device.type == "cuda" else 0
        self._queue: deque[tuple[int, float, Tensor, torch.cuda.Event | None]] = deque()

    def push(self, step: int, time_ms: float, loss: Tensor) -> None:
        if self.device.type == "cuda":
            host = torch.empty((), dtype=loss.dtype, pin_memory=True)
            host.copy_(loss, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._queue.append((step, time_ms, host, event))
        else:
            self._queue.append((step, time_ms, loss, None))

    def pop_ready(self, flush: bool = False) -> Iterator[tuple[int, float, float]]:
        """Yield (step, train_time_ms, loss) for every step older than the lag (all if ``flush``)."""
        while self._queue and (flush or len(self._queue) > self.lag):
            step, time_ms, value, event = self._queue.popleft()
            if event is not None:
                event.synchronize()
            yield step, time_ms, float(value)


# ----------------------------------------------------------------------------- loop pieces


@dataclass
class Run:
    """Everything one training run holds; built by ``_setup``."""

    cfg: TrainConfig
    env: DistEnv
    model: nn.Module  # the module that is called (compiled or not)
    raw_model: nn.Module
    optimizers: list[torch.optim.Optimizer]
    accum: int
    train_pattern: str
    val_pattern: str
    log: RunLog
    compiled: bool
    # where the wall time outside train_time went (end event): compile warm-up, validation
    untimed_ms: dict[str, float] = field(default_factory=lambda: {"warmup_ms": 0.0, "val_ms": 0.0})
    window_args: dict[int, object] = field(default_factory=dict)
    profile: Path | None = None


def _train_batches(run: Run) -> data_mod.DistributedBatches:
    """A fresh loader from the start of the training stream (close it: it owns a prefetch thread)."""
    cfg, env = run.cfg, run.env
    return data_mod.DistributedBatches(
        run.train_pattern,
        cfg.seq_len,
        env.rank,
        env.world_size,
        bos_id=cfg.bos_id,
        align_to_bos=True,
        max_doc_len=cfg.max_doc_len,
    )


def _window_arg(run: Run, window: int):
    """What the model takes for a window: an int, or a cached device tensor (flex: no recompiles)."""
    if window not in run.window_args:
        make = getattr(run.raw_model, "window_arg", None)
        run.window_args[window] = make(window) if make is not None else window
    return run.window_args[window]


def _forward_backward(run: Run, batches: Iterator, window: int, micro_steps: int) -> Tensor:
    """Accumulate the gradient over ``micro_steps`` micro-batches; returns the mean token loss (device).

    In training mode the model returns the *sum* of token losses (upstream's gradient scale); dividing
    by micro_steps here and averaging over ranks in the optimizers gives every world size the gradient
    of upstream's 8-GPU run. The loss stays on the device: reading it would sync the host every step.
    """
    total = torch.zeros((), device=run.env.device)
    arg = _window_arg(run, window)
    for _ in range(micro_steps):
        inputs, targets = next(batches)
        inputs = inputs.to(run.env.device, non_blocking=True)
        targets = targets.to(run.env.device, non_blocking=True)
        loss = run.model(inputs, targets, arg)
        (loss / micro_steps).backward()
        total += loss.detach().float() / targets.numel()
    return total / micro_steps


def _optimizer_step(run: Run, step: int) -> None:
    scale = lr_scale(step, run.cfg)
    for opt in run.optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * scale
    for group in run.optimizers[1].param_groups:
        group["momentum"] = muon_momentum(step, run.cfg)
    for opt in run.optimizers:
        opt.step()
    run.model.zero_grad(set_to_none=True)


def _warm_up(run: Run, steps: int) -> None:
    """Run ``steps`` training steps cycling through every window, then restore the initial state
    exactly (as upstream), so compile time is spent before the clock starts and changes nothing."""
    windows = window_sizes(run.cfg)
    initial_model = copy.deepcopy(run.raw_model.state_dict())
    initial_opts = [copy.deepcopy(opt.state_dict()) for opt in run.optimizers]
    batches = _train_batches(run)
    for i in range(steps):
        _forward_backward(run, batches, windows[i % len(windows)], 1)
        for opt in run.optimizers:
            opt.step()
        run.model.zero_grad(set_to_none=True)
    batches.close()
    run.raw_model.load_state_dict(initial_model)
    for opt, state in zip(run.optimizers, initial_opts, strict=True):
        opt.load_state_dict(state)
    _sync(run.env.device)


@torch.no_grad()
def _validate(run: Run, step: int) -> float:
    """Mean loss over the fixed val_tokens budget (same tokens every time), averaged over ranks."""
    cfg, env = run.cfg, run.env
    run.model.eval()
    batches = data_mod.val_batches(
        run.val_pattern, cfg.val_tokens, cfg.val_seq_len, env.rank, env.world_size, bos_id=cfg.bos_id
    )
    total = torch.zeros((), device=env.device)
    count = 0
    window = _window_arg(run, window_tokens_at(cfg, step))
    for inputs, targets in batches:
        total += run.model(inputs.to(env.device), targets.to(env.device), window).float()
        count += 1
    run.model.train()
    total /= max(count, 1)
    if env.world_size > 1:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        total /= env.world_size
    return float(total)


def _global_mean(loss: Tensor, env: DistEnv) -> Tensor:
    """Mean over ranks; every rank gets the same value, so all of them see a divergence together.
    On NCCL the all-reduce is only enqueued on the stream: no host sync."""
    if env.world_size > 1:
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        loss = loss / env.world_size
    return loss


def _drain(run: Run, tracker: LossTracker, flush: bool = False) -> int | None:
    """Write the step events whose loss is known; return the first step with a non-finite loss."""
    for step, time_ms, loss in tracker.pop_ready(flush):
        run.log.event("step", step=step, train_loss=loss, train_time_ms=time_ms)
        if not math.isfinite(loss):
            return step
    return None


def compile_stats() -> dict[str, float | int]:
    """Where a start-up's compile time went (this process): torch.compile's own timers, seconds."""
    from torch._dynamo.utils import compile_times, counters

    names, values = compile_times(repr="csv")
    pairs = zip(names, values, strict=True)
    timers = {n: [float(x) for x in str(v).split(",") if x.strip()] for n, v in pairs}
    pick = {
        "compile_s": "_compile.compile_inner",  # everything torch.compile did (tracing + backend)
        "backend_s": "OutputGraph.call_user_compiler",  # AOT autograd + inductor, cache hits included
        "inductor_s": "compile_fx_inner",  # inductor proper (codegen, Triton compile, autotune)
    }
    out: dict[str, float | int] = {k: round(sum(timers[v]), 2) for k, v in pick.items() if v in timers}
    out["frames"] = len(timers.get("_compile.compile_inner", []))  # compiled frames, recompiles included
    out["graphs"] = int(counters["stats"].get("unique_graphs", 0))
    return out


def _finish(run: Run, status: str, train_ms: float, steps: int) -> None:
    allocated, reserved = peak_memory_mib(run.env.device)
    run.log.line(memory_line(allocated, reserved))
    extra: dict[str, object] = {}
    if run.compiled:
        stats = compile_stats()
        extra["compile"] = stats
        run.log.line(
            "compile: "
            + " ".join(f"{k}:{v}" for k, v in stats.items())
            + f" warmup_ms:{run.untimed_ms['warmup_ms']:.0f} val_ms:{run.untimed_ms['val_ms']:.0f}"
        )
    run.log.event(
        "end",
        status=status,
        peak_mem_mib=allocated,
        reserved_mem_mib=reserved,
        train_time_ms=train_ms,
        steps=steps,
        **run.untimed_ms,
        **extra,
    )


def _setup(cfg: TrainConfig, opts: RunOptions, env: DistEnv) -> Run:
    train_files, val_files = find_shards(opts.data_dir)
    check_vocab(cfg, train_files + val_files)
    accum = grad_accum_for(cfg, env.world_size)  # ConfigError names the knob
    torch.manual_seed(cfg.seed)  # the model seeds its own generator too; this covers anything else
    raw = build_model(cfg, env.device)
    raw.lm_head.accumulate(accum)  # the FP8 gradient cast sees upstream's values at any world size
    if env.world_size > 1:
        for p in raw.parameters():
            dist.broadcast(p.detach(), 0)
    compiled = raw.backends.compile  # the model resolved cfg.compile (auto = on CUDA) at build
    if compiled:
        _allow_recompiles(len(window_sizes(cfg)))
    model = torch.compile(raw, dynamic=False) if compiled else raw
    log = RunLog(opts.log_dir, opts.run_id, enabled=env.master)
    config = config_to_dict(cfg)
    log.header(config, version_lines(env))
    b = raw.backends
    backends = {"attention": b.attn, "fp8_head": b.fp8, "compile": b.compile}
    log.line(
        f"backends: attention {b.attn}, fp8 head {'on' if b.fp8 else 'off'}, "
        f"torch.compile {'on' if b.compile else 'off'}"
    )
    log.event(
        "start",
        run_id=opts.run_id,
        config=config,
        seed=cfg.seed,
        world_size=env.world_size,
        device=str(env.device),
        gpu_name=torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else None,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        backends=backends,
        data={
            "train": [f.name for f in train_files],
            "val": [f.name for f in val_files],
            "sha256_first_train": file_sha256(train_files[0]),
        },
    )
    return Run(
        cfg=cfg,
        env=env,
        model=model,
        raw_model=raw,
        optimizers=build_optimizers(raw, cfg, compiled),
        accum=accum,
        train_pattern=str(opts.data_dir / "*train*.bin"),
        val_pattern=str(opts.data_dir / "*val*.bin"),
        log=log,
        compiled=compiled,
        profile=opts.profile if env.master else None,
    )


def _loop(run: Run) -> int:
    batches = _train_batches(run)
    try:
        return _steps(run, batches)
    finally:
        batches.close()


def _steps(run: Run, batches: data_mod.DistributedBatches) -> int:
    """Upstream's loop: validate at step 0, every val_every and the last step; train in between."""
    cfg, env, log = run.cfg, run.env, run.log
    tracker = LossTracker(env.device)
    train_ms = 0.0
    _sync(env.device)
    t0 = time.perf_counter()
    prof = StepProfiler(run.profile, cfg.steps, env.device) if run.profile else None
    for step in range(cfg.steps + 1):
        if prof is not None:
            prof.at(step)
        if is_val_step(step, cfg):
            _sync(env.device)  # stop the clock
            val_start = time.perf_counter()
            train_ms += 1000 * (val_start - t0)
            bad = _drain(run, tracker, flush=True)
            if bad is not None:
                return _diverged(run, bad, train_ms)
            val_loss = _validate(run, step)
            log.line(val_line(step, cfg.steps, val_loss, train_ms))
            log.event("val", step=step, val_loss=val_loss, train_time_ms=train_ms)
            _sync(env.device)  # start the clock again
            t0 = time.perf_counter()
            run.untimed_ms["val_ms"] += 1000 * (t0 - val_start)
        if step == cfg.steps:
            break
        loss = _global_mean(_forward_backward(run, batches, window_tokens_at(cfg, step), run.accum), env)
        _optimizer_step(run, step)
        approx_ms = train_ms + 1000 * (time.perf_counter() - t0)  # no sync, as upstream
        tracker.push(step + 1, approx_ms, loss)
        log.line(step_line(step + 1, cfg.steps, approx_ms))
        bad = _drain(run, tracker)
        if bad is not None:
            return _diverged(run, bad, train_ms + 1000 * (time.perf_counter() - t0))
    _finish(run, "ok", train_ms, cfg.steps)
    return EXIT_OK


PROFILE_STEPS = 5


class StepProfiler:
    """``--profile FILE``: torch.profiler over PROFILE_STEPS training steps a little past the start
    (or as many as a short run has), then a per-kernel table of device and host time into FILE.
    The profiled steps run a little slower; use a separate run for timing."""

    def __init__(self, path: Path, steps: int, device: torch.device) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.path, self.device = path, device
        self.start = min(10, max(steps - PROFILE_STEPS, 0) // 2 + 1)
        self.stop = min(self.start + PROFILE_STEPS, steps)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        self._make = lambda: profile(activities=acts)
        self.prof = None

    def at(self, step: int) -> None:
        if step == self.start and self.prof is None and self.stop > self.start:
            self.prof = self._make()
            self.prof.__enter__()
        elif step == self.stop and self.prof is not None:
            _sync(self.device)
            self.prof.__exit__(None, None, None)
            self.write()

    def write(self) -> None:
        n = self.stop - self.start
        sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        events = self.prof.key_averages()
        lines = [
            f"# torch.profiler over training steps {self.start + 1}-{self.stop} ({n} steps), "
            f"sorted by {sort}; divide totals by {n} for per-step figures",
            events.table(sort_by=sort, row_limit=60, max_name_column_width=90),
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(lines) + "\n")
        self.prof = None


def _diverged(run: Run, step: int, train_ms: float) -> int:
    _finish(run, "diverged", train_ms, step)
    run.log.line(diverged_line(step))
    return EXIT_DIVERGED


def train(cfg: TrainConfig, opts: RunOptions) -> int:
    """Run one training run; returns the exit code (EXIT_OK or EXIT_DIVERGED).

    Raises UsageError for invocation mistakes (the CLI turns them into exit 2).
    """
    env = init_distributed(opts.device)
    try:
        run = _setup(cfg, opts, env)
        try:
            warmup = warmup_step_count(cfg, run.compiled)
            if warmup > 0:
                started = time.perf_counter()
                _warm_up(run, warmup)
                run.untimed_ms["warmup_ms"] += 1000 * (time.perf_counter() - started)
            return _loop(run)
        finally:
            run.log.close()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
