"""`dreampose push-to-hub` and loading what it published, against a local stand-in for the hub.

``FakeHub`` plays ``HfApi`` (it writes each commit's files into a folder per repository) and
the two download functions the loader uses, so nothing here reaches the real hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from dreampose.cli import main
from dreampose.model.subject import SUBJECT_FILE, write_description
from dreampose.model.tiny import tiny_pipeline
from dreampose.runtime.hub import push_model
from tests.helpers.download import official_files
from tests.helpers.models import tiny_lora_subject
from tests.helpers.poses import SIZE


class FakeHub:
    """HfApi's create_repo/create_commit and the hub downloads, on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos: dict[str, dict] = {}
        self.commits: list[tuple[str, list[str], str]] = []

    # HfApi
    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None, **_):
        self.repos[repo_id] = {"private": private, "repo_type": repo_type}
        return f"https://hub.example/{repo_id}"

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, **_):
        assert repo_id in self.repos, "commit to a repository that was not created"
        names = []
        for op in operations:
            target = self.root / repo_id / op.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            source = op.path_or_fileobj
            target.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
            names.append(op.path_in_repo)
        self.commits.append((repo_id, sorted(names), commit_message))

    # huggingface_hub downloads
    def hf_hub_download(self, repo_id, filename, **_):
        path = self.root / repo_id / filename
        if not path.is_file():
            raise huggingface_hub.errors.EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(path)

    def snapshot_download(self, repo_id, allow_patterns=None, **_):
        return str(self.root / repo_id)

    def files(self, repo_id: str) -> set[str]:
        return {
            p.relative_to(self.root / repo_id).as_posix()
            for p in (self.root / repo_id).rglob("*")
            if p.is_file()
        }


@pytest.fixture
def hub(tmp_path, monkeypatch) -> FakeHub:
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: fake)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


@pytest.fixture
def lora_subject(tmp_path) -> Path:
    """A LoRA subject of the tiny model whose LoRA, adapter and decoder all changed."""
    folder = tiny_lora_subject(tmp_path / "subject")
    (folder / "checkpoint").mkdir()  # resumable state left by an interrupted run: not for the hub
    (folder / "checkpoint" / "optimizer.pt").write_bytes(b"not for the hub")
    return folder


def render(pipe, subject_image, poses) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": 1, "height": SIZE, "width": SIZE, "frames": [0], "output_type": "np"}
    return pipe(subject_image, poses, generator=torch.Generator().manual_seed(0), **kwargs).frames


# --------------------------------------------------------------------------- converted models
def test_converted_model_is_published_in_diffusers_format_with_a_card(tmp_path, hub, capsys):
    files = official_files(tmp_path / "official")
    paths = {}
    for kind in ("unet", "adapter", "vae"):
        paths[kind] = tmp_path / f"{kind}_20.pth"
        paths[kind].write_bytes(getattr(files, kind))
    converted = tmp_path / "converted"
    argv = [
        "convert",
        "--base-model",
        str(files.sd),
        "--image-encoder",
        str(files.clip),
        "--output",
        str(converted),
    ]
    assert main(argv + [f"--{k}={p}" for k, p in paths.items()]) == 0

    assert main(["push-to-hub", str(converted), "me/dreampose-official", "--private"]) == 0
    assert "me/dreampose-official" in capsys.readouterr().out
    assert hub.repos["me/dreampose-official"] == {"private": True, "repo_type": "model"}
    assert len(hub.commits) == 1  # everything in one commit
    uploaded = hub.files("me/dreampose-official")
    assert {
        "model_index.json",
        "README.md",
        "conversion.json",
        "unet/config.json",
        "adapter/config.json",
    } <= uploaded
    assert "unet/diffusion_pytorch_model.safetensors" in uploaded
    assert not [name for name in uploaded if name.endswith((".bin", ".pt", ".pth"))]

    card = (hub.root / "me/dreampose-official" / "README.md").read_text()
    record = json.loads((converted / "conversion.json").read_text())
    assert record["checkpoints"]["unet"]["file"] == "unet_20.pth"
    assert record["checkpoints"]["unet"]["sha256"] in card  # the source checkpoints
    assert 'numerics: "official"' in card
    assert "license: creativeml-openrail-m" in card and "MIT" in card
    assert "dreampose render --model me/dreampose-official" in card
    assert "library_name: diffusers" in card


