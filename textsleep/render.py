"""BigGAN-deep forward with one condition vector per block, batched.

The package's generator blocks are run with their own weights, in their own
order; only the condition differs per block.  Two things are computed in a
cheaper but equal way:

- each conditional batch norm and the ReLU after it are one affine map
  ``relu(x·a + b)`` with per-picture, per-channel ``a`` and ``b`` (two passes
  over the activations instead of five, and a hand-written backward that
  makes three instead of about seven);
- the last convolution computes only the 3 colour channels that are kept,
  instead of all 128 and then dropping 125 (at 512 px that convolution was a
  quarter of the generator's arithmetic).

Activations are kept channels-last on the CPU and CUDA, where the
convolution kernels are fastest in that layout (a third off the generator's
step on the CPU).  Under ``torch.compile`` the affine map and the skip
connections are written plainly instead: the compiler fuses them and
derives their backward itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .lazy import biggan_package

__all__ = ["num_latents", "render", "affine_relu"]


def _blocks(biggan):

    return [isinstance(layer, biggan_package.model.GenBlock) for layer in biggan.generator.layers]


def num_latents(biggan) -> int:
    """How many (z, class) pairs a BigGAN takes: one per generator block plus one for the first layer."""
    return sum(_blocks(biggan)) + 1


class _AffineReLU(torch.autograd.Function):
    """``relu(x * a + b)`` for activations (B, C, H, W) and per-channel (B or 1, C, 1, 1) ``a``, ``b``."""

    @staticmethod
    def forward(ctx, x, a, b, inplace):
        if inplace:  # x is a scratch tensor nobody else reads, and a, b take no gradient: x is not needed later
            y = x.mul_(a).add_(b).relu_()
            ctx.mark_dirty(x)
            ctx.save_for_backward(None, a, y)
        else:
            y = (x * a).add_(b).relu_()  # (faster than addcmul, which broadcasts slowly in bf16 on the CPU)
            ctx.save_for_backward(x, a, y)
        ctx.a_batch, ctx.b_batch = a.shape[0], b.shape[0]
        return y

    @staticmethod
    def backward(ctx, grad):
        x, a, y = ctx.saved_tensors
        need_x, need_a, need_b, _ = ctx.needs_input_grad
        grad = torch.ops.aten.threshold_backward(grad, y, 0)  # grad where y > 0, else 0: one pass
        da = db = None
        if need_a:
            da = (grad * x).sum(dim=(2, 3), keepdim=True)
            da = da.sum(0, keepdim=True) if ctx.a_batch == 1 and da.shape[0] > 1 else da
        if need_b:
            db = grad.sum(dim=(2, 3), keepdim=True)
            db = db.sum(0, keepdim=True) if ctx.b_batch == 1 and db.shape[0] > 1 else db
        dx = grad.mul_(a) if need_x else None  # (grad is our own buffer here: no new allocation)
        return dx, da, db, None


def affine_relu(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """``relu(x * a + b)`` with ``a`` and ``b`` broadcast over height and width, in two passes.

    ``inplace=True`` overwrites ``x`` (which must be a temporary that nothing
    else reads); it is for ``a`` and ``b`` that take no gradient.
    """
    if inplace and (a.requires_grad or b.requires_grad) and torch.is_grad_enabled():
        raise ValueError("affine_relu(inplace=True) needs x for the gradients of a and b; use inplace=False")
    if torch.compiler.is_compiling():  # the compiler fuses the plain formula and derives its backward itself
        return torch.relu(x * a + b)
    return _AffineReLU.apply(x, a, b, inplace)


class _AddUpsampled(torch.autograd.Function):
    """``x += nearest_2x(skip)`` in place, without building the upsampled copy of ``skip``."""

    @staticmethod
    def forward(ctx, x, skip):
        b, c, h, w = skip.shape
        x.view(b, c, h, 2, w, 2).add_(skip[:, :, :, None, :, None])
        ctx.mark_dirty(x)
        ctx.skip_shape = skip.shape
        return x

    @staticmethod
    def backward(ctx, grad):
        b, c, h, w = ctx.skip_shape
        dskip = None
        if ctx.needs_input_grad[1]:
            dskip = torch.ops.aten.upsample_nearest2d_backward(grad, [2 * h, 2 * w], [b, c, h, w], 2.0, 2.0)
        return grad, dskip


def _statistics(bn, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored batch-norm mean and variance for a truncation, interpolated as the package does."""
    coef, start = math.modf(truncation / bn.step_size)
    start = int(start)
    mean, var = bn.running_means[start].float(), bn.running_vars[start].float()
    if coef != 0.0:
        mean = mean * coef + bn.running_means[start + 1].float() * (1 - coef)
        var = var * coef + bn.running_vars[start + 1].float() * (1 - coef)
    return mean, var


