"""The optimisation loop, as a generator of :class:`Step` records.

A :class:`Dream` holds everything that changes while dreaming — latents,
their moving average, the optimiser and the random state — and nothing else:
it never prints and never writes files.  The caller decides what to do with
each step (show progress, save, stop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from . import losses
from .cutouts import Cutouts
from .latents import EMA, Latents
from .models import Clip
from .prompts import Prompt
from .render import num_latents, render

__all__ = ["Dream", "Step", "encode_prompts"]


@dataclass(frozen=True)
class Step:
    """What one optimisation step did."""

    index: int  # steps done so far, counting this one (1-based)
    loss: float  # total loss that was minimised
    score: float  # weighted CLIP similarity of this step's cutouts (higher is better)
    losses: dict[str, float]  # the terms: clip, latent, class


def encode_prompts(clip: Clip, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings (P, D) of text and image prompts, and their weights (P,)."""
    from PIL import Image

    embeds = []
    with torch.inference_mode():
        for p in prompts:
            if p.kind == "text":
                embeds.append(clip.encode_text([p.value])[0])
            else:
                with Image.open(p.value) as im:
                    image = _square(im.convert("RGB"), clip.image_size).to(clip.device)
                embeds.append(clip.encode_image(image)[0])
    weights = torch.tensor([p.weight for p in prompts], dtype=torch.float32, device=clip.device)
    return torch.stack(embeds).float(), weights


def _square(image, size: int) -> torch.Tensor:
    """Centre square of a PIL image, resized to (1, 3, size, size) in [0, 1]."""
    import numpy as np
    from PIL import Image

    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


class Dream:
    """One dream in progress: ``batch`` pictures optimised towards the same prompts."""

    def __init__(
        self,
        biggan,
        clip: Clip,
        prompt_embeds: torch.Tensor,
        prompt_weights: torch.Tensor,
        *,
        seed: int,
        lr: float = 0.07,
        cutouts: int = 128,
        augment: str = "light",
        truncation: float = 1.0,
        max_classes: int | None = None,
        class_temperature: float = 2.0,
        ema_decay: float = 0.99,
        batch: int = 1,
    ) -> None:
        self.biggan, self.clip = biggan, clip
        self.device = clip.device
        self.prompt_embeds, self.prompt_weights = prompt_embeds.to(self.device), prompt_weights.to(self.device)
        self.truncation, self.max_classes = truncation, max_classes
        self.generator = torch.Generator().manual_seed(seed)
        self.latents = Latents(
            num_latents(biggan),
            batch=batch,
            truncation=truncation,
            max_classes=max_classes,
            class_temperature=class_temperature,
            generator=self.generator,
        ).to(self.device)
        self.ema = EMA(self.latents, ema_decay)
        self.optimizer = torch.optim.Adam(self.latents.parameters(), lr=lr)
        self.cutouts = Cutouts(clip.image_size, cutouts, augment)
        self.step_count = 0

    # -------------------------------------------------------------------------------- the loop
    def steps(self, until: int) -> Iterator[Step]:
        """Optimise until ``until`` steps have been done in all, yielding after each one."""
        while self.step_count < until:
            yield self.step()

    def step(self) -> Step:
        z, classes = self.latents()
        images = render(self.biggan, z, classes, self.truncation)
        cut = self.cutouts(images, self.generator)
        embeds = self.clip.encode_image(cut).view(images.shape[0], self.cutouts.count, -1)
        sim = losses.clip_similarity(embeds, self.prompt_embeds, self.prompt_weights)
        terms = {
            "clip": -losses.SIMILARITY_WEIGHT * sim,
            "latent": losses.latent_loss(z, self.truncation),
        }
        if not self.max_classes:
            terms["class"] = losses.class_loss(classes)
        total = sum(terms.values())
        loss = total.sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {self.step_count + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.latents.clamp_()
        self.ema.update(self.latents)
        self.step_count += 1
        return Step(
            index=self.step_count,
            loss=loss.item(),
            score=sim.mean().item(),
            losses={k: v.mean().item() for k, v in terms.items()},
        )

    # -------------------------------------------------------------------------------- results
    @torch.inference_mode()
    def render(self, ema: bool = True) -> torch.Tensor:
        """The current pictures (B, 3, H, W) in [0, 1], from the moving average by default."""
        params = self.latent_params(ema)
        return render(self.biggan, params["z"], params["classes"], self.truncation)

    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> list[float]:
        """Weighted CLIP similarity of whole pictures (one view each, no cutouts)."""
        view = torch.nn.functional.interpolate(images, size=self.clip.image_size, mode="bilinear", antialias=True, align_corners=False)
        embeds = self.clip.encode_image(view)[:, None]
        return losses.clip_similarity(embeds, self.prompt_embeds, self.prompt_weights).tolist()

    @torch.no_grad()
    def latent_params(self, ema: bool = True) -> dict[str, torch.Tensor]:
        """``z`` (B, L, 128) and class vectors (B, L, 1000): the moving average by default."""
        params = self.ema.averaged(self.latents) if ema else {k: p.detach() for k, p in self.latents.named_parameters()}
        return {"z": params["z"], "classes": self.latents.classes_from(params["logits"])}

    # -------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "step": self.step_count,
            "latents": {k: v.detach().cpu() for k, v in self.latents.state_dict().items()},
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.latents.load_state_dict(state["latents"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
