"""BigGAN-deep forward with one condition vector per block, batched."""

from __future__ import annotations

import torch

__all__ = ["num_latents", "render"]


def _blocks(biggan):
    from pytorch_pretrained_biggan.model import GenBlock

    return [isinstance(layer, GenBlock) for layer in biggan.generator.layers]


def num_latents(biggan) -> int:
    """How many (z, class) pairs a BigGAN takes: one per generator block plus one for the first layer."""
    return sum(_blocks(biggan)) + 1


def render(biggan, z: torch.Tensor, classes: torch.Tensor, truncation: float) -> torch.Tensor:
    """Images in [0, 1], (B, 3, H, W), from ``z`` (B, L, 128) and class vectors (B, L, 1000).

    Runs the package's own modules in its order; only the condition differs per block.
    """
    gen = biggan.generator
    dtype = gen.gen_z.weight.dtype
    cond = torch.cat([z, biggan.embeddings(classes.to(dtype))], dim=-1).to(dtype)
    x = gen.gen_z(cond[:, 0])
    x = x.view(-1, 4, 4, 16 * gen.config.channel_width).permute(0, 3, 1, 2)
    index = 1
    for layer, is_block in zip(gen.layers, _blocks(biggan)):
        if is_block:
            x = layer(x, cond[:, index], truncation)
            index += 1
        else:
            x = layer(x)
    x = gen.conv_to_rgb(gen.relu(gen.bn(x, truncation)))
    return (torch.tanh(x[:, :3].float()) + 1) / 2
