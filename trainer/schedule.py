"""Pure schedule helpers shared by the loop and the model: micro-batches per rank, and the
attention window at each step (what compile warm-up has to cover).

Errors are ``ConfigError`` naming the knob, as the config's own checks do.
"""

from __future__ import annotations

import math

from trainer.config import ConfigError, TrainConfig


def grad_accum_for(cfg: TrainConfig, world_size: int) -> int:
    """Micro-batches per step per rank so that ``world_size`` ranks see ``batch_tokens`` per step."""
    if cfg.grad_accum is not None:
        if cfg.grad_accum * cfg.seq_len * world_size != cfg.batch_tokens:
            raise ConfigError(
                f"grad_accum: {cfg.grad_accum} x seq_len {cfg.seq_len} x {world_size} processes "
                f"!= batch_tokens {cfg.batch_tokens}",
            )
        return cfg.grad_accum
    per_rank, rest = divmod(cfg.batch_tokens, cfg.seq_len * world_size)
    if rest or per_rank < 1:
        raise ConfigError(
            f"batch_tokens: {cfg.batch_tokens} is not a multiple of seq_len {cfg.seq_len} x "
            f"{world_size} processes",
        )
    return per_rank


def window_tokens_at(cfg: TrainConfig, step: int) -> int:
    """The long attention window (tokens, a multiple of block_size) used at ``step`` (0..steps).

    stages (PR 118/120): stage int(len * step / (steps + 1)) of window_stages, in blocks.
    linear (PR 117): window_max_tokens * step / steps rounded up to a block, at least one block.
    Short-window layers use ``short_window(cfg, long)``.
    """
    if not 0 <= step <= cfg.steps:
        raise ConfigError(f"steps: step {step} outside 0..{cfg.steps}")
    bs = cfg.block_size
    if cfg.window_schedule == "stages":
        stage = int(len(cfg.window_stages) * step / (cfg.steps + 1))
        return cfg.window_stages[stage] * bs
    grow = cfg.window_max_tokens * step / cfg.steps
    return max(1, math.ceil(grow / bs)) * bs


def short_window(cfg: TrainConfig, long_window: int) -> int:
    """Window of the short-window layers: half the long window's blocks, at least one block."""
    return max(1, long_window // cfg.block_size // 2) * cfg.block_size


def window_sizes(cfg: TrainConfig) -> tuple[int, ...]:
    """Every distinct long window the schedule uses (what compile warm-up must cover), ascending."""
    return tuple(sorted({window_tokens_at(cfg, s) for s in range(cfg.steps + 1)}))
