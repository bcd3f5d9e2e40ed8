"""The knob registry, TrainConfig, presets and --set parsing (no torch needed)."""

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.config import (
    DEFAULT_PRESET,
    KNOBS,
    PRESETS,
    ConfigError,
    TrainConfig,
    config_to_dict,
    describe_knobs,
    knob_types,
    parse_set,
    resolve,
)
from trainer.schedule import grad_accum_for, short_window, window_sizes, window_tokens_at


def test_registry_and_trainconfig_fields_agree():
    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f in fields] == [k.name for k in KNOBS]
    assert len({k.name for k in KNOBS}) == len(KNOBS)
    for f, k in zip(fields, KNOBS, strict=True):
        assert f.default == k.default, k.name
        assert f.metadata["doc"] == k.doc
        assert len(k.doc) > 15, f"{k.name} needs a docstring"
        assert k.group in ("model", "train", "data", "system")


def test_defaults_are_the_seed_baseline():
    cfg = TrainConfig()
    assert cfg == resolve(None, {}) == resolve("speedrun", {})
    assert DEFAULT_PRESET == "speedrun"
    assert (cfg.num_layers, cfg.model_dim, cfg.num_heads, cfg.head_dim, cfg.vocab_size) == (
        12,
        768,
        6,
        128,
        50257,
    )
    assert cfg.attn_off == (7,) and cfg.mlp_off == ()
    assert cfg.attn_paths == (1,) * 7 + (0,) + (1,) * 4
    assert cfg.mlp_paths == (1,) * 12
    assert cfg.ve_pattern == (0, 1, 2, None, None, None, None, None, None, 0, 1, 2)
    assert cfg.mlp_kind == ("relu2",) * 12
    assert cfg.steps == 1670 and cfg.max_doc_len == 2048 and cfg.window_stages == (3, 7, 11)
    assert cfg.batch_tokens == 8 * 2048 * 24 and cfg.val_tokens == 10485760
    assert (cfg.lr_muon, cfg.lr_head, cfg.lr_embed, cfg.lr_scalar) == (0.05, 0.008, 0.6, 0.04)
    assert cfg.adam_betas == (0.8, 0.95) and cfg.adam_eps == 1e-10
    assert cfg.attn_gate and cfg.unet and cfg.attn_scale == 0.12 and cfg.logit_softcap == 30.0


def test_presets_resolve_and_differ_as_documented():
    cfgs = {name: resolve(name, {}) for name in PRESETS}
    assert set(cfgs) == {"speedrun", "pr117", "h200-mini", "tiny"}
    pr117 = cfgs["pr117"]
    assert pr117.steps == 1695 and pr117.max_doc_len is None and pr117.attn_impl == "flex"
    assert pr117.batch_tokens == 393216 and pr117.window_schedule == "linear"
    tiny = cfgs["tiny"]
    assert tiny.num_layers == 12 and tiny.vocab_size <= 1024 and tiny.bos_id == 1023
    assert tiny.batch_tokens == 1024 and tiny.compile == "off" and tiny.attn_impl == "sdpa"
    mini = cfgs["h200-mini"]
    assert mini.model_dim == 768 and mini.num_layers == 12
    assert [grad_accum_for(mini, w) for w in (1, 2, 4)] == [4, 2, 1]
    assert [grad_accum_for(tiny, w) for w in (1, 2, 4)] == [4, 2, 1]
    assert grad_accum_for(cfgs["speedrun"], 8) == 1 and grad_accum_for(cfgs["speedrun"], 1) == 8


def test_overrides_win_over_preset_and_record_is_a_knob_away():
    record = resolve("speedrun", parse_set(["mlp_off=[0]", "steps=1705"]))
    assert record.mlp_off == (0,) and record.mlp_paths == (0,) + (1,) * 11 and record.steps == 1705
    assert resolve("pr117", {"steps": 10}).steps == 10


