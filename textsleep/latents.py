"""The learnable picture: one latent and one class vector per generator block.

BigGAN-deep takes a 128-d ``z`` and a class embedding.  Like big-sleep we give
every generator block (and the first linear layer) its own ``z`` and its own
class logits, which lets the optimiser mix structure and texture from
different places in latent space.  :class:`MixedLatents` learns each of them
as FuseDream's mix of K bases instead.

Both kinds give the same face to the dream: calling one gives ``z`` (B, L, 128)
and class vectors (B, L, 1000) for BigGAN; :meth:`~Latents.current` the latents
(``z`` and class ``logits``) a run records; :meth:`~Latents.clamp_` keeps them
in the truncation range after each step.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Latents", "MixedLatents", "EMA", "truncated_normal", "topk_classes", "mix", "logit"]


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

    bases = 1

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z, self.classes()

    def current(self) -> dict[str, torch.Tensor]:
        """The latents as a run records them: ``z`` (B, L, 128) and class ``logits`` (B, L, 1000), detached."""
        return {"z": self.z.detach(), "logits": self.logits.detach()}

    @torch.no_grad()
    def clamp_(self) -> None:
        bound = 2.0 * self.truncation
        self.z.clamp_(-bound, bound)


def mix(weights: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """FuseDream's mix, per coordinate: Σₖ softmax(weights, over k) ⊙ basesₖ.  (B, K, …) × (B, K, …) → (B, …)."""
    return (torch.softmax(weights, dim=1) * bases).sum(dim=1)


def logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The inverse of the sigmoid, for p kept within [eps, 1 − eps]."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class MixedLatents(nn.Module):
    """FuseDream's over-parameterised latents: each picture's latents a learnt mix of K bases.

    For every layer, ``z = Σₖ softmax(w_z, over k) ⊙ Zₖ`` per coordinate (FuseDream's formula, applied to each of
    our per-layer latents), and the class vector ``c = Σₖ softmax(w_c, over k) ⊙ σ(Yₖ)`` per class.  FuseDream mixes
    BigGAN's class embedding; BigGAN-deep computes that embedding linearly from the class vector, so mixing the
    bases' class vectors mixes their embeddings, class by class.  Bases ``Z`` (B, K, L, 128) and class logits ``Y``
    (B, K, L, 1000) and the weights ``w_z``, ``w_c`` are all learnt; the bases are clamped to ``±2·truncation``
    (FuseDream: ±2), so the mix stays there too.  What a run records (:meth:`current`) is the mix: ``z`` and the
    logits of ``c``, which the sigmoid turns back into ``c``.  Bases are drawn as :class:`Latents` draws its
    latents, the weights from a standard normal (as FuseDream's), each picture from its own generator.
    """

    def __init__(
        self,
        num_latents: int,
        *,
        bases: int,
        generators: "list[torch.Generator | None]" = (None,),
        z_dim: int = 128,
        num_classes: int = 1000,
        truncation: float = 1.0,
    ) -> None:
        super().__init__()
        self.truncation, self.bases, self.max_classes = truncation, bases, None
        shape = (1, bases, num_latents)
        z, logits, z_weights, class_weights = [], [], [], []
        for g in generators:
            z.append(torch.cat([truncated_normal((1, 1, num_latents, z_dim), g) for _ in range(bases)], 1) * truncation)
            logits.append(torch.randn((*shape, num_classes), generator=g) * 0.3 - 3.9)
            z_weights.append(torch.randn((*shape, z_dim), generator=g))
            class_weights.append(torch.randn((*shape, num_classes), generator=g))
        self.z = nn.Parameter(torch.cat(z))  # (B, K, L, 128) the bases
        self.logits = nn.Parameter(torch.cat(logits))  # (B, K, L, 1000) the bases' class logits
        self.z_weights = nn.Parameter(torch.cat(z_weights))
        self.class_weights = nn.Parameter(torch.cat(class_weights))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed ``z`` (B, L, 128) and class vectors (B, L, 1000)."""
        return mix(self.z_weights, self.z), mix(self.class_weights, torch.sigmoid(self.logits))

    def basis_classes(self) -> torch.Tensor:
        """Each basis' class vectors (B, K, L, 1000)."""
        return torch.sigmoid(self.logits)

    def classes_from(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    @torch.no_grad()
    def current(self) -> dict[str, torch.Tensor]:
        z, classes = self()
        return {"z": z, "logits": logit(classes)}

    @torch.no_grad()
    def clamp_(self) -> None:
        bound = 2.0 * self.truncation
        self.z.clamp_(-bound, bound)


class EMA:
    """Bias-corrected exponential moving average of latents as a run records them (``module.current()``).

    For :class:`Latents` those are its parameters; for :class:`MixedLatents` the mixed latents.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.biased = {k: torch.zeros_like(p) for k, p in module.current().items()}

    @torch.no_grad()
    def update(self, module: nn.Module, *, foreach: bool = False) -> None:
        """One step of the average; ``foreach`` does it for all latents at once (the same numbers)."""
        self.steps += 1
        values = module.current()
        if foreach:
            biased = [self.biased[name] for name in values]
            torch._foreach_mul_(biased, self.decay)
            torch._foreach_add_(biased, list(values.values()), alpha=1 - self.decay)
            return
        for name, value in values.items():
            self.biased[name].mul_(self.decay).add_(value, alpha=1 - self.decay)

    @torch.no_grad()
    def averaged(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged latents (the live ones before the first update)."""
        if self.steps == 0 or self.decay == 0:
            return {k: v.detach().clone() for k, v in module.current().items()}
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
