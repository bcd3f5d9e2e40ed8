"""Optimizers of the speedrun: Muon for hidden matrices, Adam for everything else.

Both shard their work across ranks the way upstream modded-nanogpt does: gradients are
reduce-scattered (each rank receives the mean gradient of the slice it owns), each rank updates
only its slice, and the updated slices are all-gathered back into every rank's parameters.
With one process (no process group) the same code runs with the collectives skipped.

The gradient a rank holds on entry to ``step`` must be its *local mean* gradient (the loop divides
the loss by the number of accumulation steps); the optimizers average across ranks, so 1, 2, 4 or 8
processes with matching accumulation see the same global gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

# Upstream's quintic Newton–Schulz coefficients (modded-nanogpt records of 2025): chosen to push
# singular values into roughly [0.7, 1.2] in five bf16 iterations rather than converge exactly.
NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def newton_schulz(grad: Tensor, steps: int = NS_STEPS) -> Tensor:
    """Approximately orthogonalise the last two dims of ``grad`` (..., m, n); returns bf16.

    Works on a batch of matrices at once. The iteration runs on the wide orientation (m <= n) so
    the Gram matrix ``X @ X.mT`` is the smaller one.
    """
    a, b, c = NS_COEFFS
    x = grad.bfloat16()
    tall = grad.size(-2) > grad.size(-1)
    if tall:
        x = x.mT
    # Frobenius norm bounds the spectral norm, so all singular values start in [0, 1].
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT  # (..., m, m)
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    return x.mT if tall else x


class _Comm:
    """The three collectives the optimizers need, or no-ops for a single process.

    The mean is a SUM followed by a scale so it works on every backend and torch version
    (ReduceOp.AVG is NCCL-only on older torch); the scale is applied when the result is awaited.
    """

    def __init__(self) -> None:
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world_size = dist.get_world_size() if self.active else 1

    def reduce_scatter_mean(self, full: Tensor) -> Callable[[], Tensor]:
        """Start the mean over ranks of this rank's chunk of ``full`` (split along dim 0, whose size
        must divide by world_size); the returned waiter gives that chunk. One process: ``full``."""
        if self.world_size == 1:
            return lambda: full
        out = full.new_empty((full.size(0) // self.world_size, *full.shape[1:]))
        # torch 2.13 renamed the flat-tensor collectives; the GPU machines run older releases
        reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        work = reduce_scatter(out, full, op=dist.ReduceOp.SUM, async_op=True)
        scale = 1.0 / self.world_size

        def wait() -> Tensor:
            work.wait()
            return out.mul_(scale)

        return wait

    def all_gather(self, mine: Tensor) -> Callable[[], Tensor]:
        """Start concatenating every rank's ``mine`` along dim 0; the waiter gives the result."""
        if self.world_size == 1:
            return lambda: mine
        full = mine.new_empty((mine.size(0) * self.world_size, *mine.shape[1:]))
        all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        work = all_gather(full, mine, async_op=True)

        def wait() -> Tensor:
            work.wait()
            return full

        return wait


