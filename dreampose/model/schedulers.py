"""Samplers selectable by name. PNDM with 100 steps is the paper's sampler.

Every render makes its own scheduler instance (:func:`make_scheduler`): schedulers keep
state while sampling (PNDM's and DPM-Solver's previous model outputs, the step index), so
one instance shared by two concurrent renders would corrupt both. The names are plain
strings here, so the CLI can list them without importing diffusers.
"""

from __future__ import annotations

# Stable Diffusion 1.x's noise schedule (its scheduler/scheduler_config.json): what every
# sampler of a DreamPose model shares, and what the tiny and benchmark models are built with.
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
}

# name -> (diffusers class, config overrides, one-line description for users)
SAMPLERS = {
    "pndm": (
        "PNDMScheduler",
        {"skip_prk_steps": True},
        "the paper's sampler (which it ran for 100 steps); runs one step more than asked",
    ),
    # Stable Diffusion's own configs turn DDIM's x0 clipping off; a config that does not say
    # (the tiny model's) would otherwise get diffusers' default, clipping on.
    "ddim": ("DDIMScheduler", {"clip_sample": False}, "deterministic, good from about 50 steps"),
    "dpm++": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++"},
        "fastest: about 25 steps look like 100 PNDM steps (the fast preset)",
    ),
    "euler": ("EulerDiscreteScheduler", {}, "simple and robust, good from about 30 steps"),
}


def describe_samplers() -> str:
    """One line per sampler, for help texts."""
    return "; ".join(f"{name}: {description}" for name, (_, _, description) in SAMPLERS.items())


def sampler_name(scheduler) -> str | None:
    """The name in SAMPLERS of a scheduler instance's kind (None for another kind)."""
    kind = type(scheduler).__name__
    return next((name for name, (class_name, _, _) in SAMPLERS.items() if class_name == kind), None)


def make_scheduler(name: str, config):
    """A new scheduler of kind ``name`` sharing ``config``'s noise schedule (betas, timesteps)."""
    import diffusers

    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    class_name, overrides, _ = SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(config, **overrides)
