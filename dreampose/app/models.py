"""Which model the app runs, whether it is there, and the models it keeps loaded.

Loading a DreamPose model takes tens of seconds, so the base model, the last finetuned
subject and the DensePose extractor are loaded once, on first use, and shared by every
session (rendering is read-only for the models; each render makes its own sampler).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from dreampose.app.messages import MISSING_MODEL_HELP, UserError, for_page, sentence
from dreampose.runtime import loading
from dreampose.runtime.references import DEMO, resolve

TINY_CANVAS = (128, 128)  # the tiny model renders noise: keep it small and fast


@dataclass(frozen=True)
class ModelStatus:
    """Whether the chosen model can be loaded, and if not, what to tell the user."""

    model: str
    ready: bool
    message: str = ""
    tiny: bool = False  # the random test model (its frames are noise)


def model_status(model: str) -> ModelStatus:
    """Ready for whatever loads (``references.resolve``: tiny, demo, a model or LoRA subject
    folder, a hub id, which is downloaded on first use); else how to get a model."""
    ref = resolve(model)
    if ref.loadable:
        return ModelStatus(model, True, tiny=ref.tiny_random)
    message = MISSING_MODEL_HELP.format(model=model)
    if ref.kind != "missing" or ref.name == DEMO:  # say what is wrong with what is there
        message += f"\n{for_page(sentence(ref.problem))}"
    return ModelStatus(model, False, message)


class ModelCache:
    """The base model, the last finetuned subject and DensePose, loaded once (thread-safe)."""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        cpu_offload: bool = False,
        densepose_weights: str | None = None,
        extractor=None,
        extractor_kwargs: dict | None = None,
        tiny: bool = False,
        speed=None,
    ) -> None:
        self.model = model
        # The tiny test model gets a tiny random DensePose unless weights are given: the
        # whole app then runs offline (its poses are noise, and the page says so).
        self.densepose = loading.DensePoseOptions(
            backend="tiny" if tiny and not densepose_weights else "native"
        )
        self.device, self.dtype, self.cpu_offload = device, dtype, cpu_offload
        self.speed = speed  # dreampose.runtime.speed settings; None: the device's defaults
        self.densepose_weights = densepose_weights
        self.extractor_kwargs = dict(extractor_kwargs or {})
        self._extractor = extractor
        self._base = None
        self._subject: tuple[str, object] | None = None  # (folder, pipeline)
        self._lock = threading.Lock()

    def pipeline(self, subject: Path | None = None):
        """The finetuned ``subject`` when given, else the base model."""
        with self._lock:
            if subject is not None:
                if self._subject is None or self._subject[0] != str(subject):
                    self._subject = None  # free the previous subject before loading the next
                    self._subject = (str(subject), self._load(str(subject)))
                return self._subject[1]
            if self._base is None:
                self._base = self._load(self.model)
            return self._base

    def _load(self, model: str):
        pipe = loading.load_pipeline(model, self.device, self.dtype, self.cpu_offload, self.speed)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def extractor(self):
        """The DensePose extractor, loaded on first use (downloads the weights once if needed)."""
        with self._lock:
            if self._extractor is None:
                try:
                    self._extractor = loading.load_densepose(
                        self.densepose_weights, self.densepose, self.device, **self.extractor_kwargs
                    )
                except (OSError, ValueError) as e:
                    detail = str(e).strip().rstrip(".")
                    advice = (
                        ""
                        if "--densepose-weights" in detail
                        else " Check the internet connection, or start the app with --densepose-weights "
                        "pointing at a downloaded copy."
                    )
                    raise UserError(
                        f"The pose detector (DensePose) could not be loaded: {detail}.{advice}"
                    ) from e
            return self._extractor
