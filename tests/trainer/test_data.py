"""Shards, the BOS-aligned loader and validation batches of trainer.data."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import data
from trainer.data import DataError

BOS = 9  # hand-made corpora: content tokens 0..8, BOS 9


def make_docs(rng: np.random.Generator, n_docs: int, lo: int = 1, hi: int = 40) -> list[np.ndarray]:
    """Documents as BOS + random content, lengths in [lo, hi] content tokens."""
    return [
        np.concatenate([[BOS], rng.integers(0, BOS, size=rng.integers(lo, hi + 1))]) for _ in range(n_docs)
    ]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[str, list[list[np.ndarray]]]:
    """Two train shards of documents; the first shard starts mid-document (no leading BOS)."""
    rng = np.random.default_rng(7)
    shards = [make_docs(rng, 60), make_docs(rng, 45)]
    lead = np.array([3, 4, 5])  # tokens before the first BOS are never used
    data.write_shard(tmp_path / "c_train_000000.bin", np.concatenate([lead, *shards[0]]))
    data.write_shard(tmp_path / "c_train_000001.bin", np.concatenate(shards[1]))
    return str(tmp_path / "c_train_*.bin"), shards


def take(it, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(it) for _ in range(k)]


def reference_chunks(shards: list[list[np.ndarray]], n: int, max_doc_len: int | None, count: int):
    """A slow, obvious restatement of the aligned cut: fill n tokens from whole (capped) documents."""
    out = []
    while len(out) < count:
        for docs in shards:
            buf: list[int] = []
            for d in docs:
                piece = d[:max_doc_len] if max_doc_len else d
                buf.extend(piece[: n - len(buf)].tolist())
                if len(buf) == n:
                    out.append(np.array(buf))
                    buf = []
    return out[:count]


# ---------------------------------------------------------------------------------------------
# Shard format


def test_shard_round_trip(tmp_path: Path):
    tokens = np.array([0, 1, 65535, 50256, 7], dtype=np.int64)
    path = data.write_shard(tmp_path / "a.bin", tokens)
    back = data.read_shard(path)
    assert back.dtype == np.uint16 and back.tolist() == tokens.tolist()
    assert path.stat().st_size == 256 * 4 + 2 * len(tokens)
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[:3].tolist() == [20240520, 1, 5] and not header[3:].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # no temp file left behind


def test_write_shard_rejects_out_of_range(tmp_path: Path):
    with pytest.raises(DataError, match="uint16"):
        data.write_shard(tmp_path / "a.bin", np.array([70000]))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:100], "shorter than the 1024-byte shard header"),
        (lambda b: np.int32(123).tobytes() + b[4:], "magic number 123, expected 20240520"),
        (lambda b: b[:4] + np.int32(2).tobytes() + b[8:], "shard version 2, expected 1"),
        (lambda b: b[:-2], "header says 4 tokens"),
    ],
)
def test_header_validation(tmp_path: Path, mutate, message):
    good = data.write_shard(tmp_path / "good.bin", np.arange(4))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(mutate(good.read_bytes()))
    with pytest.raises(DataError, match=message) as err:
        data.read_shard(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_shard_identity_stable_and_content_sensitive(tmp_path: Path):
    a = data.write_shard(tmp_path / "a.bin", np.arange(100))
    b = data.write_shard(tmp_path / "b.bin", np.arange(50))
    ident = data.shard_identity([a, b])
    assert ident == data.shard_identity([b, a]) and len(ident) == 16
    data.write_shard(b, np.arange(1, 51))
    assert data.shard_identity([a, b]) != ident


# ---------------------------------------------------------------------------------------------
# The loader


@pytest.mark.parametrize("max_doc_len", [None, 8])
def test_aligned_chunks_match_reference_across_shards_and_epochs(corpus, max_doc_len):
    pattern, shards = corpus
    t = 32
    batches = data.DistributedBatches(pattern, t, 0, 1, bos_id=BOS, max_doc_len=max_doc_len)
    expected = reference_chunks(shards, t + 1, max_doc_len, 80)  # 80 chunks span both shards twice
    for (x, y), want in zip(take(batches, 80), expected, strict=True):
        assert x.dtype == torch.int64 and x.shape == (t,) and y.shape == (t,)
        assert x.tolist() == want[:-1].tolist() and y.tolist() == want[1:].tolist()
    batches.close()


def test_every_rank_chunk_starts_with_bos_and_caps_documents(corpus):
    pattern, _ = corpus
    for world in (1, 2, 3):
        for rank in range(world):
            it = data.DistributedBatches(pattern, 24, rank, world, bos_id=BOS, max_doc_len=10)
            for x, y in take(it, 20):
                assert x[0] == BOS
                assert torch.equal(x[1:], y[:-1])
                starts = torch.nonzero(torch.cat([x, y[-1:]]) == BOS).flatten().tolist() + [25]
                assert (
                    max(b - a for a, b in itertools.pairwise(starts)) <= 10
                )  # no document piece over the cap
            it.close()


@pytest.mark.parametrize("align", [True, False])
def test_two_ranks_equal_one_rank_accumulating(corpus, align):
    """W ranks at call k get exactly what one rank gets at calls k*W .. k*W+W-1 (same tokens_per_rank)."""
    pattern, _ = corpus
    one = take(data.DistributedBatches(pattern, 16, 0, 1, bos_id=BOS, align_to_bos=align, max_doc_len=12), 40)
    ranks = [
        data.DistributedBatches(pattern, 16, r, 2, bos_id=BOS, align_to_bos=align, max_doc_len=12)
        for r in (0, 1)
    ]
    for k in range(20):
        for r in (0, 1):
            x, y = next(ranks[r])
            assert torch.equal(x, one[2 * k + r][0]) and torch.equal(y, one[2 * k + r][1])


def test_unaligned_two_ranks_concatenate_to_one_rank_with_twice_the_tokens(tmp_path: Path):
    """Without alignment chunks are consecutive windows, so the ranks' halves make the 1-rank chunk."""
    data.write_shard(tmp_path / "u_train_0.bin", np.arange(1000) % 9)
    pattern = str(tmp_path / "u_train_*.bin")
    one = data.DistributedBatches(pattern, 64, 0, 1, bos_id=BOS, align_to_bos=False)
    halves = [data.DistributedBatches(pattern, 32, r, 2, bos_id=BOS, align_to_bos=False) for r in (0, 1)]
    for _ in range(15):  # 15 x 64 + 1 <= 1000: within the shard
        x, y = next(one)
        (x0, y0), (x1, y1) = next(halves[0]), next(halves[1])
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_loader_is_deterministic(corpus):
    pattern, _ = corpus
    a = take(data.DistributedBatches(pattern, 20, 1, 2, bos_id=BOS, max_doc_len=9), 30)
    b = take(data.DistributedBatches(pattern, 20, 1, 2, bos_id=BOS, max_doc_len=9), 30)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True))


