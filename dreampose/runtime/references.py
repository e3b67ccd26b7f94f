"""What a model reference names: the one answer to "what is this model?".

A ``--model`` string (or ``$DREAMPOSE_MODEL``, or the app's choice) is resolved once into a
:class:`ModelRef`. Loading (``loading.load_pipeline``), the numerics lookup, the app's model
status, publishing (``hub``) and the CLI all read that one value, so they cannot disagree
about what a folder is:

========  =====================================================================================
kind      what it is
========  =====================================================================================
tiny      ``tiny``: the random plumbing model, built in memory (its frames are noise)
demo      ``demo``: the demo model shipped in ``assets/demo-model`` (a ``save_pretrained`` folder)
pipeline  a DreamPose model folder (``model_index.json``): converted, trained, or a full subject
lora      a LoRA subject folder (``subject.json``), applied onto its base model when loaded
hub       a Hugging Face Hub id (``owner/name``): a model or a LoRA subject, fetched when loaded
official  the official ``.pth`` checkpoints, which ``dreampose convert`` must convert first
invalid   a folder or file that is none of these
missing   nothing there (``demo`` without the demo model, or a path that does not exist)
========  =====================================================================================

Resolving reads two small JSON files at most, never weights, and never the network; only
:meth:`ModelRef.model_index` and :meth:`ModelRef.numerics` of a hub id ask the hub.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dreampose.base.files import read_json
from dreampose.model.subject import SUBJECT_FILE, SUBJECT_FORMAT

TINY = "tiny"
DEMO = "demo"
MODEL_ENV = "DREAMPOSE_MODEL"
DEFAULT_MODEL_DIR = Path("models") / "dreampose"
DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo-model"
MODEL_INDEX = "model_index.json"
PIPELINE_CLASS = "DreamPosePipeline"  # what a DreamPose folder's model_index.json names
FINETUNE_FILE = "finetune.json"  # a model's own subject-finetuning defaults (the demo model has one)
MODEL_HELP = "a DreamPose model folder, a finetuned subject folder, a hub id, 'demo' or 'tiny'"

Kind = Literal["tiny", "demo", "pipeline", "lora", "hub", "official", "invalid", "missing"]
LOADABLE = ("tiny", "demo", "pipeline", "lora", "hub")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference. ``name`` is the reference as chosen; ``path`` the folder
    (or file) it names on disk; ``problem``, for the kinds that cannot load, one sentence
    saying what is wrong and what to do."""

    name: str
    kind: Kind
    path: Path | None = None
    problem: str = ""

    @property
    def loadable(self) -> bool:
        return self.kind in LOADABLE

    @property
    def pretrained(self) -> str:
        """What ``DreamPosePipeline.from_pretrained`` is given: the folder, or the hub id."""
        return str(self.path) if self.path is not None else self.name

    def base(self) -> ModelRef:
        """A LoRA subject's base model, as recorded in its ``subject.json``."""
        if self.kind != "lora":
            raise ValueError(f"{self.name} is a {self.kind} model, not a LoRA subject")
        return resolve(_subject_description(self.path)["base_model"])

    def model_index(self) -> dict:
        """The ``model_index.json`` of a whole model (asked of the hub for a hub id); {} when
        there is none or it cannot be read."""
        if self.kind == "tiny":
            return {"numerics": "dreampose", "tiny_random": True}
        if self.kind in ("demo", "pipeline"):
            return read_json(self.path / MODEL_INDEX)
        if self.kind == "hub":
            from dreampose.runtime.hub import hub_model_index

            return hub_model_index(self.name) or {}
        return {}

    @property
    def tiny_random(self) -> bool:
        """The random test model, or a subject finetuned from it (its frames are noise).
        Decided offline: a model on the hub counts as a real one."""
        if self.kind == "lora":
            base = self.base()
            return base.kind != "hub" and base.tiny_random
        return self.kind != "hub" and bool(self.model_index().get("tiny_random"))

    def numerics(self):
        """The model's input conventions (``dreampose.model.numerics``), without loading weights:
        a LoRA subject has its base's. Our own when they cannot be read (loading then says why)."""
        from dreampose.model.numerics import DREAMPOSE, numerics_for

        try:
            if self.kind == "lora":
                return self.base().numerics()
            if self.kind == "hub":
                subject = self.fetch_subject()
                if subject is not None:
                    return subject.numerics()
            return numerics_for(str(self.model_index().get("numerics", DREAMPOSE.name)))
        except (OSError, ValueError):
            return DREAMPOSE

    def native_size(self) -> tuple[int, int] | None:
        """The (height, width) the model was trained at, read from its adapter's config (the
        pooled latent grid is a quarter of that size over the VAE's downsampling): the canvas
        it renders best at. None when it cannot be read without the network (a hub id) or it
        has none (the tiny model, whose callers choose a small canvas)."""
        if self.kind == "lora":
            return self.base().native_size()
        if self.kind not in ("demo", "pipeline"):
            return None
        adapter = read_json(self.path / "adapter" / "config.json")
        vae = read_json(self.path / "vae" / "config.json")
        if "pooled_size" not in adapter or "block_out_channels" not in vae:
            return None
        # The inverse of model.adapter.adapter_for: the pooled grid is half the latent grid.
        scale = 2 * 2 ** (len(vae["block_out_channels"]) - 1)
        return int(adapter["pooled_size"][0]) * scale, int(adapter["pooled_size"][1]) * scale

    def finetune_defaults(self) -> dict:
        """The model's own subject-finetuning defaults (``finetune.json``: FinetuneSettings
        fields such as steps and learning rates); {} for the paper's. A small model trained
        from scratch needs far fewer, larger steps than Stable Diffusion's 500 + 1500."""
        if self.kind == "lora":
            return self.base().finetune_defaults()
        if self.kind not in ("demo", "pipeline"):
            return {}
        return read_json(self.path / FINETUNE_FILE)

    def fetch_subject(self) -> ModelRef | None:
        """A hub id that holds a LoRA subject: its small folder, fetched (None otherwise)."""
        from dreampose.runtime.hub import fetch_subject

        folder = fetch_subject(self.name) if self.kind == "hub" else None
        return resolve(str(folder)) if folder is not None else None

    def describe(self) -> str:
        """A few words for logs and the page."""
        return {
            "tiny": "the tiny random model",
            "demo": f"the demo model ({self.path})",
            "pipeline": f"the model in {self.path}",
            "lora": f"the LoRA subject in {self.path}",
            "hub": f"{self.name} from the Hugging Face Hub",
        }.get(self.kind, self.name)


