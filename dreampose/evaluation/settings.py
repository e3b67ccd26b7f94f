"""What `dreampose evaluate` does, as settings with the paper's defaults (Table 1).

Only light modules are imported, so the command's options can be listed instantly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from dreampose.rendering.settings import FAST_PREVIEW, RenderSettings
from dreampose.training.settings import DEFAULT_LORA_RANK, FinetuneSettings

PRESETS = ("paper", "fast", "turbo")
TURBO_INTERVAL = 3  # about 2x faster renders (benchmarks/RESULTS.md)
FINETUNE_MODES = ("none", "lora", "full")


def preset(name: str) -> RenderSettings:
    """The sampler presets: ``paper`` (100 PNDM steps, sI 8, sP 3), ``fast`` (25 DPM-Solver++
    steps), ``turbo`` (the paper's sampler reusing the UNet's deep features between steps,
    every TURBO_INTERVAL-th step in full: DeepCache, ``dreampose.model.turbo``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}")
    if name == "fast":
        return FAST_PREVIEW
    if name == "turbo":
        return RenderSettings(turbo=TURBO_INTERVAL)
    return RenderSettings()


@dataclass(frozen=True)
class EvaluationSettings:
    """What the protocol does; defaults are the paper's (Table 1)."""

    frames_per_video: int = field(default=50, metadata={"help": "frames compared per video (paper: 50)"})
    min_gap: int = field(
        default=50,
        metadata={"help": "the first compared frame is this far after the input frame (paper: 50)"},
    )
    size: int = field(default=256, metadata={"help": "metric resolution: frame height in px (paper: 256)"})
    input_frame: int = field(default=0, metadata={"help": "the subject frame of each video"})
    finetune: str = field(
        default="none",
        metadata={
            "help": "subject finetuning on each video's input frame before rendering (paper: full)",
            "choices": FINETUNE_MODES,
        },
    )
    render: RenderSettings = field(default_factory=RenderSettings)
    finetune_settings: FinetuneSettings = field(default_factory=FinetuneSettings)

    def __post_init__(self) -> None:
        for name, low in (("frames_per_video", 1), ("min_gap", 1), ("input_frame", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name.replace('_', '-')} must be a whole number >= {low}; got {value}")
        if not isinstance(self.size, int) or not 32 <= self.size <= self.render.height:
            raise ValueError(
                f"--size must be between 32 and the render height {self.render.height}; got {self.size}"
            )
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"--finetune must be one of {', '.join(FINETUNE_MODES)}; got {self.finetune!r}")
        if self.finetune == "lora" and not self.finetune_settings.lora_rank:
            object.__setattr__(
                self, "finetune_settings", replace(self.finetune_settings, lora_rank=DEFAULT_LORA_RANK)
            )
        if self.finetune == "full" and self.finetune_settings.lora_rank:
            object.__setattr__(self, "finetune_settings", replace(self.finetune_settings, lora_rank=0))
        # finetune on the canvas that is rendered
        object.__setattr__(
            self,
            "finetune_settings",
            replace(self.finetune_settings, height=self.render.height, width=self.render.width),
        )

    @property
    def metric_size(self) -> tuple[int, int]:
        """(height, width) the metrics see: ``size`` high, the render canvas's aspect."""
        return self.size, max(1, round(self.size * self.render.width / self.render.height))

    def to_json(self) -> dict:
        data = asdict(self)
        if self.finetune == "none":
            data.pop("finetune_settings")
        return data
