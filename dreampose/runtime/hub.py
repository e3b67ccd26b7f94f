"""Publishing DreamPose models on the Hugging Face Hub, and fetching published LoRA subjects.

:func:`push_model` uploads a model folder as it is on disk, in diffusers format, with a
model card, in one commit: a converted official model, a trained base model or a full
subject (``save_pretrained`` folders: ``model_index.json`` and one folder per component),
or a LoRA subject (``subject.json`` and its three ``.safetensors``). Only model files go up:
resumable training state, samples and pickles stay home.

A LoRA subject names its base model in ``subject.json``. Anyone who loads it from the hub
must be able to load that base too, so a subject whose base is a local folder is pushed
only with ``base_model`` set to the hub id where that base was published.

:func:`fetch_subject` is the loading side: ``--model owner/name`` of a LoRA subject fetches
its small folder so :func:`dreampose.runtime.loading.load_pipeline` can apply it onto its base.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dreampose.model.subject import SUBJECT_FILE
from dreampose.runtime.references import resolve

CARD_FILE = "README.md"
SETUP_RECORD = "dreampose_setup.json"  # written by `dreampose download` into the models it converts
CONVERSION_RECORD = "conversion.json"  # written by `dreampose convert` (dreampose.model.convert)
RECORDS = (SETUP_RECORD, CONVERSION_RECORD)
SUBJECT_WEIGHTS = (
    "unet_lora.safetensors",
    "unet.safetensors",
    "adapter.safetensors",
    "vae_decoder.safetensors",
)
COMPONENT_SUFFIXES = (".json", ".safetensors", ".txt")  # configs, weights, tokenizer-like lists
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
LICENCE = "creativeml-openrail-m"  # Stable Diffusion v1.4's, which every DreamPose model derives from


@dataclass(frozen=True)
class ModelFolder:
    """What is about to be published: the files (path in repo -> file on disk) and facts for the card."""

    kind: str  # "lora-subject" or "pipeline"
    files: dict[str, Path]
    numerics: str
    base_model: str | None  # a LoRA subject's base (hub id or "tiny")
    meta: dict  # model_index.json or subject.json
    records: dict  # setup/conversion records found in the folder


# --------------------------------------------------------------------------- what to publish
def inspect_model_folder(folder: str | os.PathLike) -> ModelFolder:
    """The publishable files of a DreamPose model folder or LoRA subject folder.

    Raises a ValueError that says what is wrong with anything else.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    model = resolve(str(folder))
    if model.kind == "lora":
        return _lora_subject(folder)
    if model.kind in ("pipeline", "demo"):
        return _pipeline_folder(folder)
    if model.kind != "invalid" or (folder / SUBJECT_FILE).is_file():
        raise ValueError(model.problem)
    raise ValueError(
        f"{folder} is not a DreamPose model: it has neither model_index.json (a converted, trained or "
        "fully finetuned model) nor subject.json (a LoRA subject from `dreampose finetune --lora-rank`)"
    )


def _lora_subject(folder: Path) -> ModelFolder:
    meta = _read_json(folder / SUBJECT_FILE)  # checked by resolve
    files = {name: folder / name for name in SUBJECT_WEIGHTS if (folder / name).is_file()}
    unet = {"unet_lora.safetensors", "unet.safetensors"} & set(files)
    missing = [n for n in ("adapter.safetensors", "vae_decoder.safetensors") if n not in files]
    if not unet or missing:
        shown = ", ".join(missing + ([] if unet else ["unet_lora.safetensors"]))
        raise ValueError(
            f"the subject in {folder} is incomplete: {shown} missing; finish or rerun the finetuning"
        )
    files[SUBJECT_FILE] = folder / SUBJECT_FILE
    return ModelFolder("lora-subject", files, "", str(meta["base_model"]), meta, {})


def _pipeline_folder(folder: Path) -> ModelFolder:
    meta = _read_json(folder / "model_index.json")
    components = [
        name for name, value in meta.items() if not name.startswith("_") and isinstance(value, list)
    ]
    files = {"model_index.json": folder / "model_index.json"}
    pickles = []
    for name in components:
        component = folder / name
        if not component.is_dir():
            raise ValueError(
                f"{folder} lists the component {name!r} in model_index.json but has no {name}/ folder"
            )
        for path in sorted(p for p in component.rglob("*") if p.is_file()):
            if path.suffix in PICKLE_SUFFIXES:
                pickles.append(path.relative_to(folder).as_posix())
            elif path.suffix in COMPONENT_SUFFIXES:
                files[path.relative_to(folder).as_posix()] = path
    if pickles:
        raise ValueError(
            f"{folder} holds pickled weights ({', '.join(pickles[:3])}); publish safetensors only: load the "
            "model and save it again with save_pretrained(folder, safe_serialization=True)"
        )
    records = {}
    for name in RECORDS:
        if (folder / name).is_file():
            files[name] = folder / name
            records[name] = _read_json(folder / name)
    return ModelFolder("pipeline", files, str(meta.get("numerics", "dreampose")), None, meta, records)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


