"""Training data: the modded-nanogpt shard format, the BOS-aligned distributed loader and corpus tools.

A shard is a 256 x int32 header (magic 20240520, version 1, token count, then zeros) followed by
that many uint16 tokens. Documents are separated by a BOS token (GPT-2's 50256 on FineWeb).

The loader cuts the token stream of the sorted shards into a *global* sequence of chunks that does
not depend on the number of ranks; rank ``r`` of ``W`` takes chunks ``r, r + W, r + 2W, ...``.
So every rank knows which chunk is whose without talking to the others, and ``W`` ranks at one
step see exactly the chunks that one rank sees over ``W`` consecutive calls (gradient
accumulation). See ``DistributedBatches`` for how a chunk is cut.

Corpus tools (also ``python -m trainer.data {synth,text,fineweb,inspect}``): ``synth_corpus`` and
``ensure_synth`` (structured synthetic text, ``trainer.synth``), ``tokenize_text`` (local text) and
``fetch_fineweb`` (pre-tokenised FineWeb shards from the Hugging Face hub).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN = 2**16 - 1  # tokens are stored as uint16


class DataError(Exception):
    """A data problem the user can fix (missing, malformed or too small shards): one line, exit 2."""


# ---------------------------------------------------------------------------------------------
# Shard format


def write_shard(path: str | Path, tokens: np.ndarray) -> Path:
    """Writes ``tokens`` (1-D ints in [0, 65535]) as a shard, atomically (temp name + rename)."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise DataError(f"{path}: tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > MAX_TOKEN):
        raise DataError(f"{path}: tokens must lie in [0, {MAX_TOKEN}] to fit uint16")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[:3] = (MAGIC, VERSION, tokens.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2", copy=False).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> int:
    """Validates a shard's header and size; returns its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise DataError(f"{path}: cannot read shard ({e.strerror})") from None
    if len(raw) < HEADER_BYTES:
        raise DataError(f"{path}: {len(raw)} bytes is shorter than the {HEADER_BYTES}-byte shard header")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != MAGIC:
        raise DataError(f"{path}: magic number {header[0]}, expected {MAGIC} (a modded-nanogpt .bin shard)")
    if header[1] != VERSION:
        raise DataError(f"{path}: shard version {header[1]}, expected {VERSION}")
    n = int(header[2])
    if size != HEADER_BYTES + 2 * n:
        raise DataError(
            f"{path}: header says {n} tokens ({HEADER_BYTES + 2 * n} bytes), file has {size} bytes"
        )
    return n


def read_shard(path: str | Path) -> np.ndarray:
    """The shard's tokens as a read-only memory-mapped uint16 array (validated first)."""
    n = read_header(path)
    if n == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,))


