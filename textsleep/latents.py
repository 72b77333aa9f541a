"""The learnable picture: one latent and one class vector per generator block.

BigGAN-deep takes a 128-d ``z`` and a class embedding.  Like big-sleep we give
every generator block (and the first linear layer) its own ``z`` and its own
class logits, which lets the optimiser mix structure and texture from
different places in latent space.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Latents", "EMA", "truncated_normal", "topk_classes"]


def truncated_normal(
    shape: tuple[int, ...], generator: torch.Generator | None = None, bound: float = 2.0
) -> torch.Tensor:
    """Standard normal values kept within ``±bound`` (resampled, not clipped)."""
    return nn.init.trunc_normal_(torch.empty(shape), a=-bound, b=bound, generator=generator)


def topk_classes(logits: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """Differentiable top-k: a softmax over each row's ``k`` largest logits, zero elsewhere (rows sum to 1)."""
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(k, dim=-1).indices, True)
    return torch.softmax((logits / temperature).masked_fill(~keep, float("-inf")), dim=-1)


class Latents(nn.Module):
    """One picture per generator, each with ``num_latents`` latents and class-logit vectors.

    Latents start from a truncated normal scaled by ``truncation`` and are kept
    within ``±2·truncation`` by :meth:`clamp_`, which matches the truncation
    BigGAN is told about for its batch-norm statistics.
    """

    def __init__(
        self,
        num_latents: int,
        *,
        generators: "list[torch.Generator | None]" = (None,),
        z_dim: int = 128,
        num_classes: int = 1000,
        truncation: float = 1.0,
        max_classes: int | None = None,
        class_temperature: float = 2.0,
    ) -> None:
        super().__init__()
        self.truncation = truncation
        self.max_classes = max_classes
        self.class_temperature = class_temperature
        # one picture per generator, each drawn from its own: a picture does not depend on its batch-mates
        z, logits = [], []
        for g in generators:
            z.append(truncated_normal((1, num_latents, z_dim), g) * truncation)
            # like big-sleep: sigmoid(-3.9) ≈ 0.02, a faint mixture of every class to start from
            logits.append(torch.randn((1, num_latents, num_classes), generator=g) * 0.3 - 3.9)
        self.z = nn.Parameter(torch.cat(z))
        self.logits = nn.Parameter(torch.cat(logits))

    def classes(self) -> torch.Tensor:
        """Class vectors fed to BigGAN's embedding: sigmoids, or a top-k softmax when ``max_classes`` is set."""
        return self.classes_from(self.logits)

    def classes_from(self, logits: torch.Tensor) -> torch.Tensor:
        if self.max_classes:
            return topk_classes(logits, self.max_classes, self.class_temperature)
        return torch.sigmoid(logits)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z, self.classes()

    @torch.no_grad()
    def clamp_(self) -> None:
        bound = 2.0 * self.truncation
        self.z.clamp_(-bound, bound)


class EMA:
    """Bias-corrected exponential moving average of a module's parameters."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.biased = {k: torch.zeros_like(p) for k, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module, *, foreach: bool = False) -> None:
        """One step of the average; ``foreach`` does it for all parameters at once (the same numbers)."""
        self.steps += 1
        if foreach:
            names = [name for name, _ in module.named_parameters()]
            biased = [self.biased[name] for name in names]
            torch._foreach_mul_(biased, self.decay)
            torch._foreach_add_(biased, [p.detach() for _, p in module.named_parameters()], alpha=1 - self.decay)
            return
        for name, param in module.named_parameters():
            self.biased[name].mul_(self.decay).add_(param, alpha=1 - self.decay)

    @torch.no_grad()
    def averaged(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged parameters (the live ones before the first update)."""
        if self.steps == 0 or self.decay == 0:
            return {k: p.detach().clone() for k, p in module.named_parameters()}
        correction = 1 - self.decay**self.steps
        return {k: v / correction for k, v in self.biased.items()}

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "steps": self.steps,
            "biased": {k: v.detach().cpu() for k, v in self.biased.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.steps = state["decay"], state["steps"]
        for k, v in state["biased"].items():
            self.biased[k].copy_(v)