def _group_by_shape(params: Iterable[Tensor], **opts) -> list[dict]:
    """One param group per distinct shape, in first-seen order (deterministic across ranks)."""
    groups: dict[tuple[int, ...], list[Tensor]] = {}
    for p in params:
        groups.setdefault(tuple(p.shape), []).append(p)
    return [dict(params=ps, **opts) for ps in groups.values()]


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton–Schulz, for the 2-D (or stacked 2-D) hidden weights.

    Per step and parameter: Nesterov momentum on the gradient, Newton–Schulz orthogonalisation in
    bf16, then ``p -= lr * sqrt(max(1, rows/cols)) * lr_mul * update`` (upstream's shape scaling, so
    tall matrices get the RMS step of square ones) after decoupled weight decay
    ``p *= 1 - lr * weight_decay * wd_mul``. Parameters of the same shape are stacked and processed as
    one batch; rank r owns the r-th contiguous chunk of each stack.
    ``lr_mul``/``wd_mul`` are optional attributes a model may set on a parameter (default 1).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.05,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        *,
        compile: bool = False,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("Muon: no parameters given")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(_group_by_shape(params), defaults)
        self._ns = torch.compile(newton_schulz, dynamic=False, fullgraph=True) if compile else newton_schulz

    @torch.no_grad()
    def step(self, closure=None) -> None:
        comm = _Comm()
        pending = [self._start_reduce(group, comm) for group in self.param_groups]
        gathers = [
            self._update_group(group, comm, waiter)
            for group, waiter in zip(self.param_groups, pending, strict=True)
        ]
        for group, wait in zip(self.param_groups, gathers, strict=True):
            full = wait()  # (chunk * world_size, *shape)
            for i, p in enumerate(group["params"]):
                p.copy_(full[i])

    def _start_reduce(self, group: dict, comm: _Comm) -> Callable[[], Tensor]:
        params: list[Tensor] = group["params"]
        chunk = math.ceil(len(params) / comm.world_size)
        pad = chunk * comm.world_size - len(params)
        ref = params[0]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        stacked = torch.stack(grads + [torch.zeros_like(ref)] * pad)  # (chunk*W, *shape)
        return comm.reduce_scatter_mean(stacked)

    def _update_group(self, group: dict, comm: _Comm, waiter) -> Callable[[], Tensor]:
        params: list[Tensor] = group["params"]
        chunk = math.ceil(len(params) / comm.world_size)
        lo = comm.rank * chunk
        own = params[lo : lo + chunk]
        ref = params[0]
        grad = waiter()  # (chunk, *shape)
        state = self.state[ref]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad)
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - group["momentum"])
        update = self._ns(grad.lerp_(buf, group["momentum"]))  # Nesterov, then orthogonalise
        cur = torch.stack(list(own) + [torch.zeros_like(ref)] * (chunk - len(own)))
        lr_mul, wd_mul = _multipliers(own, chunk, ref)
        shape_scale = max(1.0, ref.size(-2) / ref.size(-1)) ** 0.5
        cur.mul_(1 - group["lr"] * group["weight_decay"] * wd_mul)
        cur.sub_(update.to(cur.dtype) * (group["lr"] * shape_scale * lr_mul))
        return comm.all_gather(cur)


def _multipliers(own: Sequence[Tensor], chunk: int, ref: Tensor) -> tuple[Tensor, Tensor]:
    """Per-matrix ``lr_mul`` and ``wd_mul`` as (chunk, 1, ..., 1) tensors for broadcasting."""
    shape = (chunk,) + (1,) * ref.dim()
    lr = [float(getattr(p, "lr_mul", 1.0)) for p in own] + [0.0] * (chunk - len(own))
    wd = [float(getattr(p, "wd_mul", 1.0)) for p in own] + [0.0] * (chunk - len(own))
    to = dict(dtype=torch.float32, device=ref.device)
    return torch.tensor(lr, **to).view(shape), torch.tensor(wd, **to).view(shape)


class DistAdam(torch.optim.Optimizer):
    """Adam (decoupled weight decay) whose state and update are sharded across ranks.

    Each parameter is flattened and split into ``world_size`` equal chunks (zero-padded when the
    size does not divide); rank r keeps Adam moments only for chunk r. Effective lr is
    ``group lr * p.lr_mul`` (attribute optional, default 1), as upstream.
    """

    def __init__(
        self,
        param_groups: list[dict],
        betas: tuple[float, float] = (0.8, 0.95),
        eps: float = 1e-10,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=1e-3, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(param_groups, defaults)

    @torch.no_grad()
    def step(self, closure=None) -> None:
        comm = _Comm()
        items = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        pending = [self._start_reduce(p, comm) for _, p in items]
        gathers = [self._update(g, p, comm, w) for (g, p), w in zip(items, pending, strict=True)]
        for (_, p), wait in zip(items, gathers, strict=True):
            p.view(-1).copy_(wait()[: p.numel()])

    @staticmethod
    def _start_reduce(p: Tensor, comm: _Comm) -> Callable[[], Tensor]:
        return comm.reduce_scatter_mean(_padded_flat(p.grad, comm.world_size))

    def _update(self, group: dict, p: Tensor, comm: _Comm, waiter) -> Callable[[], Tensor]:
        grad = waiter()  # (chunk,)
        chunk = grad.numel()
        mine = _padded_flat(p.detach(), comm.world_size)[comm.rank * chunk : (comm.rank + 1) * chunk].clone()
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(mine)
            state["exp_avg_sq"] = torch.zeros_like(mine)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        lr = group["lr"] * float(getattr(p, "lr_mul", 1.0))
        if group["weight_decay"]:
            mine.mul_(1 - lr * group["weight_decay"] * float(getattr(p, "wd_mul", 1.0)))
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = state["step"]
        step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
        mine.addcdiv_(state["exp_avg"], denom, value=-step_size)
        return comm.all_gather(mine)


def _padded_flat(t: Tensor, world_size: int) -> Tensor:
    """``t`` flattened and zero-padded to a multiple of ``world_size`` elements (a view if no pad)."""
    flat = t.reshape(-1)
    pad = -flat.numel() % world_size
    return torch.cat([flat, flat.new_zeros(pad)]) if pad else flat