def shard_identity(files: Sequence[str | Path]) -> str:
    """A short stable id of a set of shards: names, sizes and a hash of each header + first MiB."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(HEADER_BYTES + 2**20))
    return h.hexdigest()[:16]


def match_shards(pattern: str) -> list[Path]:
    """The files matching a glob pattern, sorted; none is a DataError naming the pattern."""
    files = sorted(Path(p) for p in glob.glob(pattern))
    if not files:
        raise DataError(f"no shard matches {pattern!r}; make some with `python -m trainer.data synth`")
    return files


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


# ---------------------------------------------------------------------------------------------
# Synthetic corpus

SYNTH_NAME = "synth-v1"  # bump when the generator or ensure_synth's sizes change
SYNTH_TRAIN_TOKENS = 2_097_152
SYNTH_VAL_TOKENS = 131_072
SYNTH_SHARD_TOKENS = 1_048_576
SYNTH_SEED = 1234
SYNTH_MEAN_DOC_LEN = 128  # the tiny preset's documents are capped at 256 tokens


def _write_split(out_dir: Path, name: str, tokens: np.ndarray, shard_tokens: int) -> list[Path]:
    """Writes ``tokens`` as ``{name}_000000.bin``, ``{name}_000001.bin`` ... of ``shard_tokens`` each."""
    return [
        write_shard(out_dir / f"{name}_{i:06d}.bin", tokens[start : start + shard_tokens])
        for i, start in enumerate(range(0, len(tokens), shard_tokens))
    ]


def synth_corpus(
    out_dir: str | Path,
    *,
    vocab_size: int = 1024,
    bos_id: int | None = None,
    train_tokens: int,
    val_tokens: int,
    seed: int,
    shard_tokens: int = 100_000_000,
    prefix: str = "synth",
    mean_doc_len: int = 256,
) -> dict:
    """Writes a deterministic synthetic corpus (``trainer.synth``) as ``{prefix}_{train,val}_NNNNNN.bin``.

    Train and val come from the same source (same tables) but disjoint random streams. Returns a
    summary: files, token counts, BOS id, seconds and tokens/s of generation.
    """
    from trainer.synth import SynthSpec, synth_tokens  # numpy-only, but only the tools need it

    if train_tokens < 1 or val_tokens < 1 or shard_tokens < 1:
        raise DataError("train_tokens, val_tokens and shard_tokens must all be at least 1")
    try:
        spec = SynthSpec(vocab_size=vocab_size, bos_id=bos_id, mean_doc_len=mean_doc_len)
    except ValueError as e:
        raise DataError(str(e)) from None
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    # One generator for the tables and both splits: the val stream follows the train stream.
    tokens = synth_tokens(train_tokens + val_tokens, spec, np.random.default_rng(seed))
    seconds = time.perf_counter() - t0
    files = _write_split(out_dir, f"{prefix}_val", tokens[train_tokens:], shard_tokens)
    files += _write_split(out_dir, f"{prefix}_train", tokens[:train_tokens], shard_tokens)
    return {
        "out_dir": str(out_dir),
        "files": [f.name for f in files],
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "vocab_size": vocab_size,
        "bos_id": spec.bos(),
        "seed": seed,
        "generate_s": round(seconds, 3),
        "tokens_per_s": round((train_tokens + val_tokens) / max(seconds, 1e-9)),
    }


def default_data_root() -> Path:
    """``$ABLATE_DATA_DIR`` or ``~/.cache/ablate/data``."""
    env = os.environ.get("ABLATE_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ablate" / "data"


def ensure_synth(cache_dir: Path | None = None) -> Path:
    """The tiny preset's corpus folder (vocab 1024, BOS 1023), generated once.

    ``cache_dir`` (default ``default_data_root()``) gets ``synth-v1/``. Safe when several
    processes start at once: one generates into a temp folder under an exclusive file lock and
    renames it into place; the others wait on the lock and find the finished folder.
    """
    root = Path(cache_dir) if cache_dir is not None else default_data_root()
    final = root / SYNTH_NAME
    if (final / "done.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{SYNTH_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "done.json").exists():
            for stale in root.glob(f".{SYNTH_NAME}.*"):  # left by a killed generator; we hold the lock
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            _build_synth(root, final)
    return final


def _build_synth(root: Path, final: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{SYNTH_NAME}.", dir=root))
    try:
        summary = synth_corpus(
            tmp,
            vocab_size=1024,
            train_tokens=SYNTH_TRAIN_TOKENS,
            val_tokens=SYNTH_VAL_TOKENS,
            seed=SYNTH_SEED,
            shard_tokens=SYNTH_SHARD_TOKENS,
            mean_doc_len=SYNTH_MEAN_DOC_LEN,
        )
        summary["out_dir"] = SYNTH_NAME
        (tmp / "done.json").write_text(json.dumps(summary, indent=1) + "\n")
        if final.exists():  # a partial folder from a crashed older version: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Local text

BYTE_VOCAB, BYTE_BOS = 257, 256
_GPT2_BLOBS = (  # what tiktoken's gpt2 encoding reads; cached under the sha1 of the URL
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
)


def _tiktoken_offline() -> bool:
    """True when tiktoken imports and GPT-2's files are here without a download: installed from
    the npm package by ``python -m trainer.data bpe``, or already in tiktoken's own cache."""
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        return False
    from trainer.english.bpe import bpe_dir, installed

    if installed(bpe_dir()):
        return True
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    return all((cache_dir / hashlib.sha1(url.encode()).hexdigest()).exists() for url in _GPT2_BLOBS)


def _gpt2_encoding():
    import tiktoken

    from trainer.english.bpe import bpe_dir, gpt2_encoding, installed

    return gpt2_encoding(bpe_dir()) if installed(bpe_dir()) else tiktoken.get_encoding("gpt2")


