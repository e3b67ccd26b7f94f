"""Loading DensePose weights: pickle safety, clear key errors, safetensors round trip, downloads."""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreampose.cli import convert_densepose
from pose_extraction.densepose import (
    CheckpointError,
    DensePoseExtractor,
    InferenceSettings,
    UnsafePickleError,
)
from pose_extraction.densepose.checkpoint import load_state_dict
from pose_extraction.densepose.download import download, resolve_weights
from pose_extraction.densepose.model import DensePoseRCNN

NUM_STATE_DICT_ENTRIES = 335  # detectron2's model, spec §9


class _RunsCode:
    """Unpickling this calls ``func(*args)``: what a malicious weights file would do."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture(scope="module")
def random_state_dict() -> dict[str, np.ndarray]:
    """A full state dict with random (torch default init) weights, as numpy arrays like the model zoo's."""
    torch.manual_seed(0)
    model = DensePoseRCNN()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _write_pickle(path: Path, model: dict, protocol: int = 4) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "test"}, f, protocol=protocol)
    return path


def _test_image() -> np.ndarray:
    """A smooth RGB image with a bright blob, so the features are not flat."""
    yy, xx = np.mgrid[0:96, 0:128]
    r = (xx * 2) % 256
    g = (yy * 2) % 256
    b = np.where((xx - 64) ** 2 + (yy - 48) ** 2 < 400, 250, 30)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# The restricted unpickler


