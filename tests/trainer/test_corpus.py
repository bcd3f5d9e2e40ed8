"""The corpus tools of trainer.corpus: synthetic text, local text, FineWeb, inspection, the CLI."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer import corpus, data
from trainer.data import DataError

BOS = 9  # hand-made corpora: content tokens 0..8, BOS 9

# ---------------------------------------------------------------------------------------------
# Synthetic corpus


def entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def copied_fraction(tokens: np.ndarray, bos: int, k: int = 16) -> float:
    """Share of positions that end a k-gram seen earlier in the same document (chance: ~0)."""
    hits = total = 0
    starts = np.flatnonzero(tokens == bos).tolist() + [len(tokens)]
    for a, b in itertools.pairwise(starts):
        doc = tokens[a + 1 : b].tolist()
        seen: set[tuple[int, ...]] = set()
        for i in range(len(doc) - k + 1):
            gram = tuple(doc[i : i + k])
            hits += gram in seen
            seen.add(gram)
        total += len(doc)
    return hits / total


def test_synth_is_deterministic(tmp_path: Path):
    kw = dict(train_tokens=20_000, val_tokens=4_000, seed=3, shard_tokens=8_000)
    a = corpus.synth_corpus(tmp_path / "a", **kw)
    corpus.synth_corpus(tmp_path / "b", **kw)
    corpus.synth_corpus(tmp_path / "c", **{**kw, "seed": 4})
    assert a["files"] == [
        "synth_val_000000.bin",
        "synth_train_000000.bin",
        "synth_train_000001.bin",
        "synth_train_000002.bin",
    ]
    for name in a["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "synth_train_000000.bin").read_bytes() != (
        tmp_path / "c" / "synth_train_000000.bin"
    ).read_bytes()


def test_synth_has_learnable_and_attention_only_structure(tmp_path: Path):
    s = corpus.synth_corpus(tmp_path, train_tokens=400_000, val_tokens=1_000, seed=0, mean_doc_len=128)
    assert s["bos_id"] == 1023
    tokens = np.asarray(data.read_shard(tmp_path / "synth_train_000000.bin")).astype(np.int64)
    assert tokens[0] == 1023 and tokens.max() == 1023
    unigram = entropy_bits(np.bincount(tokens, minlength=1024))
    pairs = np.bincount(tokens[:-1] * 1024 + tokens[1:], minlength=1024 * 1024).reshape(1024, 1024)
    conditional = sum(entropy_bits(r) * r.sum() for r in pairs if r.sum()) / pairs.sum()
    assert unigram > 6.0 and conditional < unigram - 2.0  # measured: ~6.8 vs ~4.0 bits
    lengths = np.diff(np.flatnonzero(tokens == 1023))
    assert 80 < np.median(lengths) < 200 and lengths.std() > 30  # varied documents
    assert copied_fraction(tokens[:100_000], 1023) > 0.05  # copy spans (measured ~0.1)


def test_synth_gpt2_vocab_and_upstream_names(tmp_path: Path):
    s = corpus.synth_corpus(
        tmp_path, vocab_size=50257, train_tokens=30_000, val_tokens=5_000, seed=1, prefix="fineweb"
    )
    assert s["bos_id"] == 50256
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fineweb_train_000000.bin",
        "fineweb_val_000000.bin",
    ]
    val = data.read_shard(tmp_path / "fineweb_val_000000.bin")
    assert len(val) == 5_000 and val.max() <= 50256


def _ensure_in_child(cache: str, barrier, queue) -> None:
    barrier.wait()
    queue.put(str(corpus.ensure_synth(Path(cache))))


def test_ensure_synth_concurrent_processes_make_one_corpus(tmp_path: Path):
    (tmp_path / ".synth-v1.killed").mkdir()  # a temp folder left by a generator that was killed
    (tmp_path / ".synth-v1.killed" / "synth_train_000000.bin").write_bytes(b"partial")
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    paths = {queue.get(timeout=5), queue.get(timeout=5)}
    assert paths == {str(tmp_path / "synth-v1")}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synth-v1.lock", "synth-v1"]  # no temp folder
    folder = tmp_path / "synth-v1"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["done.json", "synth_train_000000.bin", "synth_train_000001.bin", "synth_val_000000.bin"]
    assert json.loads((folder / "done.json").read_text())["train_tokens"] == 2_097_152
    mtime = (folder / "done.json").stat().st_mtime_ns
    assert corpus.ensure_synth(tmp_path) == folder and (folder / "done.json").stat().st_mtime_ns == mtime


def test_ensure_synth_default_location_follows_env(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA_DIR", str(tmp_path / "cache"))
    assert data.default_data_root() == tmp_path / "cache"
    monkeypatch.delenv("ABLATE_DATA_DIR")
    assert data.default_data_root() == Path.home() / ".cache" / "ablate" / "data"


# ---------------------------------------------------------------------------------------------
# Text and FineWeb


def test_text_byte_tokenizer_round_trip(tmp_path: Path):
    texts = ["Hello, wörld! ✓\nsecond line", "A second document.", "Third: the last one, for val."]
    files = []
    for i, text in enumerate(texts):
        files.append(tmp_path / f"doc{i}.txt")
        files[-1].write_text(text, encoding="utf-8")
    s = corpus.tokenize_text(files, tmp_path / "out", val_fraction=0.2, tokenizer="bytes")
    assert (s["tokenizer"], s["vocab_size"], s["bos_id"], s["documents"]) == ("bytes", 257, 256, 3)
    train = data.read_shard(tmp_path / "out" / "text_train_000000.bin")
    val = data.read_shard(tmp_path / "out" / "text_val_000000.bin")
    assert corpus.decode_bytes(train) + corpus.decode_bytes(val) == texts
    assert corpus.decode_bytes(val) == texts[-1:]
    assert json.loads((tmp_path / "out" / "text_meta.json").read_text())["tokenizer"] == "bytes"


def test_text_single_document_is_split_and_val_gets_its_own_bos(tmp_path: Path):
    (tmp_path / "one.txt").write_text("x" * 100)
    s = corpus.tokenize_text([tmp_path / "one.txt"], tmp_path / "out", val_fraction=0.25, tokenizer="bytes")
    train = data.read_shard(tmp_path / "out" / "text_train_000000.bin")
    val = data.read_shard(tmp_path / "out" / "text_val_000000.bin")
    assert (s["train_tokens"], s["val_tokens"]) == (76, 26)  # BOS + 75 x | BOS + 25 x
    assert train[0] == 256 and val[0] == 256 and corpus.decode_bytes(val) == ["x" * 25]


def test_text_auto_tokenizer_names_the_one_used(tmp_path: Path):
    (tmp_path / "a.txt").write_text("alpha beta\n\ngamma delta\n\nepsilon")
    s = corpus.tokenize_text([tmp_path / "a.txt"], tmp_path / "out", val_fraction=0.3, paragraphs=True)
    assert s["documents"] == 3 and s["tokenizer"] == ("gpt2" if corpus._tiktoken_offline() else "bytes")
    assert json.loads((tmp_path / "out" / "text_meta.json").read_text())["tokenizer"] == s["tokenizer"]
    with pytest.raises(DataError, match="no text in 1 file"):
        (tmp_path / "empty.txt").write_text("\n\n")
        corpus.tokenize_text([tmp_path / "empty.txt"], tmp_path / "out2")


def fake_hub(tmp_path: Path, n_train: int) -> Path:
    hub = tmp_path / "hub"
    for i, name in enumerate(corpus.fineweb_names(n_train)):
        data.write_shard(hub / name, np.full(10 + i, 50256))
    return hub


def test_fetch_fineweb_from_local_fake_hub(tmp_path: Path):
    hub, calls = fake_hub(tmp_path, 3), []

    def download(*, repo_id, filename, repo_type, local_dir):
        calls.append((repo_id, filename, repo_type))
        cached = tmp_path / "hf-cache" / filename  # like hf_hub_download: may return a path elsewhere
        cached.parent.mkdir(exist_ok=True)
        shutil.copyfile(hub / filename, cached)
        return str(cached)

    out = tmp_path / "fw"
    s = corpus.fetch_fineweb(2, out, download=download)
    assert s["fetched"] == ["fineweb_val_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    assert calls[0] == ("kjj0/fineweb10B-gpt2", "fineweb_val_000000.bin", "dataset")
    assert len(data.read_shard(out / "fineweb_train_000002.bin")) == 12
    (out / "fineweb_train_000001.bin").write_bytes(b"garbage")  # a broken file is fetched again
    calls.clear()
    s = corpus.fetch_fineweb(3, out, download=download)
    assert [c[1] for c in calls] == ["fineweb_train_000001.bin", "fineweb_train_000003.bin"]
    assert s["kept"] == ["fineweb_val_000000.bin", "fineweb_train_000002.bin"]


def test_fetch_fineweb_offline_and_bad_download(tmp_path: Path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**_):
        raise LocalEntryNotFoundError("no connection")

    with pytest.raises(
        DataError, match="could not fetch fineweb_val_000000.bin from the Hugging Face hub"
    ) as e:
        corpus.fetch_fineweb(1, tmp_path / "fw", download=offline)
    assert "by hand" in str(e.value) and "\n" not in str(e.value)

    def bad(*, local_dir, filename, **_):
        (Path(local_dir) / filename).write_bytes(b"\0" * 2000)
        return str(Path(local_dir) / filename)

    with pytest.raises(DataError, match="magic number 0"):
        corpus.fetch_fineweb(1, tmp_path / "fw2", download=bad)


# ---------------------------------------------------------------------------------------------
# Command line


def test_cli_synth_and_inspect(tmp_path: Path, capsys):
    rc = corpus.main(["synth", "--out", str(tmp_path), "--train-tokens", "5000", "--val-tokens", "1000"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["bos_id"] == 1023
    assert corpus.main(["inspect", str(tmp_path / "*val*.bin")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tokens"] == 1000 and stats["bos_id"] == 1023 and stats["bos_guessed"]
    assert stats["bos_count"] >= 1 and stats["doc_len"]["max"] <= 1000


def test_inspect_counts_hand_made_shard(tmp_path: Path):
    path = data.write_shard(tmp_path / "x.bin", np.array([BOS, 1, 2, BOS, 3, BOS, 4, 5, 6, 7]))
    stats = corpus.inspect_shards([path], bos_id=BOS)
    assert (stats["tokens"], stats["bos_count"], stats["doc_len"]["max"], stats["doc_len"]["median"]) == (
        10,
        3,
        5,
        3,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "does/not/exist.bin"], "does/not/exist.bin: cannot read shard"),
        (["inspect", "nowhere/*.bin"], "no shard matches 'nowhere/*.bin'"),
        (["synth", "--out", "{tmp}", "--vocab-size", "70000"], "vocab_size: 70000; must be in [3, 65536]"),
        (["text", "{tmp}/missing.txt", "--out", "{tmp}"], "missing.txt: cannot read as UTF-8 text"),
        (["text", "{tmp}/missing.txt", "--out", "{tmp}", "--val-fraction", "1.5"], "val_fraction: 1.5"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys, argv, message):
    assert corpus.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("python -m trainer.data: error:")


def test_cli_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        corpus.main(["fineweb", "0"])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "--out", "{tmp}", "--train-tokens", "0"], "argument --train-tokens: 0 must be at least 1"),
        (["synth", "--out", "{tmp}", "--vocab-size", "abc"], "'abc' is not a whole number; give one of at"),
        (["synth"], "synth: error: the following arguments are required: --out"),
        (["text", "--out", "{tmp}"], "text: error: the following arguments are required: files"),
        (["text", "a", "--out", "{tmp}", "--tokenizer", "bpe"], "--tokenizer: invalid choice: 'bpe'"),
        (["english", "--out", "{tmp}", "--min-score", "x"], "argument --min-score: 'x' is not a number"),
        (["nope"], "invalid choice: 'nope' (choose from 'synth', 'text', 'fineweb', 'english', 'bpe',"),
    ],
)  # fmt: skip
def test_cli_usage_errors_are_one_line_naming_the_verbs_help(tmp_path: Path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        corpus.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    verb = f" {argv[0]}" if argv[0] != "nope" else ""
    assert e.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert message in err and err.endswith(f"; see python -m trainer.data{verb} --help\n"), err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "--out", "{tmp}/file"], "--out {tmp}/file: is a file, not a folder"),
        (["synth", "--out", "{tmp}/file/sub"], "--out {tmp}/file/sub: cannot be made, {tmp}/file is a file"),
        (["text", "{tmp}/a.txt", "--out", "{tmp}/file"], "--out {tmp}/file: is a file, not a folder"),
        (["fineweb", "1", "--out", "{tmp}/file"], "--out {tmp}/file: is a file, not a folder"),
        (["english", "--out", "{tmp}/file", "--no-fetch"], "--out {tmp}/file: is a file, not a folder"),
        (["english", "--out", "{tmp}/o", "--cache", "{tmp}/file/c"], "--cache {tmp}/file/c: cannot be made"),
        (["bpe", "--cache", "{tmp}/file", "--no-fetch"], "--cache {tmp}/file: is a file, not a folder"),
    ],
)  # fmt: skip
def test_cli_out_and_cache_are_checked_before_any_work(tmp_path: Path, capsys, monkeypatch, argv, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "a.txt").write_text("some text to tokenise")
    monkeypatch.setattr(corpus, "tokenize_text", None)  # reached, these would fail otherwise
    monkeypatch.setattr(corpus, "fetch_fineweb", None)
    assert corpus.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.replace("{tmp}", str(tmp_path)) in err, err


def test_cli_an_os_error_while_writing_is_one_line_naming_the_path(tmp_path: Path, capsys):
    (tmp_path / "synth_val_000000.bin").mkdir()  # a folder where the first shard goes
    argv = ["synth", "--out", str(tmp_path), "--train-tokens", "500", "--val-tokens", "100"]
    assert corpus.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.endswith(f"-> {tmp_path / 'synth_val_000000.bin'}: Is a directory\n"), err


def test_tiktoken_missing_is_one_line_saying_how_to_install_it(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # `import tiktoken` raises ImportError
    (tmp_path / "a.txt").write_text("hello world")
    for argv in (
        ["english", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--no-fetch"],
        ["bpe", "--cache", str(tmp_path / "c"), "--no-fetch"],
        ["text", str(tmp_path / "a.txt"), "--out", str(tmp_path / "t"), "--tokenizer", "gpt2"],
    ):
        assert corpus.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "GPT-2 BPE needs tiktoken, which does not import" in err
        assert err.endswith("install it: pip install -e '.[test]' (what scripts/setup.sh runs) or "
                            "pip install 'tiktoken>=0.7'\n"), err  # fmt: skip
    assert not (tmp_path / "c" / "packages").exists()  # said before anything was fetched


def test_cli_fineweb_offline_subprocess(tmp_path: Path):
    """The real hf_hub_download with the hub switched off: exit 2, one line, no traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.data", "fineweb", "1", "--out", str(tmp_path / "fw")],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "could not fetch fineweb_val_000000.bin" in proc.stderr