def text_encoder(kind: str = "auto") -> tuple[str, int, int, Callable[[str], Sequence[int] | np.ndarray]]:
    """``(name, vocab_size, bos_id, encode)``: GPT-2 BPE if available offline, else bytes.

    ``kind``: ``auto`` (gpt2 when possible), ``gpt2`` (error if not available offline), ``bytes``.
    """
    if kind not in ("auto", "gpt2", "bytes"):
        raise DataError(f"tokenizer: {kind!r}; must be one of auto, gpt2, bytes")
    if kind != "bytes" and _tiktoken_offline():
        enc = _gpt2_encoding()
        return "gpt2", enc.n_vocab, enc.eot_token, enc.encode_ordinary
    if kind == "gpt2":
        raise DataError(
            "tokenizer gpt2: needs tiktoken and GPT-2's BPE files offline; run `python -m trainer.data bpe` "
            "(fetches them from npm) or use --tokenizer bytes"
        )
    return "bytes", BYTE_VOCAB, BYTE_BOS, lambda s: np.frombuffer(s.encode("utf-8"), dtype=np.uint8)


def _documents(files: Sequence[str | Path], paragraphs: bool) -> list[str]:
    docs = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{f}: cannot read as UTF-8 text ({e})") from None
        parts = [p.strip() for p in text.split("\n\n")] if paragraphs else [text]
        docs += [p for p in parts if p.strip()]  # whitespace alone is no document
    if not docs:
        raise DataError(f"no text in {len(files)} file(s) ({', '.join(map(str, files[:3]))})")
    return docs


def tokenize_text(
    files: Sequence[str | Path],
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    tokenizer: str = "auto",
    prefix: str = "text",
    paragraphs: bool = False,
    shard_tokens: int = 100_000_000,
) -> dict:
    """Tokenises local text files (one document each, or each paragraph) into train/val shards.

    Every document is BOS + its tokens. The last documents, about ``val_fraction`` of the tokens
    (at least one document), go to val; a single document is cut in two and the val part gets
    its own BOS. Nothing is downloaded. Returns a summary naming the tokenizer used.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction: {val_fraction}; must be in (0, 1)")
    name, vocab, bos, encode = text_encoder(tokenizer)
    docs = [
        np.concatenate([[bos], np.asarray(encode(d), dtype=np.int64)]) for d in _documents(files, paragraphs)
    ]
    total = sum(len(d) for d in docs)
    if len(docs) == 1:
        cut = max(1, min(len(docs[0]) - 1, round(len(docs[0]) * (1 - val_fraction))))
        train, val = docs[0][:cut], np.concatenate([[bos], docs[0][cut:]])
    else:
        sizes = np.cumsum([len(d) for d in docs[::-1]])
        n_val = min(len(docs) - 1, int(np.searchsorted(sizes, val_fraction * total)) + 1)
        train, val = np.concatenate(docs[:-n_val]), np.concatenate(docs[-n_val:])
    out_dir = Path(out_dir)
    written = _write_split(out_dir, f"{prefix}_val", val, shard_tokens)
    written += _write_split(out_dir, f"{prefix}_train", train, shard_tokens)
    summary = {
        "tokenizer": name,
        "vocab_size": vocab,
        "bos_id": bos,
        "documents": len(docs),
        "train_tokens": len(train),
        "val_tokens": len(val),
        "files": [f.name for f in written],
    }
    (out_dir / f"{prefix}_meta.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def decode_bytes(tokens: np.ndarray) -> list[str]:
    """Inverse of the byte tokenizer: the documents (text between BOS tokens) of ``tokens``."""
    tokens = np.asarray(tokens)
    cuts = np.flatnonzero(tokens == BYTE_BOS)
    return [
        bytes(tokens[a + 1 : b].astype(np.uint8)).decode("utf-8", errors="replace")
        for a, b in zip(cuts, [*cuts[1:], len(tokens)], strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# FineWeb (pre-tokenised GPT-2 shards on the Hugging Face hub)

FINEWEB_REPO = "kjj0/fineweb10B-gpt2"


def fineweb_names(n_train_shards: int) -> list[str]:
    """The val shard and the first ``n_train_shards`` train shards (upstream numbers train from 1)."""
    return ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in range(1, n_train_shards + 1)]


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "could not get the file from the hub" (network, offline, missing)."""
    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        from huggingface_hub import errors as hf_errors

        errors += [hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, hf_errors.EntryNotFoundError]
    with contextlib.suppress(ImportError):
        import httpx

        errors.append(httpx.HTTPError)
    with contextlib.suppress(ImportError):
        import requests

        errors.append(requests.RequestException)
    return tuple(errors)


