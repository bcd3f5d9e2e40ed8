"""The modded-nanogpt GPT of the seed, with every ablation knob of ``TrainConfig`` applied.

Baseline (all defaults): 12 blocks of width 768, 6 heads of 128, vocabulary 50257 padded to 50304.
Per block: x <- l0*x + l1*x0 (x0 = the normed token embedding); attention on norm(x); MLP on norm(x).
Weightless RMS norm, QK norm, half-truncated rotary, attention scale 0.12, value embeddings mixed into
the values of layers 0 1 2 and 9 10 11, U-net skips from the first half to the second, the sparse
attention gate, ReLU^2 MLPs of 4x width with zero-init output projections, a zero-init (FP8 on sm90+)
lm_head and the logit soft cap 30*sigmoid(x/7.5).

The model runs on one flat sequence of concatenated documents (batch size 1), like upstream:
``forward(input_seq (T,), target_seq (T,), window_tokens) -> loss``. The loss is the **sum** over
tokens in training mode and the **mean** in eval mode, as upstream (Muon is insensitive to the
scale and Adam nearly so; upstream's Adam epsilon was tuned with the sum). The FP8 head's gradient
cast is not: `Head.accumulate` scales it for the micro steps a training step divides the loss by.

Shapes in comments: T tokens, C model_dim, H heads of one layer (paths x num_heads), D head_dim.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer import attention as attn_mod
from trainer.config import ConfigError, TrainConfig

GATE_CHANNELS = 12  # the sparse attention gate reads this many leading channels of its input


def norm(x: Tensor) -> Tensor:
    """Weightless RMS norm over the last dim."""
    return F.rms_norm(x, (x.size(-1),))


def padded_vocab(vocab_size: int) -> int:
    """Vocabulary rounded up to a multiple of 128 (50257 -> 50304) for efficient matmuls."""
    return 128 * math.ceil(vocab_size / 128)


@torch.no_grad()
def _uniform_init(w: Tensor, fan_in: int) -> Tensor:
    # std 0.5/sqrt(fan_in) as a uniform distribution: upstream found 0.5 better than nn.Linear's 1/sqrt(3).
    bound = math.sqrt(3) * 0.5 * fan_in**-0.5
    return w.uniform_(-bound, bound)


# ----------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Backends:
    """What runs on this device: attention kernel, FP8 head, torch.compile (chosen once, at build)."""

    attn: str  # "sdpa" | "flex" | "fa3"
    fp8: bool
    compile: bool


def _fp8_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (9, 0)


def resolve_backends(cfg: TrainConfig, device: torch.device | str) -> Backends:
    """Turn the ``attn_impl`` / ``fp8_head`` / ``compile`` knobs (auto|...) into concrete choices here."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    attn = cfg.attn_impl
    if attn == "auto":
        token_windows = cfg.window_granularity == "token"
        attn = ("fa3" if token_windows and attn_mod.fa3_available() else "flex") if cuda else "sdpa"
    if attn in ("flex", "fa3") and not cuda:
        raise ConfigError(f"attn_impl: {attn} needs CUDA; use sdpa or auto on {device.type}")
    if attn == "fa3" and not attn_mod.fa3_available():
        raise ConfigError(
            "attn_impl: fa3 needs flash_attn_interface, which does not import; use flex or auto"
        )
    fp8 = cfg.fp8_head == "on" or (cfg.fp8_head == "auto" and _fp8_supported(device))
    if fp8 and not _fp8_supported(device):
        raise ConfigError(f"fp8_head: on needs a CUDA GPU of compute capability 9.0+, not {device}; use auto")
    return Backends(attn=attn, fp8=fp8, compile=cfg.compile == "on" or (cfg.compile == "auto" and cuda))


# ----------------------------------------------------------------------------- FP8 lm_head