def test_loader_errors(tmp_path: Path, corpus):
    pattern, _ = corpus
    missing = str(tmp_path / "nothing_*.bin")
    with pytest.raises(DataError, match="no shard matches") as err:
        data.DistributedBatches(missing, 8, 0, 1, bos_id=BOS)
    assert missing in str(err.value)
    with pytest.raises(DataError, match="rank 2 outside 0..1"):
        data.DistributedBatches(pattern, 8, 2, 2, bos_id=BOS)
    with pytest.raises(DataError, match="holds 100001 BOS-aligned tokens"):
        next(data.DistributedBatches(pattern, 100_000, 0, 1, bos_id=BOS))
    with pytest.raises(DataError, match="BOS-aligned"):  # a BOS that never occurs
        next(data.DistributedBatches(pattern, 8, 0, 1, bos_id=77))


# ---------------------------------------------------------------------------------------------
# Validation batches


def test_val_batches_cover_exactly_total_tokens(tmp_path: Path):
    data.write_shard(tmp_path / "v_val_0.bin", np.arange(300) % 9)
    data.write_shard(tmp_path / "v_val_1.bin", np.arange(300) % 7)
    pattern = str(tmp_path / "v_val_*.bin")
    single = list(data.val_batches(pattern, 512, 64, 0, 1, bos_id=BOS))
    assert len(single) == 8 and sum(x.numel() for x, _ in single) == 512
    per_rank = [list(data.val_batches(pattern, 512, 64, r, 2, bos_id=BOS)) for r in (0, 1)]
    assert [len(p) for p in per_rank] == [4, 4]
    interleaved = [per_rank[k % 2][k // 2] for k in range(8)]  # the same windows, dealt to two ranks
    assert all(torch.equal(a[1], b[1]) for a, b in zip(single, interleaved, strict=True))
    # 4 windows of 64 fit in each 300-token shard: the 5th..8th come from the second shard
    assert single[4][0][:5].tolist() == (np.arange(5) % 7).tolist()


def test_val_batches_errors(tmp_path: Path):
    data.write_shard(tmp_path / "v_val_0.bin", np.arange(300) % 9)
    pattern = str(tmp_path / "v_val_*.bin")
    with pytest.raises(DataError, match=r"multiple of tokens_per_rank x world_size = 64 x 2 = 128"):
        data.val_batches(pattern, 200, 64, 0, 2, bos_id=BOS)
    with pytest.raises(DataError, match="exceeds the 256 validation tokens"):
        data.val_batches(pattern, 512, 64, 0, 1, bos_id=BOS)