def _shard_ok(path: Path) -> bool:
    try:
        read_header(path)
    except DataError:
        return False
    return True


def fetch_fineweb(
    n_train_shards: int,
    out_dir: str | Path,
    *,
    repo_id: str = FINEWEB_REPO,
    download: Callable[..., str] | None = None,
    endpoint: str | None = None,
) -> dict:
    """Downloads ``fineweb_val_000000.bin`` and ``n_train_shards`` train shards into ``out_dir``.

    Present files with a valid header are kept; every downloaded file's header and size are
    checked. ``download`` defaults to ``huggingface_hub.hf_hub_download`` (same keywords);
    ``endpoint`` points it at another hub. Offline, it raises a one-line DataError that says how
    to copy the shards by hand.
    """
    if n_train_shards < 1:
        raise DataError(f"n_train_shards: {n_train_shards}; must be at least 1 (each is 100M tokens, 200 MB)")
    if download is None:
        from huggingface_hub import hf_hub_download as download
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched, kept = [], []
    for name in fineweb_names(n_train_shards):
        if _shard_ok(out_dir / name):
            kept.append(name)
            continue
        kwargs = {"repo_id": repo_id, "filename": name, "repo_type": "dataset", "local_dir": str(out_dir)}
        if endpoint is not None:
            kwargs["endpoint"] = endpoint
        try:
            got = Path(download(**kwargs))
        except _hub_errors() as e:
            raise DataError(
                f"could not fetch {name} from the Hugging Face hub ({repo_id}: {type(e).__name__}); "
                f"copy fineweb_val_000000.bin and fineweb_train_000001.bin ... by hand into {out_dir}"
            ) from None
        if got.resolve() != (out_dir / name).resolve():
            shutil.copyfile(got, out_dir / name)
        read_header(out_dir / name)
        fetched.append(name)
    return {"out_dir": str(out_dir), "fetched": fetched, "kept": kept, "repo_id": repo_id}


# ---------------------------------------------------------------------------------------------
# Inspection and the command line


def _guess_bos(max_token: int) -> int:
    """The BOS of the corpora we make: bytes 256, synth 1023, GPT-2 50256 (smallest that fits)."""
    return next((b for b in (BYTE_BOS, 1023, 50256) if max_token <= b), 50256)


def inspect_shards(files: Sequence[str | Path], bos_id: int | None = None) -> dict:
    """Token count, BOS count and document length stats (tokens from a BOS to the next BOS).

    One shard at a time (FineWeb shards are 200 MB each); a document is counted within its
    shard, so one that crosses a shard boundary counts as two.
    """
    shards = {str(f): read_shard(f) for f in files}
    total = sum(len(t) for t in shards.values())
    if not total:
        raise DataError(f"{len(shards)} shard(s) hold no tokens")
    max_token = max(int(t.max()) for t in shards.values() if len(t))
    bos = _guess_bos(max_token) if bos_id is None else bos_id
    lengths = []
    for tokens in shards.values():
        starts = np.flatnonzero(np.asarray(tokens) == bos)
        lengths.append(np.diff(np.append(starts, len(tokens))))
    lengths = np.concatenate(lengths)
    stats = {
        "files": {name: len(t) for name, t in shards.items()},
        "tokens": total,
        "max_token": max_token,
        "bos_id": bos,
        "bos_guessed": bos_id is None,
        "bos_count": int(lengths.size),
        "identity": shard_identity(files),
    }
    if lengths.size:
        q = np.percentile(lengths, [50, 90, 99])
        stats["doc_len"] = {
            "mean": round(float(lengths.mean()), 1),
            "median": float(q[0]),
            "p90": float(q[1]),
            "p99": round(float(q[2]), 1),
            "max": int(lengths.max()),
        }
    return stats


