"""How to sample a render: the settings the CLI options and the app's controls are made of.

Defaults are the paper's and the official README's (``dreampose.base.paper``); the bounds
are the model's checks (``dreampose.model.checks``), so the CLI, the app's sliders and the
Python API refuse the same values with the same words. Only light modules are imported:
``dreampose render --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dreampose.base import paper
from dreampose.model.checks import (
    MODEL_SIZE_TEXT,
    check_guidance,
    check_interval,
    check_seed,
    check_size,
    check_steps,
)
from dreampose.model.schedulers import SAMPLERS, describe_samplers

MAX_FPS = 1000  # far above any video player's rate; a larger value is a typo


def check_fps(fps: float | None) -> float | None:
    """The video's frame rate as given (None: the pose file's rate), refused unless a
    finite number in (0, MAX_FPS], before any model loads."""
    if fps is None:
        return None
    if fps == 0:
        raise ValueError("fps 0 is not a frame rate; omit --fps to use the pose file's rate")
    if not 0 < fps <= MAX_FPS:  # also refuses NaN
        raise ValueError(f"fps must be a number in (0, {MAX_FPS}]; got {fps:g}")
    return float(fps)


@dataclass(frozen=True)
class RenderSettings:
    """How to sample. Defaults are the paper's and the official README's; the ``help``
    metadata makes the command-line options (``dreampose.base.arguments``)."""

    image_guidance_scale: float = field(
        default=paper.IMAGE_GUIDANCE,
        metadata={"flag": "--image-guidance", "help": "sI, image guidance (eq. 4)"},
    )
    pose_guidance_scale: float = field(
        default=paper.POSE_GUIDANCE, metadata={"flag": "--pose-guidance", "help": "sP, pose guidance (eq. 4)"}
    )
    num_inference_steps: int = field(
        default=paper.INFERENCE_STEPS, metadata={"flag": "--steps", "help": "denoising steps"}
    )
    scheduler: str = field(
        default=paper.SAMPLER,
        metadata={"help": f"sampler ({describe_samplers()})", "choices": tuple(SAMPLERS)},
    )
    seed: int = field(default=0, metadata={"help": "random seed (0 to 2**63 - 1)"})
    height: int = field(
        default=paper.HEIGHT,
        metadata={"help": "output height, a multiple of 64", "default_text": MODEL_SIZE_TEXT},
    )
    width: int = field(
        default=paper.WIDTH,
        metadata={"help": "output width, a multiple of 64", "default_text": MODEL_SIZE_TEXT},
    )
    frame_batch_size: int | None = field(
        default=None,
        metadata={
            "flag": "--batch-frames",
            "help": "frames sampled together in one UNet batch (default: 1 on the CPU, "
            "as many as fit in the free memory of a GPU)",
        },
    )
    turbo: int | None = field(
        default=None,
        metadata={
            "metavar": "N",
            "help": "run the whole UNet only every N-th step and reuse its deep features in between "
            "(DeepCache: about 2x faster at N=3, slightly different frames; README). Default: off",
        },
    )
    noise_per_frame: bool = field(
        default=False,
        metadata={
            "help": "draw new initial noise for every frame (default: all frames share it, for consistency)"
        },
    )
    contrast_stretch: bool = field(
        default=True,
        metadata={
            "flag": "--no-contrast-stretch",
            "help": "models with official numerics: save frames as decoded, without the official code's "
            "per-frame min-max contrast stretch (done by default, as the official test.py does)",
        },
    )

    def __post_init__(self) -> None:
        check_guidance("image_guidance_scale", self.image_guidance_scale)
        check_guidance("pose_guidance_scale", self.pose_guidance_scale)
        check_steps(self.num_inference_steps, self.scheduler)
        check_size(self.height, self.width)
        if self.frame_batch_size is not None and (
            not isinstance(self.frame_batch_size, int) or self.frame_batch_size < 1
        ):
            raise ValueError(f"frame_batch_size must be at least 1; got {self.frame_batch_size}")
        check_seed(self.seed)
        if self.turbo is not None:
            check_interval(self.turbo)
        if self.scheduler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.scheduler!r}; choose one of {', '.join(SAMPLERS)}")


# 25 DPM-Solver++ steps: the fast preset for previews and guidance grids.
FAST_PREVIEW = RenderSettings(num_inference_steps=25, scheduler="dpm++")
