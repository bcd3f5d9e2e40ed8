"""The trainer's knobs: one registry, the frozen ``TrainConfig`` built from it, and the presets.

Every knob is data (``Knob``: name, group, kind, default, doc, validation); ``TrainConfig`` has
exactly one field per knob and normalises/validates itself in ``__post_init__``, so a config that
exists is a valid one. Presets are plain dicts of knob overrides. Defaults reproduce the seed's
baseline (modded-nanogpt PR 118, the ``speedrun`` preset) exactly.

Per-layer knobs are stored as tuples of length ``num_layers``. ``mlp_off``/``mlp_paths`` (and
``attn_off``/``attn_paths``) are one setting spelled two ways; both end up filled in.

No torch here: the orchestrator imports this module to validate specs on machines without it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml


class ConfigError(ValueError):
    """A bad knob name or value; the message is one line naming the knob and what is valid."""


# Knob kinds. Scalars: int, float, bool, str. Tuples: int_tuple (free length), float_pair,
# layer_set (layer indices), layer_ints / layer_strs / layer_ve (one entry per layer).
SCALAR_KINDS = ("int", "float", "bool", "str")
PER_LAYER_KINDS = ("layer_ints", "layer_strs", "layer_ve")


@dataclass(frozen=True)
class Knob:
    """One ablation/training knob: its name, meaning, type and the values it accepts."""

    name: str
    group: str  # "model" | "train" | "data" | "system"
    kind: str  # see SCALAR_KINDS / PER_LAYER_KINDS and the comment above them
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None  # allowed values (for str kinds: per element)
    minimum: float | None = None  # inclusive lower bound for numbers (per element for tuples)
    nullable: bool = False  # None is a valid value (its meaning is in the doc)
    exclusive_min: bool = False  # the bound is exclusive (e.g. learning rates > 0)


def _k(name, group, kind, default, doc, **kw) -> Knob:
    return Knob(name=name, group=group, kind=kind, default=default, doc=doc, **kw)


_ON_AUTO = ("auto", "on", "off")

KNOBS: tuple[Knob, ...] = (
    # ---- model ------------------------------------------------------------------------------
    _k("num_layers", "model", "int", 12, "Transformer blocks (even: the U-net pairs them).", minimum=2),
    _k("model_dim", "model", "int", 768, "Residual stream width.", minimum=1),
    _k("num_heads", "model", "int", 6, "Attention heads per attention path.", minimum=1),
    _k(
        "head_dim",
        "model",
        "int",
        128,
        "Width of one head (a multiple of 4: rotary turns half of it in pairs).",
        minimum=4,
    ),
    _k(
        "vocab_size",
        "model",
        "int",
        50257,
        "Token vocabulary; the model pads it to a multiple of 128.",
        minimum=2,
    ),
    _k(
        "mlp_hidden",
        "model",
        "int",
        None,
        "Hidden width of one relu2 MLP path; null = 4*model_dim.",
        minimum=1,
        nullable=True,
    ),
    _k(
        "mlp_off",
        "model",
        "layer_set",
        None,
        "Layers without an MLP (= mlp_paths 0 there); null = none, i.e. []. The seed's record: [0].",
    ),
    _k(
        "attn_off",
        "model",
        "layer_set",
        None,
        "Layers without attention (= attn_paths 0 there); null = the baseline's [7] (none below 8 layers).",
    ),
    _k(
        "mlp_paths",
        "model",
        "layer_ints",
        None,
        "Parallel MLP paths per layer (k paths = one MLP of k*hidden; 0 = no MLP). List of num_layers "
        "ints or {layer: k} over the default; null = 1 everywhere except mlp_off.",
        minimum=0,
    ),
    _k(
        "attn_paths",
        "model",
        "layer_ints",
        None,
        "Parallel attention paths per layer (k sets of num_heads heads on the same normed input, one "
        "zero-init output projection; 0 = none). List or {layer: k}; null = 1 except attn_off.",
        minimum=0,
    ),
    _k(
        "ve_pattern",
        "model",
        "layer_ve",
        None,
        "Value embedding per layer: table index, '-' (none) or 'x0' (the initial token embedding). "
        "List, {layer: v}, or a string like '0 1 2 - - - - - - 0 1 2' (the default). Unused tables are not "
        "created.",
    ),
    _k("ve_norm", "model", "bool", False, "RMS-normalise the value embeddings before mixing them in."),
    _k(
        "mlp_kind",
        "model",
        "layer_strs",
        None,
        "MLP per layer: relu2 (baseline), glu (gated), double (the seed's two-layer MLP). A name for all "
        "layers, a list, or {layer: kind}; null = relu2 everywhere.",
        choices=("relu2", "glu", "double"),
    ),
    _k("glu_activation", "model", "str", "silu", "Gate activation of glu MLPs.", choices=("silu", "relu2")),
    _k(
        "glu_hidden",
        "model",
        "int",
        None,
        "Hidden width of glu MLPs; null = 4*model_dim.",
        minimum=1,
        nullable=True,
    ),
    _k("double_norm_first", "model", "bool", False, "double MLP: RMS norm after the first nonlinearity."),
    _k("double_norm_mid", "model", "bool", False, "double MLP: RMS norm after the intermediate matmul."),
    _k(
        "double_residual",
        "model",
        "bool",
        False,
        "double MLP: add the input, times a learned scalar (init 0.5), to each C-wide chunk of the "
        "intermediate.",
    ),
    _k("double_zero_init", "model", "bool", False, "double MLP: zero-initialise the intermediate matrices."),
    _k(
        "double_diagonal",
        "model",
        "bool",
        False,
        "double MLP: set the intermediate's diagonal to 1 (identity blocks) after its init.",
    ),
    _k(
        "attn_gate",
        "model",
        "bool",
        True,
        "Sparse attention gate: per-head sigmoid gate computed from the first 12 channels, zero-init.",
    ),
    _k(
        "attn_scale",
        "model",
        "float",
        0.12,
        "Softmax scale of attention logits (QK-normed).",
        minimum=0,
        exclusive_min=True,
    ),
    _k(
        "logit_softcap",
        "model",
        "float",
        30.0,
        "Logits become softcap*sigmoid(logits/(softcap/4)); 30 is upstream's 30*sigmoid(x/7.5).",
        minimum=0,
        exclusive_min=True,
    ),
    _k("unet", "model", "bool", True, "U-net skip connections (first half -> second half, learned weights)."),
    _k(
        "long_window_layers",
        "model",
        "int_tuple",
        None,
        "Layers using the long attention window; the others use half of it. null = upstream's 0 4 7 11.",
        minimum=0,
    ),
    _k(
        "attn_impl",
        "system",
        "str",
        "auto",
        "Attention kernel: auto (CUDA: fa3 if flash_attn_interface imports and windows are token-exact, "
        "else flex; CPU: sdpa), flex, fa3, sdpa (exact masked path).",
        choices=("auto", "flex", "fa3", "sdpa"),
    ),
    _k(
        "fp8_head", "system", "str", "auto", "FP8 lm_head matmul: auto = on for CUDA sm90+.", choices=_ON_AUTO
    ),
    _k("compile", "system", "str", "auto", "torch.compile the model: auto = on for CUDA.", choices=_ON_AUTO),
    _k(
        "warmup_steps",
        "system",
        "int",
        30,
        "Untimed compile warm-up steps before training (state is reset afterwards, as upstream).",
        minimum=0,
    ),
    # ---- train ------------------------------------------------------------------------------
    _k(
        "steps",
        "train",
        "int",
        1670,
        "Optimizer steps (the seed's baseline; its record uses 1705).",
        minimum=1,
    ),
    _k(
        "cooldown_frac",
        "train",
        "float",
        0.45,
        "Fraction of steps in the final linear LR cool-down.",
        minimum=0,
    ),
    _k(
        "lr_final_frac",
        "train",
        "float",
        0.1,
        "LR multiplier reached at the end of the cool-down.",
        minimum=0,
    ),
    _k(
        "batch_tokens",
        "train",
        "int",
        393216,
        "Global training tokens per step (all ranks, all micro-batches).",
        minimum=1,
    ),
    _k(
        "seq_len",
        "train",
        "int",
        49152,
        "Tokens per forward per rank (one micro-batch, a flat sequence).",
        minimum=1,
    ),
    _k(
        "grad_accum",
        "train",
        "int",
        None,
        "Micro-batches per step per rank; null = batch_tokens / (seq_len * world_size).",
        minimum=1,
        nullable=True,
    ),
    _k("val_tokens", "train", "int", 10485760, "Validation tokens per evaluation (fixed budget).", minimum=1),
    _k("val_seq_len", "train", "int", 262144, "Tokens per validation forward per rank.", minimum=1),
    _k(
        "val_every",
        "train",
        "int",
        125,
        "Validate every this many steps (and at step 0 and the last); 0 = ends only.",
        minimum=0,
    ),
    _k(
        "window_schedule",
        "train",
        "str",
        "stages",
        "How the long attention window grows: stages (PR 118/120: window_stages blocks in equal parts of "
        "training) or linear (PR 117: from one block to window_max_tokens).",
        choices=("stages", "linear"),
    ),
    _k(
        "window_stages",
        "train",
        "int_tuple",
        (3, 7, 11),
        "Long window in blocks for each stage (stages schedule).",
        minimum=1,
    ),
    _k(
        "window_max_tokens",
        "train",
        "int",
        1728,
        "Final long window before rounding up to blocks (linear).",
        minimum=1,
    ),
    _k(
        "window_granularity",
        "train",
        "str",
        "token",
        "token: a query at i sees keys j with i - j <= window (FA3's window_size=(window, 0)); "
        "block: keys in "
        "the last window/block_size blocks (PR 117's FlexAttention block masks).",
        choices=("token", "block"),
    ),
    _k(
        "block_size",
        "train",
        "int",
        128,
        "Attention block size in tokens (windows are multiples of it).",
        minimum=1,
    ),
    _k(
        "lr_embed",
        "train",
        "float",
        0.6,
        "Adam LR of token and value embeddings (upstream 0.008 x 75).",
        minimum=0,
        exclusive_min=True,
    ),
    _k("lr_head", "train", "float", 0.008, "Adam LR of the lm_head.", minimum=0, exclusive_min=True),
    _k(
        "lr_scalar",
        "train",
        "float",
        0.04,
        "Adam LR of scalars (lambdas, skip weights; 0.008 x 5).",
        minimum=0,
        exclusive_min=True,
    ),
    _k("lr_muon", "train", "float", 0.05, "Muon LR of hidden matrices.", minimum=0, exclusive_min=True),
    _k("muon_momentum", "train", "float", 0.95, "Muon momentum after warm-up.", minimum=0),
    _k("muon_momentum_start", "train", "float", 0.85, "Muon momentum at step 0.", minimum=0),
    _k("muon_momentum_warmup_steps", "train", "int", 300, "Steps of linear momentum warm-up.", minimum=0),
    _k("muon_wd", "train", "float", 0.0, "Muon decoupled weight decay (multiplied by the LR).", minimum=0),
    _k("adam_betas", "train", "float_pair", (0.8, 0.95), "Adam (beta1, beta2).", minimum=0),
    _k(
        "adam_eps",
        "train",
        "float",
        1e-10,
        "Adam epsilon (tiny: upstream found it removes a world-size dependence).",
        minimum=0,
        exclusive_min=True,
    ),
    _k("adam_wd", "train", "float", 0.0, "Adam decoupled weight decay.", minimum=0),
    _k(
        "seed",
        "train",
        "int",
        0,
        "Seed of the model init (torch.manual_seed); data order is fixed.",
        minimum=0,
    ),
    # ---- data -------------------------------------------------------------------------------
    _k("bos_id", "data", "int", 50256, "Token that starts every document (GPT-2 <|endoftext|>).", minimum=0),
    _k(
        "max_doc_len",
        "data",
        "int",
        2048,
        "Training documents are cut to this many tokens (PR 118); null = no cap (PR 117). "
        "Attention also never "
        "reaches further back than this.",
        minimum=1,
        nullable=True,
    ),
)

KNOB_BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}


# ---------------------------------------------------------------------------------------------
# Value checks, one function per kind. Each returns the normalised value or raises ConfigError.


def _fail(name: str, msg: str) -> ConfigError:
    return ConfigError(f"{name}: {msg}")


def _describe(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _check_min(knob: Knob, x: float, where: str = "") -> None:
    if knob.minimum is None:
        return
    bad = x <= knob.minimum if knob.exclusive_min else x < knob.minimum
    if bad:
        op = ">" if knob.exclusive_min else ">="
        raise _fail(knob.name, f"{where}{x:g} must be {op} {knob.minimum:g}")


def _as_int(knob: Knob, value: Any, where: str = "") -> int:
    # bool is an int in Python; `steps=true` is still a mistake worth naming.
    if isinstance(value, bool) or not isinstance(value, int):
        integral_float = isinstance(value, float) and value.is_integer()
        if integral_float or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            value = int(value)
        else:
            raise _fail(knob.name, f"{where}expected an integer, got {_describe(value)}")
    _check_min(knob, value, where)
    return value


def _as_float(knob: Knob, value: Any, where: str = "") -> float:
    # YAML 1.1 reads "1e-10" as a string, so numeric strings are accepted here.
    if isinstance(value, bool):
        raise _fail(knob.name, f"{where}expected a number, got {_describe(value)}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(knob.name, f"{where}expected a number, got {_describe(value)}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(knob.name, f"{where}expected a finite number, got {_describe(value)}")
    _check_min(knob, float(value), where)
    return float(value)


def _as_bool(knob: Knob, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(knob.name, f"expected true or false, got {_describe(value)}")
    return value


def _as_str(knob: Knob, value: Any, where: str = "") -> str:
    if isinstance(value, bool) and knob.choices is not None and {"on", "off"} <= set(knob.choices):
        value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
    if not isinstance(value, str) or (knob.choices is not None and value not in knob.choices):
        allowed = ", ".join(map(str, knob.choices)) if knob.choices else "a string"
        raise _fail(knob.name, f"{where}{_describe(value)} is not one of: {allowed}")
    return value


def _as_list(knob: Knob, value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise _fail(knob.name, f"expected a list, got {_describe(value)}")


def _check_scalar(knob: Knob, value: Any) -> Any:
    if value is None:
        if knob.nullable or knob.default is None:  # None defaults mean "derive it" (see the doc)
            return None
        raise _fail(knob.name, "null is not allowed here")
    if knob.kind == "int":
        return _as_int(knob, value)
    if knob.kind == "float":
        return _as_float(knob, value)
    if knob.kind == "bool":
        return _as_bool(knob, value)
    if knob.kind == "str":
        return _as_str(knob, value)
    if knob.kind == "int_tuple":
        items = _as_list(knob, value)
        if not items:
            raise _fail(knob.name, "expected a non-empty list of integers")
        return tuple(_as_int(knob, v, f"entry {i}: ") for i, v in enumerate(items))
    if knob.kind == "float_pair":
        items = _as_list(knob, value)
        if len(items) != 2:
            raise _fail(knob.name, f"expected two numbers [beta1, beta2], got {_describe(value)}")
        pair = tuple(_as_float(knob, v) for v in items)
        if any(b >= 1 for b in pair):
            raise _fail(knob.name, f"each beta must be in [0, 1), got {list(pair)}")
        return pair
    return value  # per-layer kinds and layer sets need num_layers: see _normalise_layers


# ---------------------------------------------------------------------------------------------
# Per-layer knobs: a full list, a {layer: value} mapping over the default, or (ve_pattern) a
# string of space-separated entries. All become tuples of length num_layers.


def _layer_index(name: str, key: Any, num_layers: int) -> int:
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int):
        raise _fail(name, f"layer {_describe(key)} is not an integer layer index")
    if not 0 <= key < num_layers:
        raise _fail(name, f"layer {key} out of range 0..{num_layers - 1}")
    return key


def _per_layer(
    name: str, value: Any, default: tuple, num_layers: int, elem: Callable[[Any, str], Any]
) -> tuple:
    if isinstance(value, Mapping):
        out = list(default)
        for key, v in value.items():
            i = _layer_index(name, key, num_layers)
            out[i] = elem(v, f"layer {i}: ")
        return tuple(out)
    if isinstance(value, (list, tuple)):
        if len(value) != num_layers:
            raise _fail(
                name, f"expected {num_layers} entries (one per layer) or {{layer: value}}, got {len(value)}"
            )
        return tuple(elem(v, f"layer {i}: ") for i, v in enumerate(value))
    raise _fail(
        name, f"expected a list of {num_layers} or a {{layer: value}} mapping, got {_describe(value)}"
    )


def _ve_entry(value: Any, where: str) -> int | str | None:
    if value is None or value in ("-", "none", "None", "null"):
        return None
    if value == "x0":
        return "x0"
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _fail("ve_pattern", f"{where}{_describe(value)} is not a table index >= 0, '-' (none) or 'x0'")


def default_ve_pattern(num_layers: int) -> tuple:
    """Upstream's 0 1 2 - ... - 0 1 2: tables 0..2 on the first and the last three layers."""
    if num_layers < 6:
        return (0, 1, 2, None, None, None)[:num_layers]
    return (0, 1, 2) + (None,) * (num_layers - 6) + (0, 1, 2)


