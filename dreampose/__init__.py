"""DreamPose: fashion image-to-video synthesis with Stable Diffusion (Karras et al., 2023).

The names users need, loaded on first use (so ``import dreampose`` and ``dreampose --help``
do not pull in torch): the pipeline (``dreampose.model.pipeline``), its image adapter,
``load_pipeline`` (any model reference on its device, ``dreampose.runtime.loading``) and
``render_video`` (poses to an mp4, ``dreampose.rendering.video``).
"""

__version__ = "0.1.0"

_LAZY = {
    "DreamPosePipeline": "dreampose.model.pipeline",
    "DreamPoseOutput": "dreampose.model.pipeline",
    "ImageAdapter": "dreampose.model.adapter",
    "load_pipeline": "dreampose.runtime.loading",
    "render_video": "dreampose.rendering.video",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dreampose' has no attribute {name!r}")