def test_a_folder_that_is_no_model_is_refused(tmp_path, hub, capsys):
    (tmp_path / "photos").mkdir()
    assert main(["push-to-hub", str(tmp_path / "photos"), "me/x"]) == 2
    assert "neither model_index.json" in capsys.readouterr().err
    assert not hub.commits


def test_pickled_weights_are_not_published(tmp_path, hub):
    folder = tmp_path / "model"
    tiny_pipeline(0).save_pretrained(folder)
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="safe_serialization"):
        push_model(folder, "me/model", api=hub)
    assert not hub.commits


# --------------------------------------------------------------------------- LoRA subjects
def test_pushed_lora_subject_loads_by_hub_id(lora_subject, hub, subject_image, poses):
    from dreampose.runtime.loading import load_pipeline
    from dreampose.runtime.references import resolve

    assert main(["push-to-hub", str(lora_subject), "me/subject"]) == 0
    uploaded = hub.files("me/subject")
    assert uploaded == {
        SUBJECT_FILE,
        "README.md",
        "unet_lora.safetensors",
        "adapter.safetensors",
        "vae_decoder.safetensors",
    }  # no checkpoint/ state
    card = (hub.root / "me/subject" / "README.md").read_text()
    assert "LoRA (rank 4)" in card and "consent" in card

    from_hub = render(load_pipeline("me/subject", device="cpu"), subject_image, poses)
    from_disk = render(load_pipeline(str(lora_subject), device="cpu"), subject_image, poses)
    base = render(load_pipeline("tiny", device="cpu"), subject_image, poses)
    np.testing.assert_array_equal(from_hub, from_disk)
    assert not np.array_equal(from_hub, base)  # the subject's weights were applied
    assert resolve("me/subject").numerics().name == "dreampose"


def test_lora_subject_of_a_local_base_needs_the_base_on_the_hub(tmp_path, lora_subject, hub):
    base = tmp_path / "base"
    tiny_pipeline(0).save_pretrained(base)
    write_description(lora_subject, str(base), 4, {"unet": 5})
    with pytest.raises(ValueError, match="--base-model owner/base"):
        push_model(lora_subject, "me/subject", api=hub)

    push_model(lora_subject, "me/subject", base_model="me/base", api=hub)
    published = json.loads((hub.root / "me/subject" / SUBJECT_FILE).read_text())
    assert published["base_model"] == "me/base"
    assert json.loads((lora_subject / SUBJECT_FILE).read_text())["base_model"] == str(base)  # untouched
    assert "`me/base`" in (hub.root / "me/subject" / "README.md").read_text()


def test_base_model_option_is_for_subjects_only(tmp_path, hub):
    folder = tmp_path / "model"
    tiny_pipeline(0).save_pretrained(folder)
    with pytest.raises(ValueError, match="LoRA subjects only"):
        push_model(folder, "me/model", base_model="me/base", api=hub)


def test_a_refused_login_says_how_to_log_in(tmp_path, hub, monkeypatch):
    import httpx

    def refuse(*args, **kwargs):
        response = httpx.Response(401, request=httpx.Request("POST", "https://hub.example/api/repos/create"))
        raise huggingface_hub.errors.HfHubHTTPError("401 Unauthorized", response=response)

    monkeypatch.setattr(hub, "create_repo", refuse)
    folder = tmp_path / "model"
    tiny_pipeline(0).save_pretrained(folder)
    with pytest.raises(ValueError, match="hf auth login"):
        push_model(folder, "me/model", api=hub)


def test_hub_and_convert_agree_on_the_record_name():
    from dreampose.model import convert
    from dreampose.runtime import hub

    assert hub.CONVERSION_RECORD == convert.CONVERSION_RECORD
