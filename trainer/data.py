"""Training data at run time: the BOS-aligned distributed loader and the validation batches.

Shards are the modded-nanogpt format (``trainer.shards``: a 256 x int32 header, then uint16
tokens; documents separated by a BOS token). The corpus tools that make shards live in
``trainer.corpus`` (``python -m trainer.data ...`` still runs their command line).

The loader cuts the token stream of the sorted shards into a *global* sequence of chunks that does
not depend on the number of ranks; rank ``r`` of ``W`` takes chunks ``r, r + W, r + 2W, ...``.
So every rank knows which chunk is whose without talking to the others, and ``W`` ranks at one
step see exactly the chunks that one rank sees over ``W`` consecutive calls (gradient
accumulation). See ``DistributedBatches`` for how a chunk is cut.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.shards import (  # noqa: F401  (the format is part of this module's documented interface)
    HEADER_BYTES,
    HEADER_INTS,
    MAGIC,
    MAX_TOKEN,
    VERSION,
    DataError,
    default_data_root,
    match_shards,
    read_header,
    read_shard,
    shard_identity,
    write_shard,
)

# ---------------------------------------------------------------------------------------------
# Cutting the token stream into chunks


@dataclass(frozen=True)
class Chunk:
    """One chunk of the global stream: ``pieces`` are (start, end) token offsets in shard ``shard``.

    The pieces hold ``tokens_per_rank + 1`` tokens together: inputs are all but the last token,
    targets all but the first.
    """

    shard: int
    pieces: tuple[tuple[int, int], ...]


def _aligned_chunks(tokens: np.ndarray, n: int, bos_id: int, max_doc_len: int | None) -> Iterator[tuple]:
    """Cuts one shard into BOS-aligned chunks of ``n`` tokens (n = tokens_per_rank + 1).

    Each document (a BOS and what follows up to the next BOS) is cut to ``max_doc_len`` tokens
    (the rest is dropped); a chunk is a run of consecutive such pieces, the last one cut so the
    chunk holds exactly ``n`` tokens. The next chunk starts at the next document, so every chunk
    starts at a BOS. Tokens before the shard's first BOS are never used.
    """
    bos = np.flatnonzero(np.asarray(tokens) == bos_id)
    if bos.size == 0:
        return
    ends = np.append(bos[1:], len(tokens))
    lengths = ends - bos
    if max_doc_len is not None:
        lengths = np.minimum(lengths, max_doc_len)
    cum = np.concatenate(([0], np.cumsum(lengths)))  # cum[i] = piece tokens before document i
    doc = 0
    while True:
        stop = int(np.searchsorted(cum, cum[doc] + n, side="left"))  # first doc past the chunk
        if stop > len(lengths):
            return
        starts = bos[doc:stop]
        piece_ends = starts + lengths[doc:stop]
        piece_ends[-1] -= cum[stop] - (cum[doc] + n)  # cut the last piece to fit exactly
        yield tuple(zip(starts.tolist(), piece_ends.tolist(), strict=True))
        doc = stop


def _plain_chunks(tokens: np.ndarray, n: int) -> Iterator[tuple]:
    """Cuts one shard into overlapping windows of ``n`` tokens at a stride of ``n - 1``."""
    for start in range(0, len(tokens) - n + 1, n - 1):
        yield ((start, start + n),)


def chunk_plan(
    files: Sequence[Path], tokens_per_rank: int, *, bos_id: int, align_to_bos: bool, max_doc_len: int | None
) -> Iterator[Chunk]:
    """The global chunk sequence over ``files`` in order, cycling forever (one pass = one epoch)."""
    n = tokens_per_rank + 1
    while True:
        found = False
        for i, f in enumerate(files):
            tokens = read_shard(f)
            cuts = (
                _aligned_chunks(tokens, n, bos_id, max_doc_len) if align_to_bos else _plain_chunks(tokens, n)
            )
            for pieces in cuts:
                found = True
                yield Chunk(i, pieces)
        if not found:
            what = f"BOS-aligned tokens (BOS {bos_id})" if align_to_bos else "tokens"
            raise DataError(
                f"no shard among {len(files)} ({files[0]} ...) holds {n} {what}; use smaller batches"
            )


def _gather(tokens: np.ndarray, pieces: tuple[tuple[int, int], ...]) -> np.ndarray:
    return np.concatenate([tokens[a:b] for a, b in pieces]).astype(np.int64)


def _to_tensor(buf: np.ndarray, pin: bool) -> torch.Tensor:
    t = torch.from_numpy(buf)
    return t.pin_memory() if pin else t


class DistributedBatches:
    """Infinite iterator of ``(inputs, targets)``, 1-D int64 CPU tensors of ``tokens_per_rank`` tokens.

    ``targets`` is ``inputs`` shifted left by one (the chunk has one token more than it yields).
    Chunks come from the global, world-size-independent sequence of ``chunk_plan``; this rank
    takes every ``world_size``-th one starting at ``rank``. Hence:

    * aligned or not, ``W`` ranks at call ``k`` see the chunks one rank sees at calls
      ``k*W ... k*W + W - 1`` (with the same ``tokens_per_rank``): accumulation is exact;
    * with ``align_to_bos`` every chunk starts with BOS, documents are cut to ``max_doc_len``;
    * without it chunks are consecutive windows, so ``W`` ranks of ``T`` tokens at a call are,
      concatenated, the chunk one rank of ``W*T`` tokens sees (while a shard lasts).

    The next batch is read and pinned (when CUDA is available) on a background thread while the
    caller trains on this one, as upstream prefetches, so the GPU step never waits on the disk.
    """

    def __init__(
        self,
        pattern: str,
        tokens_per_rank: int,
        rank: int,
        world_size: int,
        *,
        bos_id: int,
        align_to_bos: bool = True,
        max_doc_len: int | None = None,
    ):
        if tokens_per_rank < 1:
            raise DataError(f"tokens_per_rank: {tokens_per_rank}; must be at least 1")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} outside 0..{world_size - 1} (world_size {world_size})")
        if max_doc_len is not None and max_doc_len < 1:
            raise DataError(f"max_doc_len: {max_doc_len}; must be at least 1 or None")
        self.files = match_shards(pattern)
        self.tokens_per_rank, self.rank, self.world_size = tokens_per_rank, rank, world_size
        self._plan = chunk_plan(
            self.files, tokens_per_rank, bos_id=bos_id, align_to_bos=align_to_bos, max_doc_len=max_doc_len
        )
        self._pin = torch.cuda.is_available()
        self._shard_index = -1
        self._tokens: np.ndarray | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._next: Future | None = None

    def _own_chunk(self) -> Chunk:
        """Skips the other ranks' chunks and returns this rank's next one."""
        chunks = [next(self._plan) for _ in range(self.world_size)]
        return chunks[self.rank]

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self._own_chunk()
        if chunk.shard != self._shard_index:
            self._tokens, self._shard_index = read_shard(self.files[chunk.shard]), chunk.shard
        buf = _gather(self._tokens, chunk.pieces)
        return _to_tensor(buf[:-1], self._pin), _to_tensor(buf[1:], self._pin)

    def __iter__(self) -> DistributedBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pool is None:  # the first batch is read here, so bad data fails in the caller
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ablate-data")
            batch = self._load()
        else:
            batch = self._next.result()
        self._next = self._pool.submit(self._load)
        return batch

    def close(self) -> None:
        """Stops the prefetch thread (also fine to just drop the iterator)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self):
        with contextlib.suppress(Exception):
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)