@functools.cache
def _fp8_ops():
    """Register (once, on first FP8 use) the FP8 matmul op with its backward; returns the op.

    Forward: x and w are scaled into float8_e4m3 and multiplied by ``torch._scaled_mm`` into bf16.
    Backward: the output gradient goes to float8_e5m2 (wider range); grad_x in bf16, grad_w in fp32.
    """

    @torch.compile
    def fwd_impl(x: Tensor, w: Tensor, x_s: float, w_s: float):
        x8 = x.div(x_s).to(torch.float8_e4m3fn)
        w8 = w.div(w_s).to(torch.float8_e4m3fn)
        one = x.new_tensor
        out = torch._scaled_mm(
            x8,
            w8.T,
            out_dtype=torch.bfloat16,
            scale_a=one(x_s, dtype=torch.float32),
            scale_b=one(w_s, dtype=torch.float32),
            use_fast_accum=True,
        )
        return out, x8, w8

    @torch.compile
    def bwd_impl(g: Tensor, x8: Tensor, w8: Tensor, x_s: float, w_s: float, g_s: float):
        sx, sw, sg = (g.new_tensor(s, dtype=torch.float32) for s in (x_s, w_s, g_s))
        g8 = g.div(g_s).to(torch.float8_e5m2)
        # _scaled_mm wants its second operand column-major: hence the .T.contiguous().T
        grad_x = torch._scaled_mm(g8, w8.T.contiguous().T, out_dtype=torch.bfloat16, scale_a=sg, scale_b=sw)
        grad_w = torch._scaled_mm(
            x8.T.contiguous(), g8.T.contiguous().T, out_dtype=torch.float32, scale_a=sx, scale_b=sg
        ).T
        return grad_x, grad_w

    @torch.library.custom_op("ablate::fp8_mm", mutates_args=())
    def fp8_mm(x: Tensor, w: Tensor, x_s: float, w_s: float, g_s: float) -> tuple[Tensor, Tensor, Tensor]:
        return fwd_impl(x, w, x_s, w_s)

    @fp8_mm.register_fake
    def _(x, w, x_s, w_s, g_s):
        return x @ w.T, x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)

    @torch.library.custom_op("ablate::fp8_mm_backward", mutates_args=())
    def fp8_mm_backward(
        g: Tensor, x8: Tensor, w8: Tensor, x_s: float, w_s: float, g_s: float
    ) -> tuple[Tensor, Tensor]:
        return bwd_impl(g, x8, w8, x_s, w_s, g_s)

    @fp8_mm_backward.register_fake
    def _(g, x8, w8, x_s, w_s, g_s):
        return x8.to(torch.bfloat16), w8.T.contiguous().T.to(torch.float32)

    def setup_context(ctx, inputs, output):
        *_, x_s, w_s, g_s = inputs
        ctx.save_for_backward(output[1], output[2])
        ctx.scales = (x_s, w_s, g_s)
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_out, *_):
        x8, w8 = ctx.saved_tensors
        grad_x, grad_w = torch.ops.ablate.fp8_mm_backward(grad_out.contiguous(), x8, w8, *ctx.scales)
        return grad_x, grad_w, None, None, None

    fp8_mm.register_autograd(backward, setup_context=setup_context)
    return torch.ops.ablate.fp8_mm


class Head(nn.Module):
    """The lm_head: (T, C) -> (T, V) logits; FP8 matmul in training when enabled, else x's dtype."""

    def __init__(self, dim: int, vocab: int, fp8: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(vocab, dim))  # zero init: every logit starts equal
        self.fp8 = fp8
        # Fixed FP8 scales, upstream's: inputs are RMS-normed (|x| ~ sqrt(C)), 448 = e4m3's max.
        self.scales = (dim**0.5 / 448, 2**-9, 1 / 448)
        if fp8:
            _fp8_ops()  # register the op now: registration cannot happen inside a compiled graph

    def accumulate(self, micro_steps: int) -> None:
        """Scale the logits' gradient cast for ``micro_steps`` micro-batches a step: training divides
        each micro-batch's loss by micro_steps (trainer.train._forward_backward), so the gradient that
        reaches the e5m2 cast is that much smaller than upstream's, which backpropagates the plain sum
        (on 8 GPUs one micro-batch each). Dividing the cast's scale alike casts the same e5m2 values as
        upstream's: with a fixed 1/448, a 1-GPU run's small gradients flushed to zero 8x as often."""
        x_s, w_s, _ = self.scales
        self.scales = (x_s, w_s, 1 / (448 * micro_steps))

    def forward(self, x: Tensor) -> Tensor:
        if self.fp8 and self.training:
            return torch.ops.ablate.fp8_mm(x.contiguous(), self.weight, *self.scales)[0]
        return F.linear(x, self.weight.type_as(x))


