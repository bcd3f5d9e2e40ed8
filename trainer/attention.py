"""Document-causal, sliding-window attention on one flat sequence, behind three kernels.

The sequence is a concatenation of documents, each starting with ``bos_id``. A query at position i
may attend to a key at position j when all of these hold:

* ``j <= i`` (causal) and j is in i's document (documents are found from the BOS tokens);
* the window: ``i - j <= window`` (granularity ``token``, FA3's ``window_size=(window, 0)``) or
  ``i // bs - j // bs < window // bs`` (granularity ``block``, PR 117's block masks; bs = block size);
* with ``max_doc_len``: ``i - j < max_doc_len`` (a no-op while windows are shorter, as in the speedrun).

Kernels: ``sdpa`` builds that (T, T) boolean mask explicitly (exact; CPU and tests), ``flex`` builds a
FlexAttention block mask from the same rule (CUDA), ``fa3`` calls ``flash_attn_varlen_func`` with one
variable-length sequence per document (CUDA, token windows only). CUDA-only modules are imported on
first use, never at import time.

Layout everywhere in this file: q, k, v are (T, H, D); the output is (T, H, D).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

Window = int | Tensor  # tokens; a 0-d int tensor lets a compiled graph change windows without recompiling


@dataclass(frozen=True)
class MaskRule:
    """The knobs that shape attention masks (see the module docstring)."""

    block_size: int
    granularity: str  # "token" | "block"
    max_doc_len: int | None


def document_ids(input_seq: Tensor, bos_id: int) -> Tensor:
    """(T,) int32 document index of each token: +1 at every BOS (tokens before the first BOS are doc 0)."""
    return (input_seq == bos_id).cumsum(0, dtype=torch.int32)


def short_window(window: Window, block_size: int) -> Window:
    """Upstream's short window: half the long window's blocks, at least one block."""
    if isinstance(window, Tensor):
        return torch.clamp_min(window // block_size // 2, 1) * block_size
    return max(1, window // block_size // 2) * block_size


def _limits(window: Window, rule: MaskRule) -> tuple[Window | None, Window | None]:
    """(largest allowed i - j, largest allowed i//bs - j//bs + 1) for ``window``; None = unlimited."""
    doc_limit = None if rule.max_doc_len is None else rule.max_doc_len - 1
    if rule.granularity == "block":
        return doc_limit, window // rule.block_size
    if doc_limit is None:
        return window, None
    if isinstance(window, Tensor):
        return torch.clamp_max(window, doc_limit), None
    return min(window, doc_limit), None


def allowed(q_idx: Tensor, kv_idx: Tensor, docs: Tensor, window: Window, rule: MaskRule) -> Tensor:
    """Whether query ``q_idx`` may see key ``kv_idx`` (index tensors broadcast); all kernels use it."""
    tok, blk = _limits(window, rule)
    ok = (kv_idx <= q_idx) & (docs[q_idx] == docs[kv_idx])
    if tok is not None:
        ok = ok & (q_idx - kv_idx <= tok)
    if blk is not None:
        ok = ok & (q_idx // rule.block_size - kv_idx // rule.block_size < blk)
    return ok


# ----------------------------------------------------------------------------- sdpa: explicit mask


def dense_mask(docs: Tensor, window: Window, rule: MaskRule) -> Tensor:
    """(T, T) bool: entry [i, j] says whether query i may attend to key j."""
    idx = torch.arange(docs.numel(), device=docs.device)
    return allowed(idx[:, None], idx[None, :], docs, window, rule)


def sdpa_attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float) -> Tensor:
    """Exact masked attention; every row allows at least its own position, so no row is empty."""
    q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))  # (1, H, T, D)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return y[0].transpose(0, 1)


# ----------------------------------------------------------------------------- flex: block masks