def val_batches(
    pattern: str, total_tokens: int, tokens_per_rank: int, rank: int, world_size: int, *, bos_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The validation set: ``total_tokens / (tokens_per_rank * world_size)`` batches per rank.

    Not BOS-aligned (as upstream): consecutive windows from the first val shard on, so all ranks
    together cover exactly ``total_tokens`` predicted tokens, the same ones for any world size.
    """
    per_step = tokens_per_rank * world_size
    if total_tokens <= 0 or total_tokens % per_step:
        raise DataError(
            f"val_tokens {total_tokens} must be a positive multiple of tokens_per_rank x world_size = "
            f"{tokens_per_rank} x {world_size} = {per_step}"
        )
    files = match_shards(pattern)
    usable = sum(max(0, read_header(f) - 1) // tokens_per_rank * tokens_per_rank for f in files)
    if usable < total_tokens:
        raise DataError(
            f"{pattern!r}: val_tokens {total_tokens} exceeds the {usable} validation tokens available "
            f"in windows of {tokens_per_rank}; lower val_tokens or add val shards"
        )
    return _val_iter(pattern, total_tokens // per_step, tokens_per_rank, rank, world_size, bos_id)


def _val_iter(pattern, steps, tokens_per_rank, rank, world_size, bos_id):
    batches = DistributedBatches(
        pattern, tokens_per_rank, rank, world_size, bos_id=bos_id, align_to_bos=False
    )
    try:
        for _ in range(steps):
            yield next(batches)
    finally:
        batches.close()


def ensure_synth(cache_dir: Path | None = None) -> Path:
    """The tiny preset's synthetic corpus folder (``trainer.corpus.ensure_synth``, importable here too)."""
    from trainer.corpus import ensure_synth as ensure

    return ensure(cache_dir)


if __name__ == "__main__":  # `python -m trainer.data VERB ...`: the corpus tools' command line
    from trainer.corpus import main

    sys.exit(main())