def _bn_relu(
    bn, x: torch.Tensor, truncation: float, cond: torch.Tensor | None = None, *, inplace: bool = False
) -> torch.Tensor:
    """relu(bn(x)) as one affine map: a = weight / sqrt(var + eps), b = bias - mean · a."""
    mean, var = _statistics(bn, truncation)
    inv_std = torch.rsqrt(var + bn.eps)
    if cond is None:
        weight, bias = bn.weight.float(), bn.bias.float()
    else:
        weight, bias = 1 + bn.scale(cond).float(), bn.offset(cond).float()
    a = weight * inv_std
    b = bias - mean * a
    a, b = (t.to(x.dtype).view(-1, x.shape[1], 1, 1) for t in (a, b))
    return affine_relu(x, a, b, inplace=inplace)


def _block(block, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
    """One GenBlock, as the package computes it."""
    skip = x
    x = block.conv_0(_bn_relu(block.bn_0, x, truncation, cond))
    x = _bn_relu(block.bn_1, x, truncation, cond)
    if block.up_sample:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
    x = block.conv_1(x)
    x = block.conv_2(_bn_relu(block.bn_2, x, truncation, cond))
    x = block.conv_3(_bn_relu(block.bn_3, x, truncation, cond))
    if block.drop_channels:
        skip = skip[:, : skip.shape[1] // 2]
    # x is conv_3's fresh output, read by nothing else: add the skip into it
    if torch.compiler.is_compiling():
        return x + (F.interpolate(skip, scale_factor=2, mode="nearest") if block.up_sample else skip)
    if block.up_sample:
        return _AddUpsampled.apply(x, skip)
    return x.add_(skip)


def render(biggan, z: torch.Tensor, classes: torch.Tensor, truncation: float) -> torch.Tensor:
    """Images in [0, 1], (B, 3, H, W), from ``z`` (B, L, 128) and class vectors (B, L, 1000)."""
    gen = biggan.generator
    dtype = gen.gen_z.weight.dtype
    cond = torch.cat([z, biggan.embeddings(classes.to(dtype))], dim=-1).to(dtype)
    x = gen.gen_z(cond[:, 0])
    # channels-last activations: the CPU's and CUDA's convolution kernels run fastest on them
    layout = torch.channels_last if x.device.type in ("cpu", "cuda") else torch.contiguous_format
    x = x.view(-1, 4, 4, 16 * gen.config.channel_width).permute(0, 3, 1, 2).contiguous(memory_format=layout)
    index = 1
    for layer, is_block in zip(gen.layers, _blocks(biggan)):
        if is_block:
            x = _block(layer, x, cond[:, index], truncation)
            index += 1
        else:
            x = layer(x)
    x = _bn_relu(gen.bn, x, truncation, inplace=True)  # (the last block's output is read by nothing else)
    rgb = gen.conv_to_rgb
    x = F.conv2d(x, rgb.weight[:3], None if rgb.bias is None else rgb.bias[:3], rgb.stride, rgb.padding, rgb.dilation)
    return ((torch.tanh(x.float()) + 1) / 2).contiguous()