def test_paths_and_off_are_one_setting():
    assert resolve(None, {"mlp_paths": {0: 0}}).mlp_off == (0,)
    assert resolve(None, {"attn_paths": {0: 2}}).attn_paths == (2,) + (1,) * 6 + (0,) + (1,) * 4
    assert resolve(None, {"attn_paths": {7: 1}}).attn_off == ()  # the mapping is over the baseline
    assert resolve(None, {"attn_off": []}).attn_paths == (1,) * 12
    both = resolve(None, {"mlp_off": [0], "mlp_paths": {1: 2}})
    assert both.mlp_paths == (0, 2) + (1,) * 10 and both.mlp_off == (0,)
    with pytest.raises(ConfigError, match=r"^mlp_paths: layer 0 has 2 paths but mlp_off lists it"):
        resolve(None, {"mlp_off": [0], "mlp_paths": {0: 2}})
    with pytest.raises(ConfigError, match=r"^mlp_paths: 0 paths at layer 3 but mlp_off=\[0\]"):
        resolve(None, {"mlp_off": [0], "mlp_paths": [0, 1, 1, 0] + [1] * 8})


def test_per_layer_forms_normalise():
    s = resolve(None, {"ve_pattern": "- 0 1 2 - - - - - x0 1 2"}).ve_pattern
    assert s == (None, 0, 1, 2, None, None, None, None, None, "x0", 1, 2)
    assert resolve(None, {"ve_pattern": {0: None, 9: "x0"}}).ve_pattern[:1] + (s[9],) == (None, "x0")
    assert resolve(None, {"mlp_kind": "glu"}).mlp_kind == ("glu",) * 12
    assert resolve(None, {"mlp_kind": {6: "double"}}).mlp_kind[6] == "double"
    assert resolve(None, {"mlp_off": 3}).mlp_off == (3,)


def test_parse_set_yaml_literals():
    got = parse_set(
        ["mlp_off=[0, 11]", "ve_norm=true", "adam_eps=1e-8", "max_doc_len=null", "mlp_kind={6: double}"]
    )
    assert got == {
        "mlp_off": [0, 11],
        "ve_norm": True,
        "adam_eps": "1e-8",
        "max_doc_len": None,
        "mlp_kind": {6: "double"},
    }
    cfg = resolve("tiny", got)
    assert cfg.adam_eps == 1e-8 and cfg.max_doc_len is None and cfg.mlp_kind[6] == "double"


BAD_SETS = [
    (["mlp_of=[0]"], r"^unknown knob 'mlp_of'; did you mean 'mlp_off'\? \(see --list-knobs\)$"),
    (["mlp_off=[12]"], r"^mlp_off: layer 12 out of range 0\.\.11$"),
    (["mlp_off=[-1]"], r"^mlp_off: layer -1 out of range 0\.\.11$"),
    (["mlp_off=zero"], r"^mlp_off: expected a list of layer indices"),
    (["steps=0"], r"^steps: 0 must be >= 1$"),
    (["steps=1.5"], r"^steps: expected an integer, got 1\.5$"),
    (["steps=true"], r"^steps: expected an integer, got true$"),
    (["ve_norm=maybe"], r"^ve_norm: expected true or false"),
    (["mlp_kind=swiglu"], r"^mlp_kind: layer 0: \"swiglu\" is not one of: relu2, glu, double$"),
    (["ve_pattern=0 1 2"], r"^ve_pattern: expected 12 entries"),
    (["ve_pattern={3: y}"], r"^ve_pattern: layer 3: \"y\" is not a table index"),
    (["attn_paths=[1, 1]"], r"^attn_paths: expected 12 entries"),
    (["mlp_paths={0: -1}"], r"^mlp_paths: layer 0: -1 must be >= 0$"),
    (["attn_impl=cudnn"], r"^attn_impl: \"cudnn\" is not one of: auto, flex, fa3, sdpa$"),
    (["lr_muon=0"], r"^lr_muon: 0 must be > 0$"),
    (["adam_betas=[0.9]"], r"^adam_betas: expected two numbers"),
    (["adam_betas=[0.9, 1.0]"], r"^adam_betas: each beta must be in \[0, 1\)"),
    (["num_layers=11"], r"^num_layers: 11 is odd"),
    (["bos_id=50257"], r"^bos_id: 50257 is outside the vocabulary"),
    (["seq_len=1000"], r"^seq_len: 1000 must be a multiple of block_size 128$"),
    (["mlp_kind={6: double}", "mlp_paths={6: 2}"], r"^mlp_paths: layer 6 is a double MLP"),
    (["steps"], r"^--set 'steps': expected KNOB=VALUE"),
    (["mlp_off=[0"], r"^mlp_off: value '\[0' is not a YAML literal"),
    (["max_doc_len=0"], r"^max_doc_len: 0 must be >= 1$"),
]


