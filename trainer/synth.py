"""A structured synthetic token source: cheap to make, learnable, and needing attention.

Documents start with BOS and have log-normal lengths. Inside a document the text is
* a sparse Markov chain: after token ``a`` comes one of ``K`` successors of ``a`` (Zipfian over the
  ``K``, successors themselves drawn Zipf-like, so the marginals are Zipfian) — a model that sees
  only the current token already gets far below the unigram entropy;
* with a per-document *topic* that picks which successor table is used — visible only by looking
  back over the document (the first token after BOS gives it away), so attention pays;
* with spans copied from earlier in the same document (induction: after the first copied tokens
  the rest is predictable only by attending to the source);
* plus a little unigram noise so every token appears.

Generation is vectorised over many independent streams at once (time-major ``(L, W)`` array, one
row per position, one column per stream), so 100M tokens take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of the source; the defaults are what ``ensure_synth`` and the CLI use."""

    vocab_size: int = 1024
    bos_id: int | None = None  # None: vocab_size - 1
    mean_doc_len: int = 256
    """Median document length in tokens (log-normal, sigma 0.75, clipped to [16, 8x])."""
    successors: int = 8
    """K: distinct next tokens after each token (per topic)."""
    topics: int = 4
    """Per-document successor tables."""
    noise: float = 0.08
    """Probability that a token is drawn from the unigram (Zipf) law instead."""
    copy_start: float = 0.01
    """Per-token probability of starting a copied span (once the document is long enough)."""
    copy_len: tuple[int, int] = (12, 40)
    """Copied span lengths, inclusive range."""
    stream_len: int = 2048
    """Tokens per generation stream (W = ceil(tokens / stream_len) streams run in parallel)."""

    def bos(self) -> int:
        return self.vocab_size - 1 if self.bos_id is None else self.bos_id

    def __post_init__(self):
        if not 3 <= self.vocab_size <= 2**16:
            raise ValueError(f"vocab_size: {self.vocab_size}; must be in [3, 65536] (uint16 shards)")
        if not 0 <= self.bos() < self.vocab_size:
            raise ValueError(f"bos_id: {self.bos_id}; must be in [0, vocab_size)")
        if not 0 <= self.noise + self.copy_start < 1:
            raise ValueError("noise + copy_start must be in [0, 1)")
        if not 1 <= self.copy_len[0] <= self.copy_len[1]:
            raise ValueError(f"copy_len: {self.copy_len}; must be (lo, hi) with 1 <= lo <= hi")


def _zipf(n: int, s: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


def _tables(spec: SynthSpec, rng: np.random.Generator):
    """``(perm, cdf, succ, lut)``: content tokens in Zipf-rank order and the cdf of their law,
    the successor table (topics, vocab, K) flattened, and a code lookup.

    The lookup maps a uniform uint16 to what a position does: ``0..K-1`` take that successor,
    ``K`` draws noise, ``K + 1`` starts a copy; one uint16 draw per token keeps generation fast.
    """
    content = np.delete(np.arange(spec.vocab_size), spec.bos())
    rank_p = _zipf(len(content))
    perm = rng.permutation(content)  # which token gets which Zipf rank
    succ = rng.choice(perm, size=(spec.topics, spec.vocab_size, spec.successors), p=rank_p)
    k_p = _zipf(spec.successors) * (1 - spec.noise - spec.copy_start)
    probs = np.concatenate([k_p, [spec.noise, spec.copy_start]])
    edges = np.round(np.cumsum(probs) * 2**16).astype(np.int64)
    lut = np.searchsorted(edges, np.arange(2**16), side="right").astype(np.int16)
    # uint16 keeps the table small enough for the cache; the cdf makes noise draws a searchsorted.
    return perm, np.cumsum(rank_p), succ.reshape(-1).astype(np.uint16), np.minimum(lut, spec.successors + 1)


@dataclass
class _Streams:
    """Mutable per-stream state of the generator (one entry per column)."""

    left: np.ndarray  # tokens left in the current document (0: emit BOS next)
    doc_start: np.ndarray  # row of the current document's BOS
    topic: np.ndarray
    copy_src: np.ndarray  # row copied from next
    copy_left: np.ndarray  # tokens left in the current copy


def _doc_lengths(spec: SynthSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    m = spec.mean_doc_len
    lengths = np.exp(rng.normal(np.log(m), 0.75, size=n))
    return np.clip(np.round(lengths), 16, 8 * m).astype(np.int64)


def _step(t: int, out: np.ndarray, st: _Streams, codes: np.ndarray, spec, rng, tables) -> None:
    """Writes row ``t`` of ``out`` (time-major, shape (L, W)) for every stream.

    Index arrays (``flatnonzero``) and flat ``take`` instead of boolean masks and 3-D fancy
    indexing: this loop runs once per position, so it decides how fast 100M tokens come out.
    """
    perm, rank_cdf, succ, _ = tables
    k, w = spec.successors, out.shape[1]
    prev = out[t - 1].astype(np.intp) if t else np.full(w, spec.bos(), dtype=np.intp)
    row = succ.take((st.topic * spec.vocab_size + prev) * k + np.minimum(codes, k - 1))
    noisy = np.flatnonzero(codes == k)
    row[noisy] = perm[np.minimum(np.searchsorted(rank_cdf, rng.random(noisy.size)), perm.size - 1)]
    # Start copies where the document is long enough to hold a whole span before t.
    cand = np.flatnonzero((codes == k + 1) & (st.copy_left == 0))
    span = rng.integers(spec.copy_len[0], spec.copy_len[1] + 1, size=cand.size)
    room = t - st.doc_start[cand] - 1 - span  # how far back a span of that length can start
    ok = room >= 0
    cand, span, room = cand[ok], span[ok], room[ok]
    st.copy_src[cand] = st.doc_start[cand] + 1 + (rng.random(cand.size) * (room + 1)).astype(np.intp)
    st.copy_left[cand] = span
    copying = np.flatnonzero(st.copy_left)
    row[copying] = out.reshape(-1).take(st.copy_src[copying] * w + copying)
    st.copy_src[copying] += 1
    st.copy_left[copying] -= 1
    # Documents that end here emit BOS and start afresh.
    new = np.flatnonzero(st.left == 0)
    row[new] = spec.bos()
    st.left[new] = _doc_lengths(spec, rng, new.size)
    st.doc_start[new] = t
    st.topic[new] = rng.integers(0, spec.topics, size=new.size)
    st.copy_left[new] = 0
    st.left -= 1
    out[t] = row


def synth_tokens(n_tokens: int, spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """``n_tokens`` uint16 tokens of the source; deterministic given ``rng``'s state."""
    tables = _tables(spec, rng)
    w = max(1, -(-n_tokens // spec.stream_len))
    length = -(-n_tokens // w)
    out = np.empty((length, w), dtype=np.uint16)
    zeros = np.zeros(w, dtype=np.intp)
    st = _Streams(
        left=zeros.copy(),
        doc_start=zeros.copy(),
        topic=zeros.copy(),
        copy_src=zeros.copy(),
        copy_left=zeros.copy(),
    )
    lut = tables[3]
    block = 64  # draw the per-token codes 64 rows at a time
    for b in range(0, length, block):
        codes = lut[rng.integers(0, 2**16, size=(min(block, length - b), w), dtype=np.uint16)].astype(np.intp)
        for i in range(codes.shape[0]):
            _step(b + i, out, st, codes[i], spec, rng, tables)
    return np.ascontiguousarray(out.T).reshape(-1)[:n_tokens]  # stream after stream, each starts at BOS
