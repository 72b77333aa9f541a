"""Exact rewrites of CLIP's image tower that make the dream step cheaper.

Each keeps the model's weights and its result (to rounding); each applies only
where its assumptions hold and leaves the model alone otherwise:

- open_clip's batch-first attention blocks (:func:`block_options`);
- the patch convolution as one matmul (:func:`use_patch_matmul`);
- QuickGELU ``x·σ(1.702x)`` as SiLU, with the 1.702 folded into the weights
  around it (:func:`fold_quick_gelu`): one fused kernel instead of three
  passes forward and three back;
- attention written out as two matmuls and a softmax (:func:`plain_attention`):
  for CLIP's 50-token sequences that is 2.4× faster, forward and back, than
  any of ``scaled_dot_product_attention``'s CPU kernels (:func:`use_attention`
  switches to ``scaled_dot_product_attention``, for CUDA's fused kernels);
- the last block computed for the class token only (:func:`last_block_for_class_token`):
  the pooled embedding reads nothing else, so the other 49 tokens' attention
  output, MLP and queries there are wasted work (about 6% of the tower).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .lazy import open_clip

__all__ = ["block_options", "speed_up", "use_attention"]

_QUICK_GELU = 1.702


def block_options(name: str) -> dict:
    """``create_model`` options that ask open_clip for its batch-first attention blocks in the image tower.

    They hold the same weights under the same names as the default blocks, but
    the default ones transpose to sequence-first for ``nn.MultiheadAttention``,
    whose input projection then runs as a batched matmul over copies of the
    weight when gradients flow to the input: 2.5× slower on the CPU.
    """

    vision = dict((open_clip.get_model_config(name) or {}).get("vision_cfg") or {})
    if not vision or "timm_model_name" in vision or vision.get("block_type"):
        return {}
    return {"vision_cfg": {**vision, "block_type": "custom"}}


def speed_up(model: nn.Module) -> None:
    """Apply every rewrite that fits this model's image tower (in place; weights must be frozen)."""
    visual = getattr(model, "visual", None)
    if visual is None:
        return
    use_patch_matmul(visual)
    fold_quick_gelu(visual)
    plain_attention(visual)
    last_block_for_class_token(visual)


