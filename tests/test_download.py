"""`dreampose download` against local stand-ins for Google Drive and the Hub.

A local HTTP server on 127.0.0.1 serves tiny checkpoints in the official format (as a .pth and as
a .zip); tiny Stable Diffusion and CLIP folders stand in for the hub repositories. Every test runs
the real code path: download, resume, unpack, identify, check, convert, render.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dreampose.base.downloads import (
    CorruptDownloadError,
    DiskFullError,
    DownloadError,
    OfflineError,
    Progress,
    download_file,
)
from dreampose.cli import main
from dreampose.setup import ModelSetup, SetupError, SetupOptions, installed_model, parse_source, run_setup
from dreampose.setup.contents import UnsafeArchiveError, inventory
from dreampose.setup.sources import Source
from tests.helpers.download import FileServer, closed_port, official_files, official_pose_zip, zip_bytes


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    return official_files(tmp_path_factory.mktemp("official"))


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


def options(tmp_path, official, **sources) -> SetupOptions:
    return SetupOptions(
        cache=tmp_path / "cache",
        sources={"stable_diffusion": str(official.sd), "clip": str(official.clip), **sources},
    )


def base_zip(official, unet_name="checkpoints/unet_epoch_20.pth", adapter_name="checkpoints/adapter_20.pth"):
    return zip_bytes(
        {unet_name: official.unet, adapter_name: official.adapter, "checkpoints/README.txt": b"hi"}
    )


def render_one_frame(model: Path) -> np.ndarray:
    from dreampose.rendering.frames import preview_frame
    from dreampose.rendering.settings import RenderSettings
    from dreampose.runtime.loading import load_pipeline
    from pose_extraction.pose_sequence import PoseSequence
    from tests.helpers.poses import make_poses

    pipe = load_pipeline(str(model), device="cpu")
    pipe.set_progress_bar_config(disable=True)
    poses = PoseSequence.from_uv(make_poses(4, 64), fps=10.0)
    image = np.random.default_rng(0).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    settings = RenderSettings(num_inference_steps=2, height=64, width=64)
    return preview_frame(pipe, image, poses, 1, settings)


# ----------------------------------------------------------------------------- the whole path
def test_download_converts_renders_and_a_second_run_does_nothing(tmp_path, official, server):
    steps = []
    opts = options(tmp_path, official, base=server.add("base.zip", base_zip(official)))
    result = run_setup(opts, report=steps.append)

    assert result.changed and result.base_model == tmp_path / "cache" / "models" / "base"
    assert installed_model(tmp_path / "cache") == result.base_model
    record = json.loads((result.base_model / "dreampose_setup.json").read_text())
    assert record["numerics"] == "official"
    assert record["checkpoints"] == {
        "unet": "base.zip/checkpoints/unet_epoch_20.pth",
        "adapter": "base.zip/checkpoints/adapter_20.pth",
    }
    # The converted UNet holds the official weights, not Stable Diffusion's.
    from safetensors.torch import load_file

    saved = load_file(result.base_model / "unet" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(saved["conv_in.weight"], official.unet_state["conv_in.weight"])
    # Byte progress was reported, with a total, for the download step.
    transfers = [s.transfer for s in steps if s.transfer is not None]
    assert transfers and transfers[-1].done == transfers[-1].total == len(server.files["base.zip"])
    assert [s.what for s in steps if s.transfer is None][
        0
    ] == "getting the DreamPose base model (UBC Fashion)"
    manifest = json.loads((tmp_path / "cache" / "official" / "manifest.json").read_text())
    (entry,) = manifest["sources"].values()
    assert entry["files"]["base.zip"]["size"] == len(server.files["base.zip"])

    frame = render_one_frame(result.base_model)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0

    requests = len(server.requests)
    again = run_setup(opts)
    assert not again.changed and again.base_model == result.base_model
    assert len(server.requests) == requests  # no network at all


def test_a_single_pth_without_adapter_says_what_it_found(tmp_path, official, server):
    opts = options(tmp_path, official, base=server.add("unet_epoch_20.pth", official.unet))
    with pytest.raises(SetupError) as info:
        run_setup(opts)
    message = str(info.value)
    assert "unet_epoch_20.pth: a DreamPose UNet, 14 input channels (5 poses)" in message
    assert "no adapter checkpoint (with vae2clip.weight)" in message
    assert "dreampose convert --unet" in message and "--base-source" in message
    # The missing piece given as a folder next to the downloaded UNet completes the setup.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.pth").write_bytes(official.unet)
    (folder / "b.pth").write_bytes(official.adapter)
    result = run_setup(options(tmp_path, official, base=str(folder)))
    assert installed_model(tmp_path / "cache") == result.base_model
    assert sorted(p.name for p in folder.iterdir()) == ["a.pth", "b.pth"]  # the user's folder is untouched


def test_swapped_and_misnamed_files_are_identified_by_their_keys(tmp_path, official, server):
    swapped = zip_bytes({"adapter_20.pth": official.unet, "unet_epoch_20.pth": official.adapter})
    result = run_setup(options(tmp_path, official, base=server.add("b.zip", swapped)))
    record = json.loads((result.base_model / "dreampose_setup.json").read_text())
    assert record["checkpoints"] == {"unet": "b.zip/adapter_20.pth", "adapter": "b.zip/unet_epoch_20.pth"}


def test_demo_subject_and_its_poses(tmp_path, official, server):
    subject = zip_bytes(
        {"custom-chkpts/unet_epoch_499.pth": official.unet, "custom-chkpts/adapter_499.pth": official.adapter,
         "custom-chkpts/vae_1499.pth": official.vae}
    )  # fmt: skip
    opts = SetupOptions(
        cache=tmp_path / "cache",
        base=False,
        demo_subject=True,
        sources={
            "subject": server.add("custom-chkpts.zip", subject),
            "poses": server.add("poses.zip", official_pose_zip(frames=3)),
            "stable_diffusion": str(official.sd),
            "clip": str(official.clip),
        },
    )
    result = run_setup(opts)
    assert result.model == result.subject_model == tmp_path / "cache" / "models" / "demo-subject"
    from pose_extraction.pose_sequence import PoseSequence

    poses = PoseSequence.load(result.demo_poses)
    assert len(poses) == 3 and poses.source_size == (40, 32)
    assert json.loads((result.subject_model / "dreampose_setup.json").read_text())["checkpoints"][
        "vae"
    ].endswith("vae_1499.pth")


# ----------------------------------------------------------------------------- interruptions
def test_a_dropped_connection_resumes_where_it_stopped(tmp_path, official, server):
    data = base_zip(official)
    url = server.add("base.zip", data, drop_after=len(data) // 2)
    result = run_setup(options(tmp_path, official, base=url))
    assert result.base_model is not None
    assert server.ranges("base.zip") == [None, f"bytes={len(data) // 2}-"]


def test_an_interrupted_download_resumes_in_the_next_run(tmp_path, server):
    data = bytes(range(256)) * 4000
    url = server.add("w.bin", data, drop_after=300_000)
    target = tmp_path / "w.bin"
    with pytest.raises(
        DownloadError, match="broke off after 300.0 KB .*run the same command again to resume"
    ):
        download_file(url, target, progress=False, retries=0)
    assert not target.exists() and (tmp_path / "w.bin.partial").stat().st_size == 300_000
    reports: list[Progress] = []
    done = download_file(url, target, progress=reports.append, retries=0)
    assert target.read_bytes() == data and not (tmp_path / "w.bin.partial").exists()
    assert server.ranges("w.bin")[-1] == "bytes=300000-"
    assert reports[0].done == 300_000 and reports[-1].done == reports[-1].total == len(data)
    import hashlib

    assert done.sha256 == hashlib.sha256(data).hexdigest()


def test_the_background_job_reports_progress_cancels_and_resumes(tmp_path, official, server):
    data = base_zip(official)
    url = server.add("base.zip", data, bytes_per_second=len(data) / 4)  # about 4 s
    job = ModelSetup(options(tmp_path, official, base=url))
    assert job.status().state == "idle" and job.start() and not job.start()
    deadline = time.monotonic() + 20
    while job.status().done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    running = job.status()
    assert running.state == "running" and running.total == len(data) and running.step == 1
    assert "getting the DreamPose base model" in running.text()
    job.cancel()
    assert job.wait(20).state == "cancelled"
    partial = list((tmp_path / "cache" / "official").glob(".incoming-base*/*.partial"))
    assert partial and partial[0].stat().st_size > 0

    server.behaviour["base.zip"].bytes_per_second = None
    assert job.start()
    final = job.wait(60)
    assert final.state == "ready", final.error
    assert final.model == tmp_path / "cache" / "models" / "base" and final.model.is_dir()
    assert server.ranges("base.zip")[-1].startswith("bytes=")


# ----------------------------------------------------------------------------- bad downloads
def test_a_corrupt_checkpoint_is_refused_and_deleted(tmp_path, official, server):
    truncated = official.unet[: len(official.unet) // 3]
    url = server.add(
        "base.zip", zip_bytes({"unet_epoch_20.pth": truncated, "adapter_20.pth": official.adapter})
    )
    with pytest.raises(CorruptDownloadError, match=r"unet_epoch_20.pth: not a PyTorch checkpoint .*deleted"):
        run_setup(options(tmp_path, official, base=url))
    assert not list((tmp_path / "cache" / "official").rglob("unet_epoch_20.pth"))
    assert installed_model(tmp_path / "cache") is None


def test_a_changed_download_fails_its_recorded_checksum(tmp_path, official, server):
    url = server.add("base.zip", base_zip(official))
    run_setup(options(tmp_path, official, base=url))
    import shutil

    shutil.rmtree(tmp_path / "cache" / "models")
    shutil.rmtree(tmp_path / "cache" / "official" / next(
        p.name for p in (tmp_path / "cache" / "official").iterdir() if p.name.startswith("base")
    ))  # fmt: skip
    server.files["base.zip"] = base_zip(official, unet_name="other/unet.pth")  # same URL, other bytes
    with pytest.raises(CorruptDownloadError, match="base.zip downloaded from .* differs from the copy first"):
        run_setup(options(tmp_path, official, base=url))


def test_a_cached_download_that_changed_is_caught_by_verify(tmp_path, official, server):
    url = server.add("base.zip", base_zip(official))
    opts = options(tmp_path, official, base=url)
    run_setup(opts)
    cached = next((tmp_path / "cache" / "official").glob("base*/base.zip"))
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptDownloadError, match="changed since it was downloaded"):
        run_setup(SetupOptions(**{**opts.__dict__, "verify": True}))


def test_no_network_gives_one_sentence_with_the_manual_route(tmp_path, official):
    url = f"http://127.0.0.1:{closed_port()}/base.zip"
    with pytest.raises(OfflineError) as info:
        run_setup(options(tmp_path, official, base=url))
    message = str(info.value)
    assert message.startswith(f"could not reach 127.0.0.1:{url.split(':')[2].split('/')[0]} to download")
    assert "check the internet connection" in message and "dreampose convert --unet" in message


def test_not_enough_disk_space_is_said_before_writing(tmp_path, server):
    url = server.add("huge.bin", b"x" * 100, announce=10**15)
    with pytest.raises(DiskFullError, match=r"is full \(1000000.0 GB needed.*DREAMPOSE_CACHE"):
        download_file(url, tmp_path / "huge.bin", progress=False, retries=0)
    assert not (tmp_path / "huge.bin").exists()


def test_an_archive_escaping_its_folder_is_refused(tmp_path, official, server):
    evil = zip_bytes({"unet_epoch_20.pth": official.unet, "../../escaped.pth": official.adapter})
    with pytest.raises(UnsafeArchiveError, match=r"'../../escaped.pth', which would be written outside"):
        run_setup(options(tmp_path, official, base=server.add("evil.zip", evil)))
    assert not list(tmp_path.rglob("escaped.pth"))
    assert not list((tmp_path / "cache" / "official").glob(".incoming-base*"))  # not kept in the cache


def test_links_are_refused_and_programs_are_not_unpacked(tmp_path, official):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"x/unet.pth": official.unet}, links={"x/passwd.pth": "/etc/passwd"}))
    with pytest.raises(UnsafeArchiveError, match="a link or device"):
        inventory(archive, tmp_path / "unpacked")
    archive.write_bytes(
        zip_bytes({"x/unet.pth": official.unet, "x/run.sh": b"rm -rf ~", "x/tool.exe": b"MZ"})
    )
    found = inventory(archive, tmp_path / "unpacked")
    assert {f.shown: f.kind for f in found} == {
        "a.zip/x/run.sh": "other", "a.zip/x/tool.exe": "other", "a.zip/x/unet.pth": "unet",
    }  # fmt: skip
    unpacked = [p.name for p in (tmp_path / "unpacked").rglob("*") if p.is_file()]
    assert unpacked == ["unet.pth"]
    assert (next((tmp_path / "unpacked").rglob("unet.pth")).stat().st_mode & 0o111) == 0


# ----------------------------------------------------------------------------- sources, gdown, CLI
def test_sources_from_flags_environment_and_links(tmp_path, monkeypatch):
    assert parse_source(
        "https://drive.google.com/drive/folders/15SaT3kZFRIjxuHT6UrGr6j0183clTK_D", "subject"
    ) == Source("drive_folder", "15SaT3kZFRIjxuHT6UrGr6j0183clTK_D")
    assert parse_source(
        "https://drive.google.com/file/d/10JjayW2mMqGxhUyM9ds_GHEvuqCTDaH3/view?usp=sharing", "base"
    ) == Source("drive_file", "10JjayW2mMqGxhUyM9ds_GHEvuqCTDaH3")
    assert parse_source("drive:abc", "poses") == Source("drive_folder", "abc")
    assert parse_source("me/sd-mirror@v2", "stable_diffusion") == Source("hub", "me/sd-mirror", "v2")
    assert parse_source(str(tmp_path), "base") == Source("path", str(tmp_path.resolve()))
    with pytest.raises(ValueError, match="--base-source .* 'me/model' is neither an existing file"):
        parse_source("me/model", "base")
    from dreampose.setup import source_for

    monkeypatch.setenv("DREAMPOSE_CLIP_SOURCE", str(tmp_path))
    assert source_for("clip") == Source("path", str(tmp_path.resolve()))
    assert source_for("clip", "hf:me/clip").location == "me/clip"  # the flag wins
    assert source_for("base").kind == "drive_file"


def test_gdown_downloads_with_progress_and_resumes(tmp_path, server):
    from dreampose.setup.fetch import drive_refused, fetch_drive_file

    data = bytes(range(256)) * 6000
    url = server.add("weights.pth", data, drop_after=700_000)  # gdown keeps whole 512 KB chunks
    reports: list[Progress] = []
    path = fetch_drive_file(
        url, tmp_path / "in", "weights", reports.append, None, cookies_file=str(tmp_path / "c")
    )
    assert path == tmp_path / "in" / "weights.pth" and path.read_bytes() == data
    first, resumed = server.ranges("weights.pth")
    assert first is None and resumed == "bytes=524288-"  # gdown resumed after the drop
    assert reports[-1].done == reports[-1].total == len(data)

    import gdown

    quota = gdown.exceptions.FileURLRetrievalError(
        "Too many users have viewed or downloaded this file recently. Please try accessing the file again later."
    )
    assert "download quota for the file is used up" in str(drive_refused(quota, "the base model", "x"))


def test_the_command_prints_where_and_fails_in_one_line(tmp_path, official, server, capsys):
    url = server.add("base.zip", base_zip(official))
    args = ["download", "--cache", str(tmp_path / "c"), "--base-source", url]
    args += ["--sd-source", str(official.sd), "--clip-source", str(official.clip)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"base model (UBC Fashion):  {tmp_path / 'c' / 'models' / 'base'}" in out
    assert main(args) == 0
    assert "Everything asked for is already set up." in capsys.readouterr().out

    bad = [
        "download",
        "--cache",
        str(tmp_path / "d"),
        "--base-source",
        f"http://127.0.0.1:{closed_port()}/x.pth",
    ]
    assert main(bad) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "[1/4] getting the DreamPose base model (UBC Fashion)"
    assert len(err) == 2 and err[1].startswith("dreampose download: error: could not reach")


def test_only_what_conversion_needs_is_taken_from_stable_diffusion():
    """From the SD 1.4 repository's listing: the VAE (safetensors first), the scheduler and the
    UNet's config; not the UNet's 3.4 GB of weights, which the official checkpoint replaces."""
    from dreampose.setup.install import stable_diffusion_files

    listing = [
        "model_index.json", "sd-v1-4.ckpt", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/pytorch_model.bin", "safety_checker/pytorch_model.bin",
        "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.safetensors",
    ]  # fmt: skip
    assert stable_diffusion_files(listing) == [
        "scheduler/scheduler_config.json",
        "vae/config.json",
        "unet/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    with pytest.raises(ValueError, match="no unet/config.json"):
        stable_diffusion_files([f for f in listing if f != "unet/config.json"])
