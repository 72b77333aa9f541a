"""The sped-up CLIP image tower computes what open_clip's own model computes, values and gradients."""

import json

import open_clip
import pytest
import torch

from textsleep.fastclip import block_options, speed_up
from textsleep.models import Clip

CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def name(tmp_path_factory):
    path = tmp_path_factory.mktemp("fastclip") / "textsleep-fastclip-test.json"
    path.write_text(json.dumps(CONFIG))
    open_clip.add_model_config(path)
    return path.stem


def _pair(name):
    torch.manual_seed(0)
    stock = open_clip.create_model(name, pretrained=None).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero biases, so that folding them is tested too
        for key, value in stock.state_dict().items():
            if key.endswith("bias"):
                value.normal_(0, 0.1)
    fast = open_clip.create_model(name, pretrained=None, **block_options(name)).eval().requires_grad_(False)
    fast.load_state_dict(stock.state_dict())
    speed_up(fast)
    return stock, fast


def test_every_rewrite_applies_to_a_quickgelu_vit(name):
    _, fast = _pair(name)
    blocks = fast.visual.transformer.resblocks
    assert type(fast.visual.conv1).__name__ == "_PatchEmbed"
    assert type(blocks[-1]).__name__ == "_ClassTokenBlock"
    whole = list(blocks[:-1]) + [blocks[-1].block]
    assert all(isinstance(b.mlp.gelu, torch.nn.SiLU) for b in whole)
    assert all(type(b.attn).__name__ == "_PlainAttention" for b in whole)


def test_same_embeddings_and_input_gradients_as_open_clip(name):
    stock, fast = _pair(name)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    xs, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    es, ef = stock.encode_image(xs), fast.encode_image(xf)
    assert torch.allclose(ef, es, rtol=1e-4, atol=1e-5)
    target = torch.randn(es.shape, generator=torch.Generator().manual_seed(2))
    (es * target).sum().backward()
    (ef * target).sum().backward()
    assert xs.grad.abs().max() > 0
    assert torch.allclose(xf.grad, xs.grad, rtol=1e-4, atol=1e-5 * xs.grad.abs().max().item())


def test_text_tower_is_untouched(name):
    stock, fast = _pair(name)
    tokens = open_clip.get_tokenizer(name)(["upside down tree"])
    assert torch.allclose(fast.encode_text(tokens), stock.encode_text(tokens), atol=1e-5)


def test_the_class_token_block_steps_aside_for_other_poolings(name):
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, **block_options(name)).eval().requires_grad_(False)
    model.visual.pool_type = "avg"  # the embedding would read every token: the last block must stay whole
    speed_up(model)
    assert type(model.visual.transformer.resblocks[-1]).__name__ != "_ClassTokenBlock"


def test_clip_wrapper_on_the_fast_model_in_bf16(name):
    # the same pictures scored through textsleep's Clip in bf16 stay close to fp32
    _, fast = _pair(name)
    clip = Clip(
        name,
        "random",
        fast,
        open_clip.get_tokenizer(name),
        32,
        open_clip.OPENAI_DATASET_MEAN,
        open_clip.OPENAI_DATASET_STD,
    )
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    fp32 = clip.encode_image(x)
    bf16 = clip.to(dtype=torch.bfloat16).encode_image(x)
    assert (fp32 * bf16).sum(-1).min() > 0.99