# ---------------------------------------------------------------------------------------------- patches
class _PatchEmbed(nn.Module):
    """A ViT's patch convolution (kernel = stride, no padding) computed as one matmul.

    Same weights, same result; its backward to the input is ~7× faster than the
    convolution's on the CPU.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.patch = conv.kernel_size[0]
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        p = self.patch
        patches = rearrange(x, "b c (h p) (w q) -> b h w (c p q)", p=p, q=p)
        out = patches @ self.weight.flatten(1).t()
        if self.bias is not None:
            out = out + self.bias
        return rearrange(out, "b h w d -> b d h w")


def use_patch_matmul(visual: nn.Module) -> bool:
    conv = getattr(visual, "conv1", None)
    if (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == conv.stride
        and conv.kernel_size[0] == conv.kernel_size[1]
        and conv.padding in ((0, 0), "valid")
        and conv.dilation == (1, 1)
        and conv.groups == 1
    ):
        visual.conv1 = _PatchEmbed(conv)
        return True
    return False


# ---------------------------------------------------------------------------------------------- activation
def _blocks(visual: nn.Module) -> list[nn.Module]:
    transformer = getattr(visual, "transformer", None)
    return list(getattr(transformer, "resblocks", None) or [])


@torch.no_grad()
def fold_quick_gelu(visual: nn.Module) -> int:
    """Turn each MLP's ``c_proj(quickgelu(c_fc(x)))`` into ``c_proj'(silu(c_fc'(x)))``; returns how many.

    ``x·σ(1.702x) = silu(1.702x) / 1.702``: ``c_fc`` is scaled by 1.702 and
    ``c_proj``'s weight by 1/1.702, so the MLP computes the same function.
    """

    folded = 0
    for block in _blocks(visual):
        mlp = getattr(block, "mlp", None)
        if not isinstance(mlp, nn.Sequential) or not isinstance(
            getattr(mlp, "gelu", None), open_clip.transformer.QuickGELU
        ):
            continue
        fc, proj = getattr(mlp, "c_fc", None), getattr(mlp, "c_proj", None)
        if not (
            isinstance(fc, nn.Linear)
            and isinstance(proj, nn.Linear)
            and isinstance(getattr(mlp, "ln", nn.Identity()), nn.Identity)
        ):
            continue
        fc.weight.mul_(_QUICK_GELU)
        if fc.bias is not None:
            fc.bias.mul_(_QUICK_GELU)
        proj.weight.div_(_QUICK_GELU)
        mlp.gelu = nn.SiLU()
        folded += 1
    return folded


# ---------------------------------------------------------------------------------------------- attention
def _is_plain(attn: nn.Module) -> bool:
    """open_clip's Attention with none of its options on: softmax(q·kᵀ/√d)·v and the output projection."""

    return (
        isinstance(attn, open_clip.transformer.Attention)
        and attn.logit_scale is None
        and attn.head_scale is None
        and all(isinstance(getattr(attn, n, nn.Identity()), nn.Identity) for n in ("ln_q", "ln_k", "ln_inner"))
        and attn.attn_drop.p == 0
    )


def _attend(attn: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sdpa: bool = False) -> torch.Tensor:
    """(N, Lq, C) queries against (N, L, C) keys and values → (N, Lq, C), projected.

    ``sdpa`` computes the same with ``scaled_dot_product_attention`` (a fused kernel on CUDA).
    """
    n, lq, c = q.shape
    heads = attn.num_heads
    q, k, v = (t.reshape(n, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    if sdpa:
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    else:
        weights = torch.matmul(q, k.transpose(-1, -2)).mul_(attn.scale).softmax(dim=-1)
        out = torch.matmul(weights, v)
    return attn.out_proj(out.transpose(1, 2).reshape(n, lq, c))


class _PlainAttention(nn.Module):
    """open_clip's plain Attention, computed with two matmuls and a softmax (its weights, its result)."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.sdpa = False  # see use_attention

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attn_mask is not None:
            return self.attn(x, attn_mask=attn_mask)
        a = self.attn
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).chunk(3, dim=-1)
        return _attend(a, q, k, v, self.sdpa)


def plain_attention(visual: nn.Module) -> int:
    """Wrap every plain attention of the image tower in :class:`_PlainAttention`; returns how many."""
    done = 0
    for block in _blocks(visual):
        if _is_plain(getattr(block, "attn", None)):
            block.attn = _PlainAttention(block.attn)
            done += 1
    return done


def use_attention(model: nn.Module, kind: str) -> int:
    """Compute the rewritten attentions as ``"matmul"`` (two matmuls and a softmax) or ``"sdpa"``
    (``scaled_dot_product_attention``); returns how many now do.  The same result either way.
    """
    if kind not in ("matmul", "sdpa"):
        raise ValueError(f"attention {kind!r}: allowed are matmul, sdpa")
    visual = getattr(model, "visual", model)
    done = 0
    for block in _blocks(visual):
        wrapper = block.block.attn if isinstance(block, _ClassTokenBlock) else getattr(block, "attn", None)
        if isinstance(wrapper, _PlainAttention):
            wrapper.sdpa = kind == "sdpa"
            done += 1
    return done


# ---------------------------------------------------------------------------------------------- last block
class _ClassTokenBlock(nn.Module):
    """The last residual block, computed for the class token (position 0) only.

    Keys and values still come from every token; queries, the attention
    output, the residual and the MLP only for the class token.  Returns
    (N, 1, C), which the 'tok' pooling reads as its token 0.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b = self.block
        if attn_mask is not None:
            return b(x, attn_mask=attn_mask)
        attn = b.attn.attn if isinstance(b.attn, _PlainAttention) else b.attn
        c = x.shape[-1]
        h = b.ln_1(x)
        weight, bias = attn.in_proj_weight, attn.in_proj_bias
        q = F.linear(h[:, :1], weight[:c], None if bias is None else bias[:c])
        k, v = F.linear(h, weight[c:], None if bias is None else bias[c:]).chunk(2, dim=-1)
        x = x[:, :1] + b.ls_1(b.ln_attn(_attend(attn, q, k, v, getattr(b.attn, "sdpa", False))))
        return x + b.ls_2(b.mlp(b.ln_2(x)))


def last_block_for_class_token(visual: nn.Module) -> bool:
    """Replace the last block by :class:`_ClassTokenBlock` where the embedding reads only the class token."""

    blocks = _blocks(visual)
    if not blocks:
        return False
    last = blocks[-1]
    attn = getattr(last, "attn", None)
    attn = attn.attn if isinstance(attn, _PlainAttention) else attn
    plain = isinstance(last, open_clip.transformer.CustomResidualAttentionBlock) and _is_plain(attn)
    pools_class_token = (
        getattr(visual, "attn_pool", None) is None
        and getattr(visual, "pool_type", None) == "tok"
        and not getattr(visual, "output_tokens", False)
        and getattr(visual.transformer, "batch_first", True)
    )
    if not (plain and pools_class_token):
        return False
    visual.transformer.resblocks[-1] = _ClassTokenBlock(last)
    return True