def _normalise_ve(value: Any, num_layers: int) -> tuple:
    default = default_ve_pattern(num_layers)
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split()
    return _per_layer("ve_pattern", value, default, num_layers, _ve_entry)


def _normalise_kinds(value: Any, num_layers: int) -> tuple:
    knob = KNOB_BY_NAME["mlp_kind"]
    default = ("relu2",) * num_layers
    if value is None:
        return default
    if isinstance(value, str):  # one kind for every layer
        value = [value] * num_layers
    return _per_layer("mlp_kind", value, default, num_layers, lambda v, w: _as_str(knob, v, w))


def _layer_set(name: str, value: Any, num_layers: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _fail(name, f"expected a list of layer indices like [0, 3], got {_describe(value)}")
    return tuple(sorted({_layer_index(name, v, num_layers) for v in value}))


def _paths_and_off(
    kind: str, paths: Any, off: Any, baseline_off: tuple, num_layers: int
) -> tuple[tuple, tuple]:
    """Reconcile ``<kind>_paths`` with ``<kind>_off``; returns (paths, off), both normalised.

    Neither given: the baseline. Only off: 1 path everywhere else. Only paths: a list as given, a
    mapping over the baseline. Both: every off layer must have 0 paths, and a full paths list
    must have 0 exactly at the off layers.
    """
    pname, oname = f"{kind}_paths", f"{kind}_off"
    knob = KNOB_BY_NAME[pname]
    off_set = _layer_set(oname, off, num_layers) if off is not None else None
    zeros_at = off_set if off_set is not None else baseline_off
    base = tuple(0 if i in zeros_at else 1 for i in range(num_layers))
    if paths is None:
        return base, tuple(zeros_at)
    out = _per_layer(pname, paths, base, num_layers, lambda v, w: _as_int(knob, v, w))
    if off_set is not None:
        for i in off_set:
            if out[i] != 0:
                raise _fail(pname, f"layer {i} has {out[i]} paths but {oname} lists it; set one of them only")
        stray = [i for i, k in enumerate(out) if k == 0 and i not in off_set]
        if stray and not isinstance(paths, Mapping):
            raise _fail(pname, f"0 paths at layer {stray[0]} but {oname}={list(off_set)} does not list it")
    return out, tuple(i for i, k in enumerate(out) if k == 0)


# ---------------------------------------------------------------------------------------------
# TrainConfig: one frozen field per knob, generated from the registry so the two cannot drift.

_PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _field_type(knob: Knob) -> Any:
    base = _PY_TYPES.get(knob.kind, tuple)
    return base | None if knob.nullable else base


def _normalise(cfg: Any) -> dict[str, Any]:
    """All knob values of ``cfg``, checked and normalised (tuples of num_layers for per-layer knobs)."""
    vals = {k.name: _check_scalar(k, getattr(cfg, k.name)) for k in KNOBS}
    n = vals["num_layers"]
    if n % 2 and vals["unet"]:
        raise _fail("num_layers", f"{n} is odd; the U-net needs an even number (or unet=false)")
    baseline_attn_off = (7,) if n > 7 else ()  # upstream drops layer 7's attention
    vals["mlp_paths"], vals["mlp_off"] = _paths_and_off("mlp", vals["mlp_paths"], vals["mlp_off"], (), n)
    vals["attn_paths"], vals["attn_off"] = _paths_and_off(
        "attn", vals["attn_paths"], vals["attn_off"], baseline_attn_off, n
    )
    vals["ve_pattern"] = _normalise_ve(vals["ve_pattern"], n)
    vals["mlp_kind"] = _normalise_kinds(vals["mlp_kind"], n)
    long_layers = vals["long_window_layers"]
    if long_layers is None:  # upstream's 0 4 7 11, cut to size, always with the last layer
        long_layers = tuple(i for i in (0, 4, 7) if i < n - 1) + (n - 1,)
    vals["long_window_layers"] = _layer_set("long_window_layers", long_layers, n)
    _check_cross(vals)
    return vals


def _check_cross(v: dict[str, Any]) -> None:
    """Checks that involve more than one knob."""
    if v["head_dim"] % 4:
        raise _fail("head_dim", f"{v['head_dim']} must be a multiple of 4 (half-truncated rotary on pairs)")
    if v["attn_gate"] and v["model_dim"] < 12:
        raise _fail(
            "attn_gate", f"the gate reads 12 channels but model_dim is {v['model_dim']}; set attn_gate=false"
        )
    if v["bos_id"] >= v["vocab_size"]:
        raise _fail("bos_id", f"{v['bos_id']} is outside the vocabulary 0..{v['vocab_size'] - 1}")
    if v["muon_momentum"] >= 1 or v["muon_momentum_start"] >= 1:
        raise _fail("muon_momentum", "momentum must be < 1")
    if v["cooldown_frac"] > 1:
        raise _fail("cooldown_frac", f"{v['cooldown_frac']} must be in [0, 1]")
    if v["seq_len"] % v["block_size"]:
        raise _fail("seq_len", f"{v['seq_len']} must be a multiple of block_size {v['block_size']}")
    if v["val_seq_len"] % v["block_size"]:
        raise _fail("val_seq_len", f"{v['val_seq_len']} must be a multiple of block_size {v['block_size']}")
    if v["batch_tokens"] % v["seq_len"]:
        raise _fail("batch_tokens", f"{v['batch_tokens']} must be a multiple of seq_len {v['seq_len']}")
    for i, (kind, k) in enumerate(zip(v["mlp_kind"], v["mlp_paths"], strict=True)):
        if kind == "double" and k > 1:
            raise _fail("mlp_paths", f"layer {i} is a double MLP, which takes 0 or 1 paths, not {k}")
    uses_ve = any(e is not None and k > 0 for e, k in zip(v["ve_pattern"], v["attn_paths"], strict=True))
    if uses_ve and v["num_heads"] * v["head_dim"] != v["model_dim"]:
        raise _fail(
            "ve_pattern", "value embeddings need num_heads*head_dim == model_dim; use ve_pattern='-' x layers"
        )
    if v["attn_impl"] == "fa3" and v["window_granularity"] == "block":
        raise _fail(
            "attn_impl", "fa3 windows are token-exact; use window_granularity=token or attn_impl=flex"
        )


def _post_init(self) -> None:
    for name, value in _normalise(self).items():
        object.__setattr__(self, name, value)


if TYPE_CHECKING:  # what editors and type checkers see; at run time the class is built from KNOBS

    @dataclass(frozen=True)
    class TrainConfig:
        """All knobs of one training run (frozen, validated). Per-layer knobs read back as tuples of
        ``num_layers``. tests/trainer/test_config.py checks these fields against KNOBS: names,
        order, types and defaults."""

        num_layers: int = 12
        model_dim: int = 768
        num_heads: int = 6
        head_dim: int = 128
        vocab_size: int = 50257
        mlp_hidden: int | None = None
        mlp_off: tuple[int, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        attn_off: tuple[int, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        mlp_paths: tuple[int, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        attn_paths: tuple[int, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        ve_pattern: tuple[int | None, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        ve_norm: bool = False
        mlp_kind: tuple[str, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        glu_activation: str = "silu"
        glu_hidden: int | None = None
        double_norm_first: bool = False
        double_norm_mid: bool = False
        double_residual: bool = False
        double_zero_init: bool = False
        double_diagonal: bool = False
        attn_gate: bool = True
        attn_scale: float = 0.12
        logit_softcap: float = 30.0
        unet: bool = True
        long_window_layers: tuple[int, ...] = None  # type: ignore[assignment]  # filled in by __post_init__
        attn_impl: str = "auto"
        fp8_head: str = "auto"
        compile: str = "auto"
        warmup_steps: int = 30
        steps: int = 1670
        cooldown_frac: float = 0.45
        lr_final_frac: float = 0.1
        batch_tokens: int = 393216
        seq_len: int = 49152
        grad_accum: int | None = None
        val_tokens: int = 10485760
        val_seq_len: int = 262144
        val_every: int = 125
        window_schedule: str = "stages"
        window_stages: tuple[int, ...] = (3, 7, 11)
        window_max_tokens: int = 1728
        window_granularity: str = "token"
        block_size: int = 128
        lr_embed: float = 0.6
        lr_head: float = 0.008
        lr_scalar: float = 0.04
        lr_muon: float = 0.05
        muon_momentum: float = 0.95
        muon_momentum_start: float = 0.85
        muon_momentum_warmup_steps: int = 300
        muon_wd: float = 0.0
        adam_betas: tuple[float, float] = (0.8, 0.95)
        adam_eps: float = 1e-10
        adam_wd: float = 0.0
        seed: int = 0
        bos_id: int = 50256
        max_doc_len: int | None = 2048

else:
    TrainConfig = dataclasses.make_dataclass(
        "TrainConfig",
        [(k.name, _field_type(k), field(default=k.default, metadata={"doc": k.doc})) for k in KNOBS],
        frozen=True,
        namespace={
            "__post_init__": _post_init,
            "__doc__": "All knobs of one training run (frozen, validated). Fields: KNOBS, describe_knobs().",
        },
    )
    # make_dataclass cannot set the module before 3.12; pickle and repr need it.
    TrainConfig.__module__ = __name__


# ---------------------------------------------------------------------------------------------
# Presets: data only, knob overrides on top of the defaults (which are the `speedrun` preset).

PRESETS: dict[str, dict[str, Any]] = {
    # The seed's baseline (PR 118): every default. Its record is this plus mlp_off=[0], steps=1705.
    "speedrun": {},
    # The record of 2025-08-23 (PR 117): FlexAttention with block-granular windows growing linearly
    # to 1728 tokens (rounded up to 14 blocks), full-length documents, 1695 steps, 10 warm-up steps.
    "pr117": {
        "steps": 1695,
        "max_doc_len": None,
        "window_schedule": "linear",
        "window_max_tokens": 1728,
        "window_granularity": "block",
        "attn_impl": "flex",
        "warmup_steps": 10,
    },
    # One H200, about a minute after compile. One H200 processes roughly what one of upstream's eight
    # GPUs does (~49k tokens in ~95 ms), so 65,536 tokens/step is ~130 ms; 300 steps ~40 s plus four
    # validations of 1M tokens (~1 s each). seq_len 16,384 lets 1, 2 or 4 processes share the batch
    # (grad_accum 4, 2, 1). The window stages and document cap are the speedrun's.
    "h200-mini": {
        "steps": 300,
        "batch_tokens": 65536,
        "seq_len": 16384,
        "val_tokens": 1048576,
        "val_seq_len": 65536,
        "val_every": 100,
        "muon_momentum_warmup_steps": 60,
        "warmup_steps": 9,
    },
    # CPU, about a minute on 2 cores: 12 layers (layer indices mean what they mean in the seed) of
    # width 64, the synthetic corpus's 1,024-token vocabulary with BOS = 1023, 1,024 tokens per step
    # in micro-batches of 256 (1, 2 or 4 processes), block size and windows scaled down 8x.
    # Measured on a loaded 2-core machine, one thread: a 256-token forward+backward takes ~75 ms, so
    # a step is ~0.35 s with the optimizers; 200 steps plus five 8k-token validations ~75 s.
    # Longer validation sequences cost more than linearly (the explicit T x T mask), hence 256.
    "tiny": {
        "model_dim": 64,
        "num_heads": 2,
        "head_dim": 32,
        "vocab_size": 1024,
        "bos_id": 1023,
        "steps": 200,
        "batch_tokens": 1024,
        "seq_len": 256,
        "val_tokens": 8192,
        "val_seq_len": 256,
        "val_every": 50,
        "block_size": 16,
        "max_doc_len": 256,
        "muon_momentum_warmup_steps": 60,
        "attn_impl": "sdpa",
        "fp8_head": "off",
        "compile": "off",
        "warmup_steps": 0,
    },
}
DEFAULT_PRESET = "speedrun"


def _suggest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_knob_names(overrides: Mapping[str, Any]) -> None:
    """Raise ConfigError for the first key of ``overrides`` that is not a knob."""
    for name in overrides:
        if name not in KNOB_BY_NAME:
            raise ConfigError(f"unknown knob '{name}'{_suggest(str(name), KNOB_BY_NAME)} (see --list-knobs)")


def preset_overrides(preset: str | None) -> dict[str, Any]:
    """The knob overrides of ``preset`` (None = the default preset)."""
    name = DEFAULT_PRESET if preset is None else preset
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset '{name}'{_suggest(name, PRESETS)}; choose one of: {', '.join(PRESETS)}"
        )
    return dict(PRESETS[name])


def resolve(preset: str | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The validated config of ``preset`` (None = ``speedrun``) with ``overrides`` on top.

    An override replaces the preset's value of the same knob; raises ConfigError on any bad name or value.
    """
    overrides = dict(overrides or {})
    check_knob_names(overrides)
    return TrainConfig(**{**preset_overrides(preset), **overrides})


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``--set KNOB=VALUE`` strings (VALUE is a YAML literal) into overrides; later wins."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--set '{item}': expected KNOB=VALUE, e.g. mlp_off=[0]")
        check_knob_names({name: None})
        try:
            out[name] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{name}: value {text!r} is not a YAML literal ({first})") from None
    return out


# ---------------------------------------------------------------------------------------------
# Views for the results store, the log header and --list-knobs.


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Every knob of ``cfg`` as JSON-safe values (tuples become lists), in registry order."""
    return {k.name: _jsonable(getattr(cfg, k.name)) for k in KNOBS}


def knob_types() -> dict[str, str]:
    """Store column type per knob: int | float | bool | str | json (lists are stored as JSON text)."""
    return {k.name: k.kind if k.kind in SCALAR_KINDS else "json" for k in KNOBS}


def describe_knobs(cfg: TrainConfig | None = None, preset: str | None = None) -> str:
    """A human-readable table of every knob (name, group, value, doc) for ``--list-knobs``.

    Values are the defaults, or with ``cfg`` (a preset and its overrides, named ``preset``)
    that config's, each followed by the default where it differs."""
    base = config_to_dict(TrainConfig())
    shown = config_to_dict(cfg) if cfg is not None else base
    lines = [f"values of preset {preset} (default after '#' where it differs)"] if cfg is not None else []
    for group in ("model", "train", "data", "system"):
        lines.append(f"[{group}]")
        for k in (k for k in KNOBS if k.group == group):
            choices = f" (one of: {', '.join(map(str, k.choices))})" if k.choices else ""
            differs = f"  # {json.dumps(base[k.name])}" if shown[k.name] != base[k.name] else ""
            lines.append(f"  {k.name} = {json.dumps(shown[k.name])}{differs}")
            lines.append(f"      {k.doc}{choices}")
    lines.append("presets: " + ", ".join(f"{p} (default)" if p == DEFAULT_PRESET else p for p in PRESETS))
    return "\n".join(lines)
