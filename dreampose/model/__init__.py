"""The DreamPose model: everything ``DreamPosePipeline.from_pretrained`` loads, and how it is called.

Stable Diffusion 1.x adapted as in the paper (section 4.2): the CLIP-VAE image adapter
(``adapter``), the UNet widened for a window of 5 poses (``unet``, ``pose_window``), dual
classifier-free guidance (``guidance``), the input conventions as one object chosen when the
model loads (``numerics``, their steps in ``conditioning``), the pipeline and the events its
frame loop yields (``events``), its samplers, the value checks (``checks``), official
checkpoint import (``convert``), LoRA subjects (``subject``) and the tiny random model for
tests (``tiny``). Importing this package is cheap: each module imports what it needs.
"""
