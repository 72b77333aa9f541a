"""One dream in progress, stepped by its caller: :class:`Dream` and the :class:`Step` record of each step.

A :class:`Dream` holds everything that changes while dreaming — latents,
their moving average, the optimiser and the random state — and nothing else:
it never prints and never writes files.  Each :meth:`Dream.step` returns a
:class:`Step`; the caller's loop decides what to do with it (show progress,
save, stop).
"""

from __future__ import annotations

import torch

from . import losses
from .cutouts import Cutouts
from .fastclip import use_attention
from .guides import Judge, encode_prompts, prompt_scale, score_images
from .latents import EMA, Latents, MixedLatents
from .models import Clip
from .render import num_latents, render
from .settings import DreamSettings
from .speed import Levers, compiled

__all__ = ["Dream", "Step", "Judge", "encode_prompts", "score_images", "prompt_scale"]


class Step:
    """What one optimisation step did.

    - ``index``: steps done so far, counting this one (1-based);
    - ``loss``: the total loss that was minimised (summed over the pictures of a batch);
    - ``score``: weighted CLIP similarity of this step's cutouts (higher is better), mean over pictures;
    - ``losses``: the terms — clip, latent, class — as means over pictures;
    - ``scores``: the score of each picture of the batch.

    Each reads as a Python float.  A step made on a device may hold them there
    (:meth:`on_device`): they are then read back together, once, when one of
    them is first asked for, so making the step needs no host round-trip.
    """

    __slots__ = ("index", "_values", "_packed", "_names")

    def __init__(
        self, index: int, loss: float, score: float, losses: dict[str, float], scores: tuple[float, ...] = ()
    ) -> None:
        self.index = index
        self._values = (float(loss), float(score), {k: float(v) for k, v in losses.items()}, tuple(scores))
        self._packed, self._names = None, ()

    @classmethod
    def on_device(cls, index: int, loss: torch.Tensor, losses: dict[str, torch.Tensor], scores: torch.Tensor) -> "Step":
        """A step whose loss (), terms (each ()) and scores (B,) are still tensors, read when first asked for."""
        step = cls.__new__(cls)
        step.index, step._values, step._names = index, None, tuple(losses)
        parts = [loss.reshape(1), *(v.reshape(1) for v in losses.values()), scores.reshape(-1)]
        step._packed = torch.cat([p.detach().float() for p in parts])
        return step

    def _read(self) -> tuple:
        if self._values is None:
            values, k = self._packed.tolist(), len(self._names)
            scores = tuple(values[1 + k :])
            self._values = (values[0], sum(scores) / len(scores), dict(zip(self._names, values[1 : 1 + k])), scores)
            self._packed = None
        return self._values

    @property
    def loss(self) -> float:
        return self._read()[0]

    @property
    def score(self) -> float:
        return self._read()[1]

    @property
    def losses(self) -> dict[str, float]:
        return self._read()[2]

    @property
    def scores(self) -> tuple[float, ...]:
        return self._read()[3]

    def __repr__(self) -> str:
        return f"Step(index={self.index}, loss={self.loss!r}, score={self.score!r}, losses={self.losses!r})"


def _rows_by_picture(start: int, stop: int, count: int) -> list[tuple[int, slice]]:
    """Rows start…stop−1 of pictures × ``count`` cutouts, split by picture: [(picture, rows of its draw)]."""
    out = []
    while start < stop:
        picture, first = divmod(start, count)
        last = min(count, first + stop - start)
        out.append((picture, slice(first, last)))
        start += last - first
    return out