def _ordered(dense: Tensor) -> tuple[Tensor, Tensor]:
    """Block-sparse rows of a (NB, NB) bool matrix: counts (1, 1, NB) and indices, set blocks first."""
    counts = dense.sum(dim=-1, dtype=torch.int32)
    order = torch.argsort(dense.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
    return counts[None, None].contiguous(), order[None, None].contiguous()


def _block_any_all(docs: Tensor, window: Window, rule: MaskRule) -> tuple[Tensor, Tensor]:
    """(NB, NB) bool pair: some / every (query, key) pair of the two blocks is allowed.

    "some" may over-count (the mask_mod then decides per element); "every" is exact.
    """
    bs = rule.block_size
    nb = docs.numel() // bs
    qb = torch.arange(nb, device=docs.device)[:, None]
    kb = torch.arange(nb, device=docs.device)[None, :]
    first, last = docs.view(nb, bs)[:, 0], docs.view(nb, bs)[:, -1]
    any_ok = (qb >= kb) & (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])
    all_ok = (
        (qb > kb)
        & (first[:, None] == last[:, None])
        & (last[:, None] == first[None, :])
        & (first[None, :] == last[None, :])
    )
    tok, blk = _limits(window, rule)
    if tok is not None:
        gap = (qb - kb) * bs  # distance between the blocks' first positions
        any_ok = any_ok & (gap - (bs - 1) <= tok)
        all_ok = all_ok & (gap + (bs - 1) <= tok)
    if blk is not None:
        any_ok = any_ok & (qb - kb < blk)
        all_ok = all_ok & (qb - kb < blk)
    return any_ok, all_ok


def flex_block_mask(docs: Tensor, window: Window, rule: MaskRule) -> Any:
    """A FlexAttention BlockMask of ``allowed``: full blocks skip the mask_mod, partial ones apply it."""
    from torch.nn.attention.flex_attention import BlockMask

    any_ok, all_ok = _block_any_all(docs, window, rule)
    partial_n, partial_idx = _ordered(any_ok & ~all_ok)
    full_n, full_idx = _ordered(all_ok)

    def mask_mod(b, h, q_idx, kv_idx):
        return allowed(q_idx, kv_idx, docs, window, rule)

    return BlockMask.from_kv_blocks(
        partial_n, partial_idx, full_n, full_idx, BLOCK_SIZE=rule.block_size, mask_mod=mask_mod
    )


def flex_attend(q: Tensor, k: Tensor, v: Tensor, block_mask: Any, scale: float) -> Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))  # (1, H, T, D)
    y = flex_attention(q, k, v, block_mask=block_mask, scale=scale)
    return y[0].transpose(0, 1)


# ----------------------------------------------------------------------------- fa3: varlen


@functools.cache
def fa3_available() -> bool:
    """Whether FlashAttention 3 (``flash_attn_interface``) imports here."""
    try:
        import flash_attn_interface  # noqa: F401
    except Exception:  # any failure (missing, wrong CUDA, bad build) means: use flex instead
        return False
    return True


def fa3_doc_starts(input_seq: Tensor, bos_id: int, slots: int) -> Tensor:
    """(slots + 1,) int32 cumulative sequence starts for flash_attn_varlen_func.

    A segment starts at position 0 and at every BOS; unused slots repeat T (empty sequences). A fixed
    size keeps the graph static under torch.compile; more than ``slots`` documents would merge the
    last ones, so callers size it generously (upstream: T/300 rounded up to 128).
    """
    T = input_seq.numel()
    starts = input_seq == bos_id
    starts = torch.cat([starts.new_ones(1), starts[1:]])
    pos = torch.nonzero_static(starts, size=slots, fill_value=T).flatten()
    return torch.cat([pos, pos.new_full((1,), T)]).to(torch.int32)


def fa3_attend(
    q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_len: int, window: int, scale: float
) -> Tensor:
    from flash_attn_interface import flash_attn_varlen_func

    y = flash_attn_varlen_func(
        q,
        k,
        v,
        cu_seqlens_q=cu_seqlens,
        cu_seqlens_k=cu_seqlens,
        max_seqlen_q=max_len,
        max_seqlen_k=max_len,
        causal=True,
        softmax_scale=scale,
        window_size=(window, 0),
    )
    return y[0] if isinstance(y, tuple) else y