def chosen_model(model: str | None = None) -> str:
    """Which model to use: ``--model``, else ``$DREAMPOSE_MODEL``, else the official model
    that ``dreampose download`` set up, else ``models/dreampose``."""
    if model or os.environ.get(MODEL_ENV):
        return model or os.environ[MODEL_ENV]
    from dreampose.setup import installed_model

    installed = installed_model()
    return str(installed) if installed is not None else str(DEFAULT_MODEL_DIR)


def resolve(model: str | os.PathLike | ModelRef | None = None) -> ModelRef:
    """What ``model`` names (None: the :func:`chosen_model`)."""
    if isinstance(model, ModelRef):
        return model
    name = chosen_model(str(model) if model else None)
    if name == TINY:
        return ModelRef(name, "tiny")
    if name == DEMO:
        if (DEMO_MODEL_DIR / MODEL_INDEX).is_file():
            return ModelRef(name, "demo", DEMO_MODEL_DIR)
        return ModelRef(
            name,
            "missing",
            DEMO_MODEL_DIR,
            "the demo model is not in this checkout (assets/demo-model); try --model tiny, or give another model",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return _folder(name, path)
    if path.is_file():
        if path.suffix == ".pth":
            return ModelRef(name, "official", path, _convert_first(path, [path]))
        return ModelRef(name, "invalid", path, f"{path} is a file; give --model {MODEL_HELP}")
    if looks_like_hub_id(name) and path != DEFAULT_MODEL_DIR:
        return ModelRef(name, "hub")
    return ModelRef(
        name,
        "missing",
        path,
        f"there is no DreamPose model at {path}: get the official one with `dreampose download`, "
        f"or give --model {MODEL_HELP}",
    )


def model_canvas(model: str | os.PathLike | ModelRef | None = None) -> tuple[int, int]:
    """The (height, width) to render and finetune ``model`` at unless told otherwise: the size
    it was trained at, else the paper's 640 x 512."""
    from dreampose.base import paper

    return resolve(model).native_size() or (paper.HEIGHT, paper.WIDTH)


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with no other slashes, and not a path (``./x``, ``~/x``, ``/x``)."""
    return bool(_HUB_ID.fullmatch(name)) and not os.path.isabs(name)


def _folder(name: str, path: Path) -> ModelRef:
    if (path / SUBJECT_FILE).is_file():
        try:
            _subject_description(path)
        except ValueError as e:
            return ModelRef(name, "invalid", path, str(e))
        return ModelRef(name, "lora", path)
    if (path / MODEL_INDEX).is_file():
        made_by = read_json(path / MODEL_INDEX).get("_class_name", PIPELINE_CLASS)
        if made_by != PIPELINE_CLASS:  # e.g. a Stable Diffusion folder
            return ModelRef(
                name,
                "invalid",
                path,
                f"{path} holds a {made_by}, not a DreamPose model: make one from it with `dreampose train`",
            )
        return ModelRef(name, "pipeline", path)
    checkpoints = sorted(path.glob("*.pth"))
    if checkpoints:
        return ModelRef(name, "official", path, _convert_first(path, checkpoints))
    return ModelRef(
        name,
        "invalid",
        path,
        f"{path} is not a DreamPose model folder (no {MODEL_INDEX}). Get the official model with "
        "`dreampose download`, or make one with `dreampose convert` or `dreampose finetune`",
    )


def _convert_first(path: Path, checkpoints: list[Path]) -> str:
    def named(prefix: str, fallback: str) -> str:
        found = [p for p in checkpoints if p.name.startswith(prefix)]
        return str(found[0]) if found else fallback

    unet = named("unet", "unet_epoch_N.pth")
    adapter = named("adapter", "adapter_N.pth")
    return (
        f"{path} holds official DreamPose checkpoints (.pth), which must be converted before they render: "
        f"`dreampose convert --unet {unet} --adapter {adapter} --output models/dreampose` "
        "(or `dreampose download`, which fetches and converts them), then use --model models/dreampose"
    )


def _subject_description(folder: Path) -> dict:
    """A LoRA subject's ``subject.json``, checked; a ValueError naming the file otherwise."""
    meta = read_json(folder / SUBJECT_FILE)
    if meta.get("format") != SUBJECT_FORMAT or not meta.get("base_model"):
        raise ValueError(f"{folder / SUBJECT_FILE} is not a DreamPose subject model description")
    return meta