# ----------------------------------------------------------------------------- attention


class Rotary(nn.Module):
    """Half-truncated rotary embedding: half the dims rotate (base period 1024 over D/4 freqs), half don't."""

    def __init__(self, head_dim: int, max_len: int):
        super().__init__()
        quarter = head_dim // 4
        freq = (1 / 1024) ** torch.linspace(0, 1, steps=quarter, dtype=torch.float32)
        freq = torch.cat([freq, freq.new_zeros(quarter)])  # (D/2,) the second half stays unrotated
        theta = torch.outer(torch.arange(max_len, dtype=torch.float32), freq)  # (max_len, D/2)
        self.cos = nn.Buffer(theta.cos(), persistent=False)
        self.sin = nn.Buffer(theta.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (T, H, D) -> (T, H, D)
        T = x.size(0)
        cos, sin = self.cos[:T, None, :], self.sin[:T, None, :]  # (T, 1, D/2)
        x1, x2 = x.float().chunk(2, dim=-1)
        y = torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)
        return y.type_as(x)


class Attention(nn.Module):
    """``paths`` independent sets of ``num_heads`` heads on the same input, one output projection.

    Parameters (upstream's packing, so Muon batches them): qkvo_w (4, H*D, C) holding the q, k, v
    projections and the output projection (stored transposed; zero init); gate_w (H, 12).
    """

    def __init__(self, cfg: TrainConfig, paths: int, max_len: int):
        super().__init__()
        self.heads = paths * cfg.num_heads
        self.paths = paths
        self.head_dim = cfg.head_dim
        self.scale = cfg.attn_scale
        inner, dim = self.heads * cfg.head_dim, cfg.model_dim
        self.qkvo_w = nn.Parameter(torch.empty(4, inner, dim))
        with torch.no_grad():
            _uniform_init(self.qkvo_w[:3], dim)
            self.qkvo_w[3].zero_()
        self.rotary = Rotary(cfg.head_dim, max_len)
        # Sparse gate: a per-head sigmoid from the first 12 channels lets a head output ~nothing.
        self.gate_w = nn.Parameter(torch.zeros(self.heads, GATE_CHANNELS)) if cfg.attn_gate else None

    def forward(self, x: Tensor, ve: Tensor | None, lambdas: Tensor, attend) -> Tensor:  # (T, C) -> (T, C)
        T = x.size(0)
        w = self.qkvo_w[:3].flatten(0, 1).type_as(x)  # (3*H*D, C)
        q, k, v = F.linear(x, w).view(T, 3 * self.heads, self.head_dim).chunk(3, dim=1)  # 3 x (T, H, D)
        q, k = self.rotary(norm(q)), self.rotary(norm(k))  # QK norm, then rotary
        if ve is None:
            v = lambdas[0] * v
        else:  # every path mixes in the same (T, C) value embedding
            ve = ve.view(T, 1, -1, self.head_dim).expand(T, self.paths, -1, -1).reshape_as(v)
            v = lambdas[0] * v + lambdas[1] * ve
        y = attend(q, k, v, self.scale)  # (T, H, D)
        if self.gate_w is not None:
            gate = torch.sigmoid(F.linear(x[:, :GATE_CHANNELS], self.gate_w.type_as(x)))  # (T, H)
            y = y * gate[..., None]
        y = y.reshape(T, self.heads * self.head_dim)
        return F.linear(y, self.qkvo_w[3].T.type_as(y))  # (T, C)