def cmd_synth(args: argparse.Namespace) -> dict:
    return synth_corpus(
        args.out,
        vocab_size=args.vocab_size,
        bos_id=args.bos_id,
        train_tokens=args.train_tokens,
        val_tokens=args.val_tokens,
        seed=args.seed,
        shard_tokens=args.shard_tokens,
        prefix=args.prefix,
        mean_doc_len=args.mean_doc_len,
    )


def cmd_text(args: argparse.Namespace) -> dict:
    return tokenize_text(
        args.files,
        args.out,
        val_fraction=args.val_fraction,
        tokenizer=args.tokenizer,
        prefix=args.prefix,
        paragraphs=args.paragraphs,
        shard_tokens=args.shard_tokens,
    )


def cmd_fineweb(args: argparse.Namespace) -> dict:
    return fetch_fineweb(args.n_train_shards, args.out, repo_id=args.repo_id)


def cmd_inspect(args: argparse.Namespace) -> dict:
    files = [
        p for pattern in args.files for p in (match_shards(pattern) if glob.has_magic(pattern) else [pattern])
    ]
    return inspect_shards(files, args.bos_id)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.data",
        description="Make, fetch and inspect token shards "
        "(modded-nanogpt .bin format: 256 x int32 header, then uint16 tokens).",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="{synth,text,fineweb,english,bpe,inspect}")
    s = sub.add_parser("synth", help="write a deterministic structured synthetic corpus")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument(
        "--vocab-size", type=_positive, default=1024, help="1024 (tiny preset) or 50257 (GPT-2 sized)"
    )
    s.add_argument("--bos-id", type=int, default=None, help="document separator (default vocab_size - 1)")
    s.add_argument("--train-tokens", type=_positive, default=SYNTH_TRAIN_TOKENS)
    s.add_argument("--val-tokens", type=_positive, default=SYNTH_VAL_TOKENS)
    s.add_argument("--shard-tokens", type=_positive, default=100_000_000, help="tokens per shard file")
    s.add_argument("--seed", type=int, default=SYNTH_SEED)
    s.add_argument("--mean-doc-len", type=_positive, default=256, help="median document length in tokens")
    s.add_argument(
        "--prefix",
        default="synth",
        help="file names {prefix}_train_000000.bin ...; 'fineweb' makes upstream's names",
    )
    s.set_defaults(func=cmd_synth)
    t = sub.add_parser("text", help="tokenise local UTF-8 text files (no downloads)")
    t.add_argument("files", nargs="+", type=Path)
    t.add_argument("--out", type=Path, required=True, help="output folder")
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument(
        "--tokenizer",
        choices=("auto", "gpt2", "bytes"),
        default="auto",
        help="auto: GPT-2 BPE if tiktoken has it offline, else bytes (vocab 257, BOS 256)",
    )
    t.add_argument("--paragraphs", action="store_true", help="one document per blank-line paragraph")
    t.add_argument("--prefix", default="text")
    t.add_argument("--shard-tokens", type=_positive, default=100_000_000)
    t.set_defaults(func=cmd_text)
    f = sub.add_parser("fineweb", help=f"download pre-tokenised FineWeb shards ({FINEWEB_REPO})")
    f.add_argument(
        "n_train_shards", type=_positive, help="train shards of 100M tokens (8 suffice for a record)"
    )
    f.add_argument("--out", type=Path, default=Path("data/fineweb10B"), help="output folder")
    f.add_argument("--repo-id", default=FINEWEB_REPO)
    f.set_defaults(func=cmd_fineweb)
    from trainer.english.cli import add_parsers

    add_parsers(sub)
    i = sub.add_parser("inspect", help="token counts, BOS count and document lengths of shards")
    i.add_argument("files", nargs="+", help="shard files or glob patterns")
    i.add_argument("--bos-id", type=int, default=None, help="default: guessed from the largest token")
    i.set_defaults(func=cmd_inspect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one verb and prints its summary as JSON; a DataError is one line on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        summary = args.func(args)
    except DataError as e:
        print(f"python -m trainer.data: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # run the imported module's main: errors raised there are trainer.data's
    from trainer.data import main as _main

    sys.exit(_main())