@pytest.mark.parametrize(
    ("func", "args", "name"),
    [
        (os.system, ("touch {marker}",), "system"),
        (eval, ("open({marker!r}, 'w')",), "eval"),
        (subprocess.call, (["touch", "{marker}"],), "call"),
    ],
)
def test_pickle_that_runs_code_is_refused(tmp_path: Path, func, args, name: str) -> None:
    marker = tmp_path / "pwned"
    args = tuple(
        [a.format(marker=str(marker)) for a in arg]
        if isinstance(arg, list)
        else arg.format(marker=str(marker))
        for arg in args
    )
    path = _write_pickle(tmp_path / "evil.pkl", {"backbone.fpn_lateral2.bias": _RunsCode(func, *args)})
    with pytest.raises(UnsafePickleError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert name in message and "refused" in message and "could run code" in message
    assert not marker.exists(), "the payload ran"


def test_refusal_reaches_from_pretrained(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write_pickle(tmp_path / "evil.pkl", {"x": _RunsCode(os.system, f"touch {marker}")})
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        DensePoseExtractor.from_pretrained(path)
    assert not marker.exists()


def test_numpy_1_pickles_load(tmp_path: Path) -> None:
    """Model-zoo files were written by numpy 1.x, which names ``numpy.core.multiarray``."""
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64([0.5, -1.0])}
    data = pickle.dumps({"model": arrays, "__author__": "test"}, protocol=2)
    numpy2_name = b"numpy._core.multiarray"
    if numpy2_name in data:  # protocol 2 spells globals as plain text, so this rewrite stays a valid pickle
        data = data.replace(numpy2_name, b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    loaded = load_state_dict(path)
    assert set(loaded) == {"a", "b"}
    assert torch.equal(loaded["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert loaded["b"].dtype == torch.float32 and loaded["b"].tolist() == [0.5, -1.0]


@pytest.mark.parametrize("content", [b"", b"\x80\x04\x95", b"not a pickle at all\n"])
def test_corrupted_pickle_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.pkl"):
        load_state_dict(path)


def test_truncated_weights_file_is_a_clear_error(tmp_path: Path, random_state_dict: dict) -> None:
    full = _write_pickle(tmp_path / "full.pkl", random_state_dict).read_bytes()
    path = tmp_path / "truncated.pkl"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_state_dict(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pkl"):
        DensePoseExtractor.from_pretrained(tmp_path / "nowhere.pkl")


# ----------------------------------------------------------------------------------------------
# Key checks


def test_missing_and_misshaped_keys_are_named(tmp_path: Path, random_state_dict: dict) -> None:
    model = dict(random_state_dict)
    del model["roi_heads.densepose_predictor.u_lowres.weight"]
    del model["roi_heads.decoder.p5.4.bias"]
    model["backbone.fpn_lateral2.bias"] = np.zeros(128, dtype=np.float32)
    model["roi_heads.box_predictor.cls_score.weight"] = np.zeros((81, 1024), dtype=np.float32)
    path = _write_pickle(tmp_path / "wrong.pkl", model)
    with pytest.raises(CheckpointError) as info:
        DensePoseExtractor.from_pretrained(path)
    message = str(info.value)
    assert "2 missing key(s)" in message
    assert "roi_heads.densepose_predictor.u_lowres.weight" in message
    assert "roi_heads.decoder.p5.4.bias" in message
    assert "2 key(s) with the wrong shape" in message
    assert "backbone.fpn_lateral2.bias (file (128,), model (256,))" in message
    assert "roi_heads.box_predictor.cls_score.weight (file (81, 1024), model (2, 1024))" in message


def test_known_extra_keys_are_ignored(tmp_path: Path, random_state_dict: dict) -> None:
    """2020 checkpoints may hold the pixel statistics and cell anchors; they must not matter."""
    model = dict(random_state_dict)
    model["pixel_mean"] = np.full((3, 1, 1), 7.0, dtype=np.float32)
    model["pixel_std"] = np.full((3, 1, 1), 9.0, dtype=np.float32)
    for i in range(5):
        model[f"proposal_generator.anchor_generator.cell_anchors.{i}"] = np.zeros((3, 4), dtype=np.float32)
    extractor = DensePoseExtractor.from_pretrained(_write_pickle(tmp_path / "old.pkl", model))
    loaded = extractor.model.state_dict()
    assert len(loaded) == NUM_STATE_DICT_ENTRIES
    for name in ("backbone.bottom_up.stem.conv1.weight", "roi_heads.densepose_predictor.v_lowres.bias"):
        assert np.array_equal(loaded[name].numpy(), random_state_dict[name])


def test_frozen_bn_without_running_stats_gets_identity_stats(tmp_path: Path, random_state_dict: dict) -> None:
    model = {k: v for k, v in random_state_dict.items() if not k.endswith(("running_mean", "running_var"))}
    extractor = DensePoseExtractor.from_pretrained(_write_pickle(tmp_path / "caffe2.pkl", model))
    norm = extractor.model.backbone.bottom_up.res3[1].conv2.norm
    assert torch.equal(norm.running_mean, torch.zeros(128))
    assert torch.equal(norm.running_var, torch.ones(128))


# ----------------------------------------------------------------------------------------------
# safetensors


def test_safetensors_round_trip_gives_the_same_outputs(tmp_path: Path, random_state_dict: dict) -> None:
    pkl = _write_pickle(tmp_path / "weights.pkl", random_state_dict)
    out = tmp_path / "weights.safetensors"
    parser = argparse.ArgumentParser()
    convert_densepose.add_parser(parser.add_subparsers())
    args = parser.parse_args(["convert-densepose", "--weights", str(pkl), "--output", str(out)])
    assert args.func(args) == 0
    assert out.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    assert not list(tmp_path.glob("*.partial")), "temporary file left behind"

    settings = InferenceSettings(max_people=2)
    from_pkl = DensePoseExtractor.from_pretrained(pkl, min_size=96, max_size=128, settings=settings)
    from_st = DensePoseExtractor.from_pretrained(out, min_size=96, max_size=128, settings=settings)
    for name, tensor in from_st.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), random_state_dict[name]), name

    image = _test_image()
    a, b = from_pkl.predict([image])[0], from_st.predict([image])[0]
    assert len(a.people) == 2  # default-init box head scores ~0.5, so the head runs
    for key in ("proposal_boxes", "proposal_logits", "boxes", "scores", "coarse_segm", "fine_segm", "u", "v"):
        assert torch.equal(getattr(a.raw, key), getattr(b.raw, key)), key
    for pa, pb in zip(a.people, b.people, strict=True):
        assert pa.box_xywh == pb.box_xywh
        assert np.array_equal(pa.labels, pb.labels) and np.array_equal(pa.uv, pb.uv)


def test_safetensors_with_wrong_keys_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"backbone.fpn_lateral2.weight": torch.zeros(256, 256, 1, 1)}, str(path))
    # 335 entries - 1 present - 106 FrozenBN running statistics (53 layers), which default to 0 / 1.
    with pytest.raises(CheckpointError, match=r"228 missing key\(s\): backbone.bottom_up.stem.conv1.weight"):
        DensePoseExtractor.from_pretrained(path)


# ----------------------------------------------------------------------------------------------
# Downloads


@pytest.fixture
def http_folder(tmp_path: Path):
    """Serve ``tmp_path / "www"`` on localhost; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_goes_to_the_cache_once(tmp_path: Path, http_folder, monkeypatch) -> None:
    root, base = http_folder
    (root / "w.pkl").write_bytes(b"weights")
    monkeypatch.setenv("DREAMPOSE_CACHE", str(tmp_path / "cache"))
    path = resolve_weights(f"{base}/w.pkl", progress=False)
    assert path == tmp_path / "cache" / "densepose" / "w.pkl"
    assert path.read_bytes() == b"weights"
    (root / "w.pkl").unlink()  # a second call must not touch the network
    assert resolve_weights(f"{base}/w.pkl", progress=False) == path


def test_bad_download_leaves_nothing_behind(tmp_path: Path, http_folder, monkeypatch) -> None:
    root, base = http_folder
    (root / "model.pkl").write_bytes(b"<html>not found</html>")
    monkeypatch.setenv("DREAMPOSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError):
        DensePoseExtractor.from_pretrained(f"{base}/model.pkl", progress=False)
    assert list((tmp_path / "cache" / "densepose").iterdir()) == []


def test_checksum_mismatch_is_refused(tmp_path: Path, http_folder) -> None:
    root, base = http_folder
    (root / "w.bin").write_bytes(b"abc")
    destination = tmp_path / "out" / "w.bin"
    with pytest.raises(ValueError, match="corrupted"):
        download(f"{base}/w.bin", destination, sha256="0" * 64, progress=False)
    assert not destination.exists() and list(destination.parent.iterdir()) == []


def test_import_does_not_touch_the_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import pose_extraction.densepose, dreampose.cli.convert_densepose\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_images_must_be_rgb_uint8() -> None:
    settings = InferenceSettings(max_people=1)
    extractor = DensePoseExtractor(DensePoseRCNN(), min_size=64, max_size=64, settings=settings)
    with pytest.raises(ValueError, match="RGB uint8"):
        extractor(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        extractor(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        DensePoseExtractor(DensePoseRCNN(), fp16=True)
    people = extractor(Image.new("L", (40, 30)))  # PIL images of any mode are converted
    assert isinstance(people, list)


def test_backend_choice_errors_are_clear() -> None:
    from pose_extraction.densepose import load_extractor

    with pytest.raises(ValueError, match="unknown DensePose backend 'caffe2'"):
        load_extractor("caffe2")
    try:
        import densepose  # noqa: F401
        import detectron2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("detectron2 is installed here, so the backend is available")
    with pytest.raises(ImportError, match="not on PyPI.*--pose-backend native"):
        load_extractor("detectron2", weights="unused.pkl")
    with pytest.raises(ValueError, match="detectron2"):  # also a ValueError, so the CLI prints it cleanly
        load_extractor("detectron2", weights="unused.pkl")