# ----------------------------------------------------------------------------- MLPs


def relu2(x: Tensor) -> Tensor:
    return F.relu(x).square()


class ReluSquaredMLP(nn.Module):
    """C -> hidden -> C with ReLU^2. Both matrices are (C, hidden) so Muon batches them together."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Parameter(_uniform_init(torch.empty(dim, hidden), dim))
        self.c_proj = nn.Parameter(torch.zeros(dim, hidden))  # zero init: the block starts as identity

    def forward(self, x: Tensor) -> Tensor:  # (T, C) -> (T, C)
        h = relu2(F.linear(x, self.c_fc.T.type_as(x)))  # (T, hidden)
        return F.linear(h, self.c_proj.type_as(x))


class GatedMLP(nn.Module):
    """GLU: act(x W_gate) * (x W_up), then W_down; all three (C, hidden), W_down zero-init."""

    def __init__(self, dim: int, hidden: int, activation: str):
        super().__init__()
        self.c_gate = nn.Parameter(_uniform_init(torch.empty(dim, hidden), dim))
        self.c_up = nn.Parameter(_uniform_init(torch.empty(dim, hidden), dim))
        self.c_proj = nn.Parameter(torch.zeros(dim, hidden))
        self.act = F.silu if activation == "silu" else relu2

    def forward(self, x: Tensor) -> Tensor:  # (T, C) -> (T, C)
        h = self.act(F.linear(x, self.c_gate.T.type_as(x))) * F.linear(x, self.c_up.T.type_as(x))
        return F.linear(h, self.c_proj.type_as(x))


class DoubleMLP(nn.Module):
    """The seed's two-layer MLP: C -> 4C, ReLU^2, 4C -> 4C, ReLU^2, 4C -> C.

    The (4C, 4C) intermediate is four (C, 4C) matrices concatenated, so that all matrices share the
    MLP shape and Muon batches them. Flags: norm after the first ReLU^2, norm after the intermediate,
    a pseudo-residual (the input added to each C-wide chunk of the intermediate times a learned scalar,
    init 0.5), zero-init intermediate, and a unit diagonal set into the intermediate after its init.
    """

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        dim = cfg.model_dim
        self.dim = dim
        self.norm_first, self.norm_mid = cfg.double_norm_first, cfg.double_norm_mid
        self.c_fc = nn.Parameter(_uniform_init(torch.empty(dim, 4 * dim), dim))
        self.c_mid = nn.ParameterList([nn.Parameter(torch.empty(dim, 4 * dim)) for _ in range(4)])
        self.c_proj = nn.Parameter(torch.zeros(dim, 4 * dim))
        self.residual_w = nn.Parameter(torch.tensor([0.5])) if cfg.double_residual else None
        with torch.no_grad():
            for i, w in enumerate(self.c_mid):
                w.zero_() if cfg.double_zero_init else _uniform_init(w, dim)
                if cfg.double_diagonal:  # rows i*C..(i+1)*C of the (4C, 4C) matrix: the identity's block
                    w.diagonal(offset=i * dim).fill_(1.0)

    def forward(self, x: Tensor) -> Tensor:  # (T, C) -> (T, C)
        y = relu2(F.linear(x, self.c_fc.T.type_as(x)))  # (T, 4C)
        if self.norm_first:
            y = norm(y)
        mid = torch.cat(list(self.c_mid), dim=0)  # (4C, 4C)
        y = y @ mid.type_as(y)  # (T, 4C)
        if self.norm_mid:
            y = norm(y)
        if self.residual_w is not None:
            y = (y.view(-1, 4, self.dim) + x[:, None, :] * self.residual_w.type_as(x)).view_as(y)
        return F.linear(relu2(y), self.c_proj.type_as(x))


def make_mlp(cfg: TrainConfig, layer: int) -> nn.Module | None:
    """The MLP of ``layer`` per mlp_kind / mlp_paths (k paths = k times the hidden width), or None."""
    paths, kind = cfg.mlp_paths[layer], cfg.mlp_kind[layer]
    if paths == 0:
        return None
    if kind == "double":
        return DoubleMLP(cfg)
    if kind == "glu":
        return GatedMLP(cfg.model_dim, paths * (cfg.glu_hidden or 4 * cfg.model_dim), cfg.glu_activation)
    return ReluSquaredMLP(cfg.model_dim, paths * (cfg.mlp_hidden or 4 * cfg.model_dim))


# ----------------------------------------------------------------------------- the model


class Block(nn.Module):
    def __init__(self, cfg: TrainConfig, layer: int, max_len: int):
        super().__init__()
        paths = cfg.attn_paths[layer]
        self.attn = Attention(cfg, paths, max_len) if paths > 0 else None
        self.mlp = make_mlp(cfg, layer)
        self.long_window = layer in cfg.long_window_layers

    def forward(self, x, x0, ve, lambdas, sa_lambdas, attend) -> Tensor:  # (T, C) -> (T, C)
        x = lambdas[0] * x + lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(norm(x), ve, sa_lambdas, attend)
        if self.mlp is not None:
            x = x + self.mlp(norm(x))
        return x


class GPT(nn.Module):
    """See the module docstring. Build with ``build_model``."""

    def __init__(self, cfg: TrainConfig, backends: Backends):
        super().__init__()
        self.cfg, self.backends = cfg, backends
        L, C, V = cfg.num_layers, cfg.model_dim, padded_vocab(cfg.vocab_size)
        max_len = max(cfg.seq_len, cfg.val_seq_len)
        self.embed = nn.Embedding(V, C)
        # Only tables that some layer with attention reads exist ("x0" reuses the token embedding).
        used = sorted(
            {e for e, k in zip(cfg.ve_pattern, cfg.attn_paths, strict=True) if isinstance(e, int) and k > 0}
        )
        self.value_embeds = nn.ModuleDict({str(t): nn.Embedding(V, C) for t in used})
        self.blocks = nn.ModuleList([Block(cfg, i, max_len) for i in range(L)])
        self.lm_head = Head(C, V, backends.fp8)
        # All per-layer scalars in one vector (one optimizer tensor, as upstream):
        # [skip weights (L/2, init 1) | x/x0 lambdas (L x 2, init 1, 0) | value lambdas (L x 2, init 0.5)]
        self.n_skip = L // 2 if cfg.unet else 0
        skip, mix, value_mix = (
            torch.ones(self.n_skip),
            torch.tensor([1.0, 0.0]).repeat(L),
            torch.full((2 * L,), 0.5),
        )
        self.scalars = nn.Parameter(torch.cat([skip, mix, value_mix]))
        self.mask_rule = attn_mod.MaskRule(cfg.block_size, cfg.window_granularity, cfg.max_doc_len)
        self._window_cache: dict[int, Tensor] = {}

    # -- optimizer interface ------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by how they are optimized: hidden (2-D+ block matrices, Muon), embed, head, scalar."""
        hidden = [p for p in self.blocks.parameters() if p.ndim >= 2]
        embed = [self.embed.weight, *(e.weight for e in self.value_embeds.values())]
        scalar = [p for p in self.parameters() if p.ndim < 2]
        return {"hidden": hidden, "embed": embed, "head": [self.lm_head.weight], "scalar": scalar}

    def window_arg(self, window_tokens: int):
        """What to pass as ``window_tokens``: an int, or for flex a cached 0-d tensor (no recompiles)."""
        if self.backends.attn != "flex":
            return int(window_tokens)
        if window_tokens not in self._window_cache:
            device = self.embed.weight.device
            self._window_cache[window_tokens] = torch.tensor(window_tokens, dtype=torch.int32, device=device)
        return self._window_cache[window_tokens]

    # -- forward ------------------------------------------------------------------------------

    def _attention_fns(self, input_seq: Tensor, window):
        """One attend(q, k, v, scale) per window size (long, short), the masks built once per forward."""
        rule, bos = self.mask_rule, self.cfg.bos_id
        windows = (window, attn_mod.short_window(window, rule.block_size))
        kind = self.backends.attn
        if kind == "fa3":
            T = input_seq.numel()
            slots = 128 * math.ceil(max(T // 192, 1) / 128)
            cu = attn_mod.fa3_doc_starts(input_seq, bos, slots)
            max_len = min(T, self.cfg.max_doc_len) if (self.training and self.cfg.max_doc_len) else T
            cap = T if self.cfg.max_doc_len is None else self.cfg.max_doc_len - 1
            return [functools.partial(_fa3, cu=cu, max_len=max_len, window=min(int(w), cap)) for w in windows]
        docs = attn_mod.document_ids(input_seq, bos)
        if kind == "flex":
            masks = [attn_mod.flex_block_mask(docs, w, rule) for w in windows]
            return [functools.partial(_flex, block_mask=m) for m in masks]
        masks = [attn_mod.dense_mask(docs, w, rule) for w in windows]
        return [functools.partial(_sdpa, mask=m) for m in masks]

    def forward(self, input_seq: Tensor, target_seq: Tensor, window_tokens) -> Tensor:
        """input_seq, target_seq: (T,) token ids; window_tokens: the long attention window (tokens).

        Returns the summed cross-entropy in training mode, the mean in eval mode (a 0-d fp32 tensor).
        """
        cfg, L = self.cfg, self.cfg.num_layers
        attend_long, attend_short = self._attention_fns(input_seq, window_tokens)
        x = x0 = norm(self.embed(input_seq))  # (T, C)
        tables = {int(k): e(input_seq) for k, e in self.value_embeds.items()}  # each (T, C)
        if cfg.ve_norm:
            tables = {k: norm(v) for k, v in tables.items()}
        skip_w = self.scalars[: self.n_skip]
        lambdas = self.scalars[self.n_skip : self.n_skip + 2 * L].view(L, 2)
        sa_lambdas = self.scalars[self.n_skip + 2 * L :].view(L, 2)
        skips: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            if i >= L - self.n_skip:  # second half of the U-net: add the mirrored first-half output
                x = x + skip_w[i - (L - self.n_skip)] * skips.pop()
            entry = cfg.ve_pattern[i]
            ve = x0 if entry == "x0" else tables.get(entry) if entry is not None else None
            attend = attend_long if block.long_window else attend_short
            x = block(x, x0, ve, lambdas[i], sa_lambdas[i], attend)
            if i < self.n_skip:
                skips.append(x)
        logits = self.lm_head(norm(x)).float()  # (T, V)
        cap = cfg.logit_softcap
        logits = cap * torch.sigmoid(logits / (cap / 4))  # a shifted tanh cap: values in (0, cap)
        return F.cross_entropy(logits, target_seq.long(), reduction="sum" if self.training else "mean")


def _sdpa(q, k, v, scale, *, mask):
    return attn_mod.sdpa_attend(q, k, v, mask, scale)


def _flex(q, k, v, scale, *, block_mask):
    return attn_mod.flex_attend(q, k, v, block_mask, scale)


def _fa3(q, k, v, scale, *, cu, max_len, window):
    return attn_mod.fa3_attend(q, k, v, cu, max_len, window, scale)


def build_model(cfg: TrainConfig, device: torch.device | str) -> GPT:
    """The model of ``cfg`` on ``device``, initialised from torch's global RNG (seed it first).

    On CUDA the embeddings are kept in bf16, as upstream, which makes the activations bf16.
    """
    device = torch.device(device)
    backends = resolve_backends(cfg, device) if device.type != "meta" else Backends("sdpa", False, False)
    with torch.device(device):
        model = GPT(cfg, backends)
    if device.type == "cuda":
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                m.bfloat16()
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())
