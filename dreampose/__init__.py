"""DreamPose: fashion image-to-video synthesis with Stable Diffusion (Karras et al., 2023)."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import dreampose` (and `dreampose --help`) does not pull in torch.
    if name in ("DreamPosePipeline", "DreamPoseOutput"):
        from dreampose.model import pipeline

        return getattr(pipeline, name)
    if name == "ImageAdapter":
        from dreampose.model.adapter import ImageAdapter

        return ImageAdapter
    raise AttributeError(f"module 'dreampose' has no attribute {name!r}")