# --------------------------------------------------------------------------- publishing
def push_model(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    base_model: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    api=None,
) -> str:
    """Upload the model in ``folder`` to the hub repository ``repo_id`` with a model card, in
    one commit; return the repository's URL.

    ``base_model`` (LoRA subjects only) replaces the base recorded in ``subject.json`` in the
    uploaded copy: the hub id where the base model was published. ``api`` is an ``HfApi``
    (default: a new one with ``token``).
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    if repo_id.count("/") != 1:
        raise ValueError(f"REPO_ID must look like owner/name; got {repo_id!r}")
    model = inspect_model_folder(folder)
    files = dict(model.files)
    extra: dict[str, bytes] = {}
    if model.kind == "lora-subject":
        base = base_model or model.base_model
        if resolve(base).kind not in ("hub", "tiny"):
            raise ValueError(
                f"the subject's base model is the local folder {base}, which people loading it from the hub "
                "do not have: publish the base first (dreampose push-to-hub BASE_FOLDER owner/base) and "
                "pass --base-model owner/base"
            )
        if base != model.base_model:
            extra[SUBJECT_FILE] = json.dumps({**model.meta, "base_model": base}, indent=2).encode()
            del files[SUBJECT_FILE]
        model = ModelFolder(model.kind, model.files, model.numerics, base, model.meta, model.records)
    elif base_model is not None:
        raise ValueError("--base-model applies to LoRA subjects only; this folder holds a whole model")
    extra[CARD_FILE] = model_card(model, repo_id).encode()

    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()
    ]
    operations += [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in extra.items()
    ]
    api = api if api is not None else HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload DreamPose {describe_kind(model)}",
            repo_type="model",
        )
    except HfHubHTTPError as e:
        if getattr(e.response, "status_code", None) in (401, 403):
            raise ValueError(
                f"the hub refused to write to {repo_id} ({e.response.status_code}): log in with "
                "`hf auth login`, or pass --token with a token that may write there"
            ) from e
        raise
    return str(url)


def describe_kind(model: ModelFolder) -> str:
    """A few words for what the folder holds."""
    if model.kind == "lora-subject":
        return "subject model (LoRA)"
    if model.meta.get("tiny_random"):
        return "random test model"
    if _is_converted(model):
        return "model converted from the official checkpoints"
    return "model"


# --------------------------------------------------------------------------- the model card
def model_card(model: ModelFolder, repo_id: str) -> str:
    """The repository's README.md: what the model is, where it came from, its numerics, its
    licence, and how to load it."""
    base = model.base_model or _stable_diffusion_base(model)
    header = ["---", "library_name: diffusers", f"license: {LICENCE}"]
    if base and base != "tiny":
        header.append(f"base_model: {base}")
    header += ["tags:", "- dreampose", "- image-to-video", "- pose-transfer", "- stable-diffusion", "---", ""]
    name = repo_id.split("/")[-1]
    lines = [f"# DreamPose: {name}", "", _summary(model), ""]
    lines += ["## Source", "", *_source_lines(model), ""]
    if model.kind == "pipeline":
        lines += ["## Numerics", "", _numerics_text(model.numerics), ""]
    lines += ["## How to use", "", *_usage_lines(model, repo_id), ""]
    lines += ["## Licence", "", *_licence_lines(model), ""]
    return "\n".join(header + lines)


def _summary(model: ModelFolder) -> str:
    if model.kind == "lora-subject":
        rank = model.meta.get("lora", {}).get("rank")
        return (
            f"A DreamPose subject model: the LoRA (rank {rank}) of a subject finetuning (paper section 4.3), "
            "with the finetuned image adapter and VAE decoder. It is applied onto its base model when "
            "loaded."
        )
    if model.meta.get("tiny_random"):
        return "A tiny DreamPose model with random weights, for tests: its frames are noise."
    if _is_converted(model):
        return (
            "The official DreamPose weights (Karras et al. 2023, johannakarras/DreamPose) converted to "
            "the diffusers format of the open-source DreamPose app."
        )
    return "A DreamPose model (image- and pose-conditioned Stable Diffusion, Karras et al. 2023) in diffusers format."


def _source_lines(model: ModelFolder) -> list[str]:
    lines = []
    for record in model.records.values():
        for kind, shown in sorted(record.get("checkpoints", {}).items()):
            lines.append(f"- official {kind} checkpoint: {_shown(shown)}")
        for part, key in sorted(record.get("sources", {}).items()):
            lines.append(f"- {part}: `{key}`")
        for part in ("base_model", "image_encoder"):
            if part in record:
                lines.append(f"- {part.replace('_', ' ')}: `{record[part]}`")
        if record.get("created"):
            lines.append(f"- converted on {record['created']}")
    if model.kind == "lora-subject":
        lines.append(f"- base model: `{model.base_model}`")
        steps = model.meta.get("steps_done") or {}
        if steps:
            lines.append("- finetuning steps: " + ", ".join(f"{k} {v}" for k, v in sorted(steps.items())))
    if not lines and _is_converted(model):
        lines.append("- converted from official DreamPose checkpoints (which files was not recorded)")
    if not lines:
        lines.append(
            "- trained (`dreampose train`) or finetuned (`dreampose finetune`) with the DreamPose app"
        )
    return lines


def _is_converted(model: ModelFolder) -> bool:
    return model.kind == "pipeline" and (bool(model.records) or model.numerics == "official")


def _shown(shown) -> str:
    if isinstance(shown, dict):
        return ", ".join(f"{k} {v}" for k, v in shown.items())
    return f"`{shown}`"


def _numerics_text(numerics: str) -> str:
    from dreampose.model.numerics import numerics_for

    return f'`numerics: "{numerics}"`: {numerics_for(numerics).summary}'


def _usage_lines(model: ModelFolder, repo_id: str) -> list[str]:
    lines = [
        "With the DreamPose app (the `dreampose` package, which holds the pipeline class), by hub id:",
        "",
        "```",
        f"dreampose render --model {repo_id} --image photo.jpg --poses dance.npz --output out.mp4",
        f"DREAMPOSE_MODEL={repo_id} python app.py",
        "```",
        "",
        "In Python:",
        "",
        "```python",
        "from dreampose import load_pipeline, render_video",
        "from pose_extraction.pose_sequence import PoseSequence",
        "",
        f'pipe = load_pipeline("{repo_id}")',
        'render_video(pipe, "photo.jpg", PoseSequence.load("dance.npz"), "out.mp4")',
        "```",
    ]
    if model.kind == "lora-subject":
        lines += ["", f"Loading it also loads its base model, `{model.base_model}`."]
    else:
        lines += [
            "",
            "The folder loads with `DreamPosePipeline.from_pretrained` (`dreampose.model.pipeline`): "
            "the pipeline class and its image adapter come with the app, not with diffusers.",
        ]
    return lines


def _licence_lines(model: ModelFolder) -> list[str]:
    lines = [
        "- The weights derive from Stable Diffusion v1.4 (CompVis/stable-diffusion-v1-4), released under the "
        "CreativeML OpenRAIL-M licence: its use restrictions apply to this model and to what it makes.",
        "- The image encoder is OpenAI's CLIP ViT-B/32 (openai/clip-vit-base-patch32).",
    ]
    if _is_converted(model):
        lines.append(
            "- The official DreamPose checkpoints were released by the paper's authors with their MIT-licensed "
            "code (johannakarras/DreamPose); the base model was trained on the UBC Fashion dataset, whose "
            "terms also apply."
        )
    if model.kind == "lora-subject":
        lines.append("- A subject model shows a real person: publish it only with that person's consent.")
    elif not _is_converted(model):
        lines.append("- A model finetuned on photos of a person: publish it only with that person's consent.")
    return lines


def _stable_diffusion_base(model: ModelFolder) -> str | None:
    return "CompVis/stable-diffusion-v1-4" if _is_converted(model) else None


# --------------------------------------------------------------------------- fetching
def fetch_subject(repo_id: str) -> Path | None:
    """The local copy of a LoRA subject published as ``repo_id``; None when ``repo_id`` is
    not a hub id or its repository holds no ``subject.json`` (a whole model, or unreachable:
    loading it as a whole model then says what is wrong)."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    if resolve(repo_id).kind != "hub":
        return None
    try:
        huggingface_hub.hf_hub_download(repo_id, SUBJECT_FILE)
    except (EntryNotFoundError, OSError, ValueError):
        return None  # no such file or repo, an invalid id, or offline without a cached copy
    folder = huggingface_hub.snapshot_download(repo_id, allow_patterns=[SUBJECT_FILE, *SUBJECT_WEIGHTS])
    return Path(folder)


def hub_model_index(repo_id: str) -> dict | None:
    """``model_index.json`` of a hub model, or None when it cannot be had."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    if resolve(repo_id).kind != "hub":
        return None
    try:
        return json.loads(Path(huggingface_hub.hf_hub_download(repo_id, "model_index.json")).read_text())
    except (EntryNotFoundError, OSError, ValueError):
        return None
