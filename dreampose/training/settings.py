"""Run settings of both training phases, with the paper's defaults (``dreampose.base.paper``).

Frozen dataclasses, checked when made, so a bad value fails before any model is loaded.
Each field's ``help`` metadata makes its command-line option (``dreampose.base.arguments``),
so the CLI and the Python API cannot drift apart. Only the standard library is imported
at module level: ``dreampose finetune --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dreampose.base import paper
from dreampose.model.checks import MODEL_SIZE_TEXT, check_seed, check_size

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
# The rank of quick LoRA subjects (the app's LoRA mode, `evaluate --finetune lora`).
DEFAULT_LORA_RANK = 8


@dataclass(frozen=True)
class CropScale:
    """Random zoom: keep a crop of ``min_scale``..``max_scale`` of each side, resize it back.

    The same scale is used for height and width, so people are never stretched. 1.0 and 1.0
    turn the augmentation off.
    """

    min_scale: float = 0.8
    max_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(
                "crop scales must satisfy 0 < min_scale <= max_scale <= 1; "
                f"got min_scale={self.min_scale}, max_scale={self.max_scale}"
            )

    def sample(self, generator=None):
        """Draw a crop box (scale, then position) from ``generator`` (a torch.Generator)."""
        import torch

        from dreampose.training.augment import CropBox

        u = torch.rand(3, generator=generator).tolist()
        scale = self.min_scale + (self.max_scale - self.min_scale) * u[0]
        return CropBox(top=(1 - scale) * u[1], left=(1 - scale) * u[2], height=scale, width=scale)


@dataclass(frozen=True)
class ConditionDropout:
    """Classifier-free guidance dropout (supplement, section 1): each sample independently
    loses its pose with probability ``pose``, its image with ``image``, both with ``both``."""

    pose: float = paper.DROPOUT_POSE
    image: float = paper.DROPOUT_IMAGE
    both: float = paper.DROPOUT_BOTH

    def __post_init__(self) -> None:
        rates = (self.pose, self.image, self.both)
        if min(rates) < 0 or sum(rates) > 1:
            raise ValueError(
                f"dropout rates must be >= 0 and sum to at most 1; got pose={self.pose}, "
                f"image={self.image}, both={self.both}"
            )

    def draw(self, batch: int, generator=None):
        """Boolean masks (drop_image, drop_pose), each (batch,), from one uniform draw per
        sample so the three cases are mutually exclusive with exactly these rates."""
        import torch

        u = torch.rand(batch, generator=generator)
        pose_only = u < self.pose
        image_only = (u >= self.pose) & (u < self.pose + self.image)
        both = (u >= self.pose + self.image) & (u < self.pose + self.image + self.both)
        return image_only | both, pose_only | both


NO_DROPOUT = ConditionDropout(0.0, 0.0, 0.0)


def _model_default(paper_value) -> str:
    return f"the model's own (the demo model's finetune.json), else the paper's {paper_value:g}"


def _option(help_text: str, **more) -> dict:
    return {"metadata": {"help": help_text, **more}}


def _check_at_least(settings, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be a whole number >= {minimum}; got {value}")


@dataclass(frozen=True)
class _OptimiserSettings:
    """What both phases' optimisation shares (their fields come first in each)."""

    gradient_checkpointing: bool = field(
        default=True,
        **_option(
            "keep activations instead of recomputing them: faster, more memory",
            flag="--no-gradient-checkpointing",
        ),
    )
    use_8bit_adam: bool = field(
        default=False, **_option("8-bit AdamW (needs bitsandbytes)", flag="--8bit-adam")
    )
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class FinetuneSettings(_OptimiserSettings):
    """Subject finetuning (phase 2), with the paper's defaults (supplement, section 1)."""

    unet_steps: int = field(
        default=paper.FINETUNE_UNET_STEPS,
        **_option("UNet + adapter steps", default_text=_model_default(paper.FINETUNE_UNET_STEPS)),
    )
    unet_lr: float = field(
        default=paper.FINETUNE_UNET_LR,
        **_option("UNet + adapter learning rate", default_text=_model_default(paper.FINETUNE_UNET_LR)),
    )
    vae_steps: int = field(
        default=paper.FINETUNE_VAE_STEPS,
        **_option("VAE decoder steps", default_text=_model_default(paper.FINETUNE_VAE_STEPS)),
    )
    vae_lr: float = field(
        default=paper.FINETUNE_VAE_LR,
        **_option("VAE decoder learning rate", default_text=_model_default(paper.FINETUNE_VAE_LR)),
    )
    batch_size: int = field(default=1, **_option("photos per step"))
    seed: int = field(default=0, **_option("random seed (crops, noise, timesteps)"))
    height: int = field(
        default=paper.HEIGHT, **_option("training height, a multiple of 64", default_text=MODEL_SIZE_TEXT)
    )
    width: int = field(
        default=paper.WIDTH, **_option("training width, a multiple of 64", default_text=MODEL_SIZE_TEXT)
    )
    crop_min_scale: float = field(
        default=0.8, **_option("random crops keep 80-100%% of each side, against texture sticking (1 = off)")
    )
    lora_rank: int = field(default=0, **_option("train a rank-R LoRA instead of the whole UNet (0 = full)"))
    mixed_precision: str = field(
        default="auto",
        **_option(
            "auto: the device's dtype (bf16 or fp16 on GPUs, none on the CPU)", choices=MIXED_PRECISION
        ),
    )
    checkpoint_every: int = field(default=100, **_option("steps between resumable checkpoints"))

    def __post_init__(self) -> None:
        _check_at_least(self, 0, "unet_steps", "vae_steps", "lora_rank")
        if self.unet_steps == 0 and self.vae_steps == 0:  # would publish an untrained copy
            raise ValueError(
                "unet_steps and vae_steps are both 0, so nothing would be fine-tuned; "
                "give at least one of them a number of steps"
            )
        _check_at_least(self, 1, "batch_size", "checkpoint_every")
        for name in ("unet_lr", "vae_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        check_size(self.height, self.width)
        check_seed(self.seed)
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}; got {self.mixed_precision!r}"
            )
        self.crop  # noqa: B018 - checks the scale

    @property
    def crop(self) -> CropScale:
        return CropScale(self.crop_min_scale, 1.0)


