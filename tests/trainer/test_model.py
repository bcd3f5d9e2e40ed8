"""The GPT: baseline shapes and counts, what each seed knob changes, the attention masks, determinism."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from trainer import attention as A
from trainer.config import ConfigError, resolve
from trainer.model import DoubleMLP, GatedMLP, ReluSquaredMLP, build_model, count_parameters, resolve_backends

torch.set_num_threads(1)

C, HID = 768, 3072
# Baseline (PR 118) parameters: 4 embeddings of 50304 x 768 (token + 3 value tables), the lm_head,
# 11 attention layers of 4 x 768 x 768 + a 6 x 12 gate, 12 MLPs of 2 x 768 x 3072, 54 scalars.
BASELINE_PARAMS = 275_743_566


def meta(**overrides):
    return build_model(resolve(None, overrides), "meta")


def test_default_model_is_the_baseline():
    model = meta()
    assert count_parameters(model) == BASELINE_PARAMS
    assert model.embed.weight.shape == (50304, C) and model.lm_head.weight.shape == (50304, C)
    assert sorted(model.value_embeds) == ["0", "1", "2"]
    assert [b.attn is None for b in model.blocks] == [i == 7 for i in range(12)]
    assert all(isinstance(b.mlp, ReluSquaredMLP) for b in model.blocks)
    assert model.blocks[0].attn.qkvo_w.shape == (4, C, C) and model.blocks[0].attn.gate_w.shape == (6, 12)
    assert model.blocks[0].mlp.c_fc.shape == model.blocks[0].mlp.c_proj.shape == (C, HID)
    assert [b.long_window for b in model.blocks] == [i in (0, 4, 7, 11) for i in range(12)]
    sizes = {k: sum(p.numel() for p in v) for k, v in model.param_groups().items()}
    assert sizes == {"hidden": 82_576_152, "embed": 4 * 50304 * C, "head": 50304 * C, "scalar": 54}


def _assert_partition(model):
    groups = model.param_groups()
    assert set(groups) == {"hidden", "embed", "head", "scalar"}
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert all(p.ndim >= 2 for p in groups["hidden"]) and all(p.ndim < 2 for p in groups["scalar"])


def test_param_groups_partition_the_parameters():
    _assert_partition(meta())
    _assert_partition(
        meta(mlp_kind={3: "glu", 6: "double"}, double_residual=True, attn_paths={0: 2}, mlp_paths={1: 2})
    )


def test_mlp_off_removes_exactly_one_mlp():
    model = meta(mlp_off=[0])
    assert model.blocks[0].mlp is None and model.blocks[1].mlp is not None
    assert BASELINE_PARAMS - count_parameters(model) == 2 * C * HID
    assert count_parameters(meta(mlp_paths={0: 0})) == count_parameters(model)


def test_attn_off_and_paths():
    assert BASELINE_PARAMS - count_parameters(meta(attn_off=[3, 7])) == 4 * C * C + 6 * 12
    two = meta(attn_paths={0: 2})
    attn = two.blocks[0].attn
    # 2 paths = 12 heads reading the same input; one projection back to the width
    assert attn.heads == 12 and attn.qkvo_w.shape == (4, 2 * C, C) and attn.gate_w.shape == (12, 12)
    assert count_parameters(two) - BASELINE_PARAMS == 4 * C * C + 6 * 12
    three = meta(mlp_paths={1: 3}).blocks[1].mlp
    assert three.c_fc.shape == three.c_proj.shape == (C, 3 * HID)


def test_glu_shapes():
    model = meta(mlp_kind={0: "glu", 11: "glu"}, glu_hidden=1024)
    for i in (0, 11):
        mlp = model.blocks[i].mlp
        assert isinstance(mlp, GatedMLP)
        assert mlp.c_gate.shape == mlp.c_up.shape == mlp.c_proj.shape == (C, 1024)
    assert count_parameters(model) - BASELINE_PARAMS == 2 * (3 * C * 1024 - 2 * C * HID)
    assert meta(mlp_kind="glu").blocks[5].mlp.c_gate.shape == (C, HID)  # default glu hidden = 4 x width


def _double(**flags) -> DoubleMLP:
    torch.manual_seed(0)
    cfg = resolve("tiny", {"mlp_kind": {6: "double"}, **flags})
    return build_model(cfg, "cpu").blocks[6].mlp


def test_double_mlp_shapes_and_flags():
    base = _double()
    c = base.dim
    assert [tuple(w.shape) for w in base.c_mid] == [(c, 4 * c)] * 4  # the MLP matrix shape, for Muon
    assert base.c_fc.shape == base.c_proj.shape == (c, 4 * c) and base.residual_w is None
    assert all(w.abs().sum() > 0 for w in base.c_mid)
    assert all((w == 0).all() for w in _double(double_zero_init=True).c_mid)
    identity = torch.cat(list(_double(double_zero_init=True, double_diagonal=True).c_mid), dim=0)
    assert torch.equal(identity, torch.eye(4 * c))
    diag = torch.cat(list(_double(double_diagonal=True).c_mid), dim=0)
    assert torch.equal(diag.diagonal(), torch.ones(4 * c)) and diag.abs().sum() > 4 * c
    res = _double(double_residual=True)
    assert res.residual_w.shape == (1,) and res.residual_w.item() == 0.5
    assert count_parameters(res) == count_parameters(base) + 1


@torch.no_grad()
def test_double_mlp_norm_flags_change_the_function():
    x = torch.randn(5, 64)
    outs = {}
    for name in ("none", "double_norm_first", "double_norm_mid"):
        mlp = _double(**({} if name == "none" else {name: True}))
        mlp.c_proj.normal_()  # the zero-init output would hide everything
        outs[name] = (mlp(x), mlp(2 * x))
    # Without a norm the MLP is homogeneous of degree 4 (ReLU^2, linear, ReLU^2, linear) ...
    torch.testing.assert_close(outs["none"][1], 16 * outs["none"][0], rtol=1e-4, atol=1e-4)
    # ... a norm after either stage makes it scale-invariant.
    for name in ("double_norm_first", "double_norm_mid"):
        torch.testing.assert_close(outs[name][1], outs[name][0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(outs["double_norm_first"][0], outs["double_norm_mid"][0])


def test_double_mlp_residual_adds_the_input_per_chunk():
    mlp = _double(double_residual=True, double_zero_init=True)
    with torch.no_grad():
        mlp.c_proj.normal_()
        x = torch.randn(3, 64)
        # zero intermediate: the pre-activation is exactly 0.5 * x in each of the four chunks
        expected = F.linear(F.relu(0.5 * x.repeat(1, 4)).square(), mlp.c_proj)
        torch.testing.assert_close(mlp(x), expected)


def test_unused_value_tables_are_not_created():
    assert sorted(meta(ve_pattern="- 0 - - - - - - - - 0 -").value_embeds) == ["0"]
    assert sorted(meta(ve_pattern="0 1 - - - - - 2 - - 0 1").value_embeds) == ["0", "1"]  # 7 has no attention
    x0 = meta(ve_pattern="- 0 1 2 - - - - - x0 1 2")
    assert sorted(x0.value_embeds) == ["0", "1", "2"]
    assert count_parameters(meta(ve_pattern="x0 - - - - - - - - - - x0")) == BASELINE_PARAMS - 3 * 50304 * C


def test_backends_on_cpu():
    cfg = resolve("tiny", {})
    assert resolve_backends(cfg, "cpu").attn == "sdpa"
    assert not resolve_backends(resolve(None, {}), "cpu").fp8
    with pytest.raises(ConfigError, match="^attn_impl: flex needs CUDA"):
        resolve_backends(resolve("pr117", {}), "cpu")
    with pytest.raises(ConfigError, match="^fp8_head: on needs a CUDA GPU"):
        resolve_backends(resolve("tiny", {"fp8_head": "on"}), "cpu")


# ----------------------------------------------------------------------------- forward on the tiny config


def _batch(seed: int, T: int = 256, bos: int = 1023):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 1000, (T + 1,), generator=g)
    tokens[torch.tensor([0, 37, 90, 91, 180])] = bos  # several documents, one of length 1
    return tokens[:-1], tokens[1:]


def _loss_and_grads(seed: int, **overrides):
    torch.manual_seed(seed)
    model = build_model(resolve("tiny", overrides), "cpu")
    inputs, targets = _batch(0)
    loss = model(inputs, targets, 48)
    loss.backward()
    return model, loss, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_tiny_forward_backward_at_init():
    model, loss, grads = _loss_and_grads(0)
    # the zero-init lm_head makes every logit equal: the loss is exactly ln(vocab) per token
    assert math.isclose(loss.item() / 256, math.log(1024), rel_tol=1e-5)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["lm_head.weight"].abs().sum() > 0
    model.eval()
    inputs, targets = _batch(0)
    with torch.no_grad():
        assert math.isclose(model(inputs, targets, 48).item(), loss.item() / 256, rel_tol=1e-5)  # eval: mean


def test_same_seed_same_result_different_seed_different():
    _, loss_a, grads_a = _loss_and_grads(1)
    _, loss_b, grads_b = _loss_and_grads(1)
    _, _, grads_c = _loss_and_grads(2)
    assert loss_a.item() == loss_b.item()
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert not torch.allclose(grads_a["lm_head.weight"], grads_c["lm_head.weight"])


def test_every_knob_variant_runs_and_every_parameter_gets_a_gradient():
    _, loss, grads = _loss_and_grads(
        0,
        mlp_kind={1: "glu", 6: "double"},
        glu_activation="relu2",
        double_norm_first=True,
        double_residual=True,
        attn_paths={0: 2},
        mlp_paths={0: 0, 2: 2},
        ve_pattern="- 0 1 - - - - - - x0 0 1",
        ve_norm=True,
        unet=False,
        window_granularity="block",
    )
    assert torch.isfinite(loss)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())


def test_tiny_model_learns():
    torch.manual_seed(0)
    model = build_model(resolve("tiny", {}), "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    inputs, targets = _batch(3)
    losses = []
    for _ in range(15):
        loss = model(inputs, targets, 48) / 256
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


# ----------------------------------------------------------------------------- attention masks


def _naive_attention(q, k, v, docs, window, rule, scale):
    """Loop over queries; each attends over the keys the rule allows, written out longhand."""
    T = q.size(0)
    out = torch.empty_like(q)
    for i in range(T):
        keys = []
        for j in range(i + 1):
            if docs[j] != docs[i]:
                continue
            if rule.granularity == "token" and i - j > window:
                continue
            if (
                rule.granularity == "block"
                and i // rule.block_size - j // rule.block_size >= window // rule.block_size
            ):
                continue
            if rule.max_doc_len is not None and i - j >= rule.max_doc_len:
                continue
            keys.append(j)
        idx = torch.tensor(keys)
        att = torch.einsum("hd,khd->hk", q[i], k[idx]) * scale  # (H, keys)
        out[i] = torch.einsum("hk,khd->hd", att.softmax(-1), v[idx])
    return out


RULES = [
    (A.MaskRule(16, "token", None), 40),
    (A.MaskRule(16, "block", None), 48),
    (A.MaskRule(16, "token", 24), 40),
]


@pytest.mark.parametrize(("rule", "window"), RULES, ids=["token", "block", "doc-cap"])
def test_masked_attention_equals_naive(rule, window):
    T, H, D = 320, 2, 8
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (T,), generator=g)
    tokens[torch.tensor([5, 60, 61, 200, 290])] = 99  # tokens before 5 form document 0
    docs = A.document_ids(tokens, 99)
    q, k, v = (torch.randn(T, H, D, generator=g) for _ in range(3))
    mask = A.dense_mask(docs, window, rule)
    got = A.sdpa_attend(q, k, v, mask, 0.12)
    torch.testing.assert_close(got, _naive_attention(q, k, v, docs, window, rule, 0.12), rtol=1e-5, atol=1e-5)
    # a tensor window (what the flex path receives) builds the same mask
    assert torch.equal(A.dense_mask(docs, torch.tensor(window), rule), mask)


@pytest.mark.parametrize(("rule", "window"), RULES, ids=["token", "block", "doc-cap"])
def test_flex_block_masks_cover_exactly_the_allowed_pairs(rule, window):
    T, bs = 320, rule.block_size
    tokens = torch.randint(0, 50, (T,), generator=torch.Generator().manual_seed(1))
    tokens[torch.tensor([5, 60, 61, 200, 290])] = 99
    docs = A.document_ids(tokens, 99)
    dense = A.dense_mask(docs, window, rule).view(T // bs, bs, T // bs, bs)
    some, every = dense.any(dim=(1, 3)), dense.all(dim=(1, 3))
    any_ok, all_ok = A._block_any_all(docs, window, rule)
    assert torch.equal(all_ok, every)  # full blocks skip the mask_mod: they must be exact
    assert (any_ok | ~some).all()  # every block with an allowed pair is visited


def test_flex_eager_matches_dense_on_cpu():
    rule, window = A.MaskRule(16, "token", None), 40
    tokens = torch.randint(0, 50, (128,), generator=torch.Generator().manual_seed(2))
    tokens[torch.tensor([0, 30, 70, 71, 100])] = 99
    docs = A.document_ids(tokens, 99)
    q, k, v = (torch.randn(128, 2, 16) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = A.flex_attend(q, k, v, A.flex_block_mask(docs, window, rule), 0.12)
    torch.testing.assert_close(got, A.sdpa_attend(q, k, v, A.dense_mask(docs, window, rule), 0.12))


def test_fa3_document_starts():
    tokens = torch.tensor([5, 9, 9, 7, 9, 1, 2, 3])
    assert A.fa3_doc_starts(tokens, 9, 6).tolist() == [0, 1, 2, 4, 8, 8, 8]
    assert A.fa3_doc_starts(torch.tensor([9, 1, 9, 2]), 9, 3).tolist() == [0, 2, 4, 4]
    assert (
        A.short_window(384, 128) == 128
        and A.short_window(1408, 128) == 640
        and A.short_window(128, 128) == 128
    )
