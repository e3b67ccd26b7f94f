"""Checks of the numbers a render is asked for, shared by the pipeline and the settings
dataclasses, so a bad value is refused before any model loads, with the same words
everywhere. Only the standard library is imported."""

from __future__ import annotations

import math

from dreampose.base import paper

# Guidance beyond this only saturates the frames (the paper uses sI 8, sP 3); inf or 1e30
# would render black frames without an error.
MAX_GUIDANCE = 30.0
MAX_INFERENCE_STEPS = 1000  # the length of Stable Diffusion's training schedule
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes


def check_guidance(name: str, scale: float) -> None:
    """Refuse a guidance weight that is not a number from 0 to MAX_GUIDANCE, naming the range."""
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 <= scale <= MAX_GUIDANCE):
        raise ValueError(
            f"{name} must be a number from 0 to {MAX_GUIDANCE:g} (the paper uses sI {paper.IMAGE_GUIDANCE:g}, "
            f"sP {paper.POSE_GUIDANCE:g}); got {scale}"
        )


# PNDM runs one step more than asked: asked for all 1000, it steps past the end of the schedule
# (diffusers' IndexError "index 1000 is out of bounds").
MAX_PNDM_STEPS = MAX_INFERENCE_STEPS - 1


def check_steps(steps: int, sampler: str | None = None) -> None:
    if not isinstance(steps, int) or not 1 <= steps <= MAX_INFERENCE_STEPS:
        raise ValueError(
            f"num_inference_steps must be a whole number from 1 to {MAX_INFERENCE_STEPS}; got {steps}"
        )
    if sampler == "pndm" and steps > MAX_PNDM_STEPS:
        raise ValueError(
            f"pndm takes at most {MAX_PNDM_STEPS} steps (it runs one more than asked, and the noise schedule "
            f"has {MAX_INFERENCE_STEPS}); got {steps}: choose fewer steps or another sampler"
        )


# What a height/width option means when not given (dreampose.runtime.references.model_canvas).
MODEL_SIZE_TEXT = (
    "the size the model was trained at: 640 x 512 for the official model, 256 x 192 for the demo"
)


def check_size(height: int, width: int) -> None:
    for name, size in (("height", height), ("width", width)):
        if not isinstance(size, int) or size < 64 or size % 64:
            raise ValueError(f"{name} must be a positive multiple of 64 (e.g. 640 x 512); got {size}")


def check_interval(interval) -> None:
    """Raise a clear ValueError unless ``interval`` (the turbo setting) is a whole number >= 1."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(
            f"turbo must be a whole number of at least 1 (run the whole UNet every N-th step); got {interval!r}"
        )


def check_seed(seed: int) -> None:
    """A seed torch.Generator accepts (a larger one fails deep inside torch with "Overflow when
    unpacking long long")."""
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"the seed must be a whole number from 0 to 2**63 - 1; got {seed}")