@dataclass(frozen=True)
class TrainSettings(_OptimiserSettings):
    """Base training (phase 1), with the paper's defaults. ``batch_size`` is per device; the
    effective batch is batch_size x gradient_accumulation_steps x number of processes."""

    height: int = field(default=paper.HEIGHT, **_option("training height, a multiple of 64"))
    width: int = field(default=paper.WIDTH, **_option("training width, a multiple of 64"))
    batch_size: int = field(default=paper.TRAIN_BATCH_SIZE, **_option("frames per device and step"))
    gradient_accumulation_steps: int = field(
        default=paper.TRAIN_ACCUMULATION_STEPS, **_option("micro-batches per optimiser step")
    )
    learning_rate: float = field(default=paper.TRAIN_LR, **_option("learning rate"))
    epochs: int = field(default=paper.TRAIN_EPOCHS, **_option("passes over the dataset"))
    max_steps: int | None = field(default=None, **_option("optimiser steps (overrides --epochs)"))
    pose_dropout: float = field(default=paper.DROPOUT_POSE, **_option("probability of dropping the pose"))
    image_dropout: float = field(default=paper.DROPOUT_IMAGE, **_option("probability of dropping the image"))
    both_dropout: float = field(default=paper.DROPOUT_BOTH, **_option("probability of dropping both"))
    crop_scale: float | None = field(
        default=None, **_option("aligned random crops down to this scale, e.g. 0.8 (off in the paper)")
    )
    mixed_precision: str = field(
        default="no", **_option("accelerate's mixed precision", choices=("no", "fp16", "bf16"))
    )
    checkpoint_every: int = field(default=500, **_option("steps between checkpoints"))
    keep_checkpoints: int = field(default=2, **_option("checkpoints kept"))
    sample_every: int = field(default=500, **_option("steps between sample frames (0: none)"))
    sample_steps: int = 25
    num_workers: int = field(default=2, **_option("data loader worker processes"))
    seed: int = field(default=0, **_option("random seed"))
    image_encoder: str = field(
        default=paper.IMAGE_ENCODER, **_option("CLIP vision model, when building from Stable Diffusion")
    )

    def __post_init__(self) -> None:
        check_size(self.height, self.width)
        check_seed(self.seed)
        _check_at_least(
            self, 1, "batch_size", "gradient_accumulation_steps", "checkpoint_every", "keep_checkpoints"
        )
        _check_at_least(self, 0, "sample_every", "num_workers")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1; got {self.max_steps}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16; got {self.mixed_precision!r}")
        self.dropout, self.crop  # noqa: B018 - checks the rates and the scale

    @property
    def dropout(self) -> ConditionDropout:
        return ConditionDropout(self.pose_dropout, self.image_dropout, self.both_dropout)

    @property
    def crop(self) -> CropScale | None:
        return CropScale(self.crop_scale, 1.0) if self.crop_scale else None