@pytest.mark.parametrize(("items", "message"), BAD_SETS, ids=[" ".join(i) for i, _ in BAD_SETS])
def test_bad_values_give_one_line_errors(items, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve(None, parse_set(items))
    assert "\n" not in str(info.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"^unknown preset 'tinny'; did you mean 'tiny'\?"):
        resolve("tinny", {})


def test_json_views_round_trip():
    cfg = resolve(None, {"ve_pattern": "- 0 1 2 - - - - - x0 1 2", "mlp_off": [0]})
    d = config_to_dict(cfg)
    assert json.loads(json.dumps(d)) == d
    assert d["mlp_off"] == [0] and d["ve_pattern"][9] == "x0"
    assert resolve(None, {k: v for k, v in d.items() if k != "attn_off" and k != "mlp_off"}) == cfg
    assert TrainConfig(**d) == cfg  # a logged config rebuilds the run's config exactly
    types = knob_types()
    assert set(types) == set(d)
    assert types["steps"] == "int" and types["mlp_off"] == "json" and types["ve_norm"] == "bool"
    assert types["max_doc_len"] == "int" and types["attn_scale"] == "float" and types["mlp_kind"] == "json"
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    text = describe_knobs()
    assert all(k.name in text for k in KNOBS) and "speedrun (default)" in text


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().steps = 3


def test_window_schedules_match_upstream():
    speed = resolve(None, {})
    # PR 120: stage index int(3 * step / (steps + 1)) of (3, 7, 11) blocks of 128.
    assert window_tokens_at(speed, 0) == 384
    assert window_tokens_at(speed, 557) == 896 and window_tokens_at(speed, 556) == 384
    assert window_tokens_at(speed, 1670) == 1408
    assert window_sizes(speed) == (384, 896, 1408)
    assert short_window(speed, 384) == 128 and short_window(speed, 1408) == 640
    pr117 = resolve("pr117", {})
    # PR 117: 1728 * step / steps rounded up to a block, at least one block: 128 ... 1792.
    assert window_tokens_at(pr117, 0) == 128 and window_tokens_at(pr117, 1695) == 1792
    assert window_tokens_at(pr117, 848) == 896  # 864.5 tokens round up to 7 blocks
    assert len(window_sizes(pr117)) == 14
    with pytest.raises(ConfigError, match="^steps: step 1696 outside"):
        window_tokens_at(pr117, 1696)


def test_grad_accum_errors():
    cfg = resolve("tiny", {})
    with pytest.raises(
        ConfigError, match=r"^batch_tokens: 1024 is not a multiple of seq_len 256 x 3 processes$"
    ):
        grad_accum_for(cfg, 3)
    with pytest.raises(
        ConfigError, match=r"^grad_accum: 2 x seq_len 256 x 1 processes != batch_tokens 1024$"
    ):
        grad_accum_for(resolve("tiny", {"grad_accum": 2}), 1)


def test_config_module_does_not_import_torch():
    code = "import sys, trainer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_on_off_knobs_take_yaml_booleans_as_written():
    """`--set compile=on` reaches the parser as YAML 1.1's true; it means "on", not an error."""
    cfg = resolve("tiny", parse_set(["compile=on", "fp8_head=off"]))
    assert (cfg.compile, cfg.fp8_head) == ("on", "off")
    with pytest.raises(ConfigError, match="attn_impl: true is not one of"):
        resolve("tiny", parse_set(["attn_impl=on"]))


def _typed_fields() -> list[tuple[str, str, object]]:
    """(name, annotation, default) of the TrainConfig written out for type checkers in config.py."""
    import ast

    import trainer.config as config_mod

    tree = ast.parse(Path(config_mod.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    cls = next(n for n in block.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig")
    return [
        (a.target.id, ast.unparse(a.annotation), ast.literal_eval(a.value))
        for a in cls.body
        if isinstance(a, ast.AnnAssign)
    ]


def test_the_typed_trainconfig_matches_the_knob_table():
    fields = _typed_fields()
    assert [f[0] for f in fields] == [k.name for k in KNOBS]
    for (name, annotation, default), knob in zip(fields, KNOBS, strict=True):
        expected = tuple(knob.default) if isinstance(knob.default, list) else knob.default
        assert default == expected, name
        base = {"int": "int", "float": "float", "bool": "bool", "str": "str"}.get(knob.kind, "tuple[")
        assert annotation.startswith(base), (name, annotation)
        assert annotation.endswith("| None") == knob.nullable, (name, annotation)