class Dream:
    """One dream in progress: one picture per seed, optimised towards the same prompts.

    With several judges (the guiding ensemble: CLIPs, preference models, see
    :mod:`textsleep.guides`) the similarity is their weighted mean, each judge
    seeing cutouts at its own input size, through its own view and
    normalisation; a judge of weight 0 is left out.  ``bases`` K > 1 learns each
    picture's latents as FuseDream's mix of K bases (:class:`~textsleep.latents.MixedLatents`);
    ``latent_noise`` σ adds N(0, σ²) to the latents BigGAN is given each step
    (to each ``z`` and each class vector), as FuseDream adds it to its mixed
    latent and class embedding.  Each picture draws every random number from
    its own seeded generator, so a picture is the same whether it is dreamt
    alone or in a batch.  ``compile`` runs BigGAN and CLIP through
    ``torch.compile`` (the same picture, to rounding); ``levers`` say how the
    step computes (:class:`~textsleep.speed.Levers`, by default what this
    device was measured fastest with).
    """

    def __init__(
        self,
        biggan,
        judges: list[Judge],
        *,
        seeds: list[int],
        lr: float = DreamSettings.lr,
        cutouts: int = DreamSettings.cutouts,
        augment: str = DreamSettings.augment,
        truncation: float = DreamSettings.truncation,
        max_classes: int | None = None,
        class_temperature: float = DreamSettings.class_temperature,
        ema_decay: float = DreamSettings.ema_decay,
        extra_loss=None,
        cutout_batch: int | None = DreamSettings.cutout_batch,
        compile: bool = DreamSettings.compile,
        levers: Levers | None = None,
        bases: int = DreamSettings.bases,
        latent_noise: float = DreamSettings.latent_noise,
    ) -> None:
        self.biggan = biggan
        self.extra_loss = extra_loss  # optional f(images (B,3,H,W)) -> (B,) added to the loss, e.g. a pixel loss
        self.judges = judges
        self.device = judges[0].clip.device
        self.aim(
            [(j.prompt_embeds, j.prompt_weights) for j in judges]
        )  # (clones: embeddings made under inference mode cannot join autograd)
        self.truncation, self.max_classes = truncation, max_classes
        self.seeds = list(seeds)
        self.generators = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        if bases > 1 and max_classes:
            raise ValueError(f"bases={bases} mixes class vectors, which max_classes' top-k cannot hold")
        if bases > 1:
            self.latents = MixedLatents(
                num_latents(biggan), bases=bases, generators=self.generators, truncation=truncation
            ).to(self.device)
        else:
            self.latents = Latents(
                num_latents(biggan),
                generators=self.generators,
                truncation=truncation,
                max_classes=max_classes,
                class_temperature=class_temperature,
            ).to(self.device)
        self.latent_noise = latent_noise
        self.lr, self.ema_decay = lr, ema_decay
        self._reset_optimiser()
        self.cutouts = [Cutouts(j.clip.image_size, cutouts, augment) for j in judges]
        self.levers = levers or Levers.for_device(self.device)
        if self.levers.cutout_batch is not None:
            cutout_batch = self.levers.cutout_batch or None
        self.cutout_batch = cutout_batch  # cutouts CLIP encodes at once (None: all); caps memory, same result
        # the step's two heavy parts, compiled or not; they take the models as arguments (see speed.compiled)
        self.compile = compile
        self._generate = compiled(_generate, self.device) if compile else _generate
        self._encode = compiled(_encode, self.device) if compile else _encode
        self._unchecked: tuple[int, torch.Tensor] | None = None  # without host_sync: the last loss not yet checked
        self.step_count = 0

    @classmethod
    def from_settings(cls, biggan, judges: list[Judge], settings: DreamSettings, *, extra_loss=None) -> "Dream":
        """A dream with every knob taken from ``settings`` (one picture per seed)."""
        s = settings
        return cls(
            biggan,
            judges,
            seeds=s.seeds,
            lr=s.lr,
            cutouts=s.cutouts,
            cutout_batch=s.cutout_batch,
            augment=s.augment,
            truncation=s.truncation,
            max_classes=s.max_classes,
            class_temperature=s.class_temperature,
            ema_decay=s.ema_decay,
            extra_loss=extra_loss,
            compile=s.compile,
            bases=s.bases,
            latent_noise=s.latent_noise,
        )

    def aim(self, targets: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Aim at other prompts from the next step on: one (embeddings (P, D), weights (P,)) per judge (a story's next
        part).
        """
        for judge, (embeds, weights) in zip(self.judges, targets, strict=True):
            judge.prompt_embeds = embeds.to(judge.clip.device).clone()
            judge.prompt_weights = weights.to(judge.clip.device).clone()

    def _reset_optimiser(self) -> None:
        self.ema = EMA(self.latents, self.ema_decay)
        self.optimizer = torch.optim.Adam(self.latents.parameters(), lr=self.lr)

    @torch.no_grad()
    def start_from(self, z: torch.Tensor | None, logits: torch.Tensor, *, bases: bool = False) -> None:
        """Replace the starting point (before the first step): best-of-K starts, inverted photos, other runs.

        ``z`` (B or 1, L, 128) and ``logits`` (B or 1, L, 1000) go to every basis of mixed latents; with ``bases``
        they are one per basis, (B, K, L, 128) and (B, K, L, 1000).  ``z`` None keeps the latents drawn.
        """
        if self.step_count:
            raise RuntimeError("start_from() must come before the first step")
        mixed = self.latents.bases > 1
        for target, value in ((self.latents.z, z), (self.latents.logits, logits)):
            if value is not None:
                value = value.to(target)
                target.copy_((value.unsqueeze(-3) if mixed and not bases else value).expand_as(target))
        self.latents.clamp_()
        self._reset_optimiser()

    # -------------------------------------------------------------------------------- the loop
    def similarity(self, images: torch.Tensor, *, backward_scale: float | None = None) -> torch.Tensor:
        """Weighted CLIP similarity of random cutouts of each picture, averaged over judges: (B,).

        Cutouts go through CLIP ``cutout_batch`` at a time.  With ``backward_scale``
        each batch's share of ``backward_scale × similarity`` is backpropagated to
        ``images`` at once, so only one batch's activations are held at a time;
        the similarity is then returned detached.  What is backpropagated is the
        weighted sum over prompts (the loss); what is returned, the score, is
        their weighted mean (:func:`prompt_scale`).
        """
        total = sum(j.weight for j in self.judges)
        b, _, h, w = images.shape
        sim = torch.zeros(b, device=self.device)
        noise_device = images.device if self.levers.noise_on_device else None
        for judge, cutouts in zip(self.judges, self.cutouts):
            if judge.weight == 0:  # (left out: no random numbers drawn, nothing computed)
                continue
            use_attention(judge.clip.model, self.levers.attention)  # (each time: dreams may share a model)
            # (all random numbers first, in a fixed order)
            draws = [cutouts.draw(h, w, g, noise_device=noise_device) for g in self.generators]
            step = self.cutout_batch or b * cutouts.count
            for start in range(0, b * cutouts.count, step):
                stop = min(start + step, b * cutouts.count)
                cut = torch.cat(
                    [
                        cutouts.apply(images[p : p + 1], draws[p], rows)
                        for p, rows in _rows_by_picture(start, stop, cutouts.count)
                    ]
                )
                if judge.view is not None:
                    cut = judge.view(cut)
                embeds = self._encode(judge.clip, cut.to(judge.clip.device))
                shares = [embeds.new_zeros(())] * b  # this batch's share of each picture's similarity
                offset = 0
                for p, rows in _rows_by_picture(start, stop, cutouts.count):
                    n = rows.stop - rows.start
                    mean = judge.similarity(embeds[None, offset : offset + n])[0]
                    shares[p] = mean * (judge.weight / total * n / cutouts.count)
                    offset += n
                part = torch.stack(shares).to(self.device)
                if backward_scale is not None:
                    (part.sum() * backward_scale).backward()
                    part = part.detach()
                sim = sim + part / prompt_scale(judge).to(part)
        return sim

    def step(self) -> Step:
        if self.compile and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the CUDA graphs' last outputs may be reused
        noise = self._noise() if self.latent_noise else None
        images, terms = self._generate(self.biggan, self.latents, noise, self.truncation, not self.max_classes)
        # CLIP's part of the gradient is taken batch by batch of cutouts into a detached copy of the pictures,
        # then carried back through BigGAN once, with the other terms
        pixels = images.detach().requires_grad_()
        sim = self.similarity(pixels, backward_scale=-losses.SIMILARITY_WEIGHT)
        terms = {"clip": -losses.SIMILARITY_WEIGHT * sim, **terms}
        if self.extra_loss is not None:
            terms["extra"] = self.extra_loss(images)
        rest = sum(v for k, v in terms.items() if k != "clip").sum()
        loss = rest.detach() + terms["clip"].sum()
        if self.levers.host_sync and not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {self.step_count + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward([rest, images], [None, pixels.grad.to(images.dtype)])
        self.optimizer.step()
        self.latents.clamp_()
        self.ema.update(self.latents, foreach=self.levers.foreach_ema)
        self.step_count += 1
        step = Step.on_device(self.step_count, loss, {k: v.mean() for k, v in terms.items()}, sim)
        if self.levers.host_sync:
            step._read()  # (now, as one copy)
        else:  # the loss before this one is checked now: the device stays a step ahead
            unchecked, self._unchecked = self._unchecked, (self.step_count, loss.detach())
            if unchecked is not None:
                _check_finite(*unchecked)
        return step

    def _noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """σ·N(0, 1) for each picture's ``z`` (B, L, 128) and class vectors (B, L, 1000), from its own generator."""
        (layers, z_dim), classes = self.latents.z.shape[-2:], self.latents.logits.shape[-1]
        draws = [(torch.randn(1, layers, z_dim, generator=g), torch.randn(1, layers, classes, generator=g))
                 for g in self.generators]  # fmt: skip
        return tuple(torch.cat(d).to(self.device) * self.latent_noise for d in zip(*draws))

    def check_finite(self) -> None:
        """Raise FloatingPointError if a step's loss was not finite (without host_sync it is checked a step late)."""
        if self._unchecked is not None:
            unchecked, self._unchecked = self._unchecked, None
            _check_finite(*unchecked)

    # -------------------------------------------------------------------------------- results
    @torch.inference_mode()
    def render(self, ema: bool = True) -> torch.Tensor:
        """The current pictures (B, 3, H, W) in [0, 1], from the moving average by default."""
        self.check_finite()
        params = self.latent_params(ema)
        return render(self.biggan, params["z"], params["classes"], self.truncation)

    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> list[float]:
        """Weighted CLIP similarity of whole pictures (one view each, no cutouts), averaged over judges."""
        return score_images(self.judges, images).tolist()

    @torch.no_grad()
    def latent_params(self, ema: bool = True) -> dict[str, torch.Tensor]:
        """``z`` (B, L, 128) and class vectors (B, L, 1000): the moving average by default."""
        params = self.ema.averaged(self.latents) if ema else self.latents.current()
        return {"z": params["z"], "classes": self.latents.classes_from(params["logits"])}

    # -------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        self.check_finite()
        return {
            "step": self.step_count,
            "latents": {k: v.detach().cpu() for k, v in self.latents.state_dict().items()},
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": [g.get_state() for g in self.generators],
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.latents.load_state_dict(state["latents"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        for g, saved in zip(self.generators, state["generators"]):
            g.set_state(saved)


def _check_finite(index: int, loss: torch.Tensor) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss became {loss.item()} at step {index}")


def _generate(biggan, latents, noise: tuple[torch.Tensor, torch.Tensor] | None, truncation: float, class_term: bool):
    """The generator's part of a step: pictures (B, 3, H, W) and the regularisers {name: (B,)} from the latents.

    ``noise`` is added to ``z`` and the class vectors BigGAN is given (not to what the regularisers see); the class
    regulariser keeps each basis' class vectors to one class (so mixed latents may fuse classes).
    """
    z, classes = latents()
    seen_z, seen_classes = (z, classes) if noise is None else (z + noise[0], classes + noise[1])
    images = render(biggan, seen_z, seen_classes, truncation)
    terms = {"latent": losses.latent_loss(z, truncation)}
    if class_term:
        terms["class"] = losses.class_loss(classes if latents.bases == 1 else latents.basis_classes())
    return images, terms


def _encode(clip: Clip, cutouts: torch.Tensor) -> torch.Tensor:
    """CLIP's unit embeddings (N, D) of cutouts (N, 3, S, S)."""
    return clip.encode_image(cutouts)
