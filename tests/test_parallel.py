"""Multi-process rendering: the split is contiguous and balanced, and 2 CPU processes
stitch the same video as one process (tiny model).

Frames are compared within 1 grey level: a frame rendered in a batch of another size, or
with another thread count, may differ in the last float bits, which can flip a rounding.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dreampose.model.events import FrameDone, Progress
from dreampose.model.tiny import tiny_pipeline
from dreampose.rendering.frames import finished_frames, render_frames
from dreampose.rendering.parallel import Shard, chunk_renderer, render_sharded, split_frames, stitch
from tests.helpers import parallel_worker as worker

TESTS = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- split
@pytest.mark.parametrize("num_frames, world_size", [(5, 2), (10, 3), (2, 4), (1, 1), (0, 2), (7, 7)])
def test_split_covers_every_frame_once_in_order(num_frames, world_size):
    frames = list(range(100, 100 + num_frames))
    chunks = [split_frames(frames, rank, world_size) for rank in range(world_size)]
    assert sum(chunks, []) == frames  # contiguous, in rank order, nothing lost or repeated
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the extra frames go to the first ranks


def test_split_keeps_an_arbitrary_frame_list():
    assert split_frames([9, 3, 4, 20, 21], 0, 2) == [9, 3, 4]
    assert split_frames([9, 3, 4, 20, 21], 1, 2) == [20, 21]


@pytest.mark.parametrize("rank, world_size", [(2, 2), (-1, 2), (0, 0)])
def test_split_refuses_a_bad_rank(rank, world_size):
    with pytest.raises(ValueError):
        split_frames([0, 1, 2], rank, world_size)


# --------------------------------------------------------------------------- stitch
def _frame(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, dtype=np.uint8)


def test_stitch_orders_frames_as_the_frame_list():
    shards = [Shard(1, [20, 21], [_frame(20), _frame(21)]), Shard(0, [9, 3], [_frame(9), _frame(3)])]
    stitched = stitch(shards, [9, 3, 20, 21])
    assert stitched.frame_indices == [9, 3, 20, 21]
    assert [int(f[0, 0, 0]) for f in stitched.frames] == [9, 3, 20, 21]
    assert stitched.complete


def test_stitch_reports_failed_processes_and_keeps_the_rest():
    shards = [Shard(0, [0], [_frame(0)]), Shard(1, [], [], error="RuntimeError: out of memory")]
    stitched = stitch(shards, [0, 1])
    assert stitched.frame_indices == [0]
    assert stitched.errors == {1: "RuntimeError: out of memory"}
    assert not stitched.complete


def test_stitch_refuses_frames_nobody_asked_for():
    with pytest.raises(ValueError, match="not asked for"):
        stitch([Shard(0, [5], [_frame(5)])], [0, 1])


def test_single_process_renders_everything_and_raises_its_errors(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    stitched = render_sharded([2, 0, 1], lambda chunk: ((i, _frame(i)) for i in chunk))
    assert stitched.frame_indices == [2, 0, 1]

    def failing(chunk):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="boom"):
        render_sharded([0], failing)


def test_a_chunk_keeps_frames_finished_before_an_error():
    def render(chunk):
        yield Progress(1, 2)
        yield FrameDone(chunk[0], _frame(chunk[0]))
        raise RuntimeError("disk full")

    got = []
    with pytest.raises(RuntimeError, match="disk full"):
        for index, _ in finished_frames(render([4, 5])):
            got.append(index)
    assert got == [4]
    assert list(chunk_renderer(None, None, None, None)([])) == [], "an empty chunk renders nothing"


# --------------------------------------------------------------------------- 2 processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_result(tmp_path_factory) -> dict[str, np.ndarray]:
    """Run the worker under torchrun with 2 CPU processes (what `accelerate launch
    --multi_gpu` does on GPUs) and load what process 0 saved."""
    out = tmp_path_factory.mktemp("parallel") / "stitched.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "tests.helpers.parallel_worker", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(np.load(out))


def _single_process(same_noise: bool) -> np.ndarray:
    image, poses = worker.inputs()
    settings = replace(worker.SETTINGS, noise_per_frame=not same_noise)
    return np.stack(render_frames(tiny_pipeline(seed=0), image, poses, settings).frames)


@pytest.mark.slow  # two torchrun processes
@pytest.mark.parametrize("name, same_noise", [("shared", True), ("per_frame", False)])
def test_two_processes_stitch_the_single_process_video(two_process_result, name, same_noise):
    assert int(two_process_result["world_size"]) == 2
    assert two_process_result[f"{name}_indices"].tolist() == list(range(worker.NUM_FRAMES))
    assert two_process_result[f"{name}_errors"].size == 0
    stitched = two_process_result[f"{name}_frames"].astype(int)
    reference = _single_process(same_noise).astype(int)
    assert np.abs(stitched - reference).max() <= 1
    # The frames really differ from each other, so a wrong order would be caught.
    assert np.abs(reference[0] - reference[-1]).max() > 10


@pytest.mark.slow  # two torchrun processes
def test_a_failing_process_reports_and_the_rest_is_kept(two_process_result):
    # Rank 1 had frames 3, 4 and failed after frame 3.
    assert two_process_result["failing_indices"].tolist() == [0, 1, 2, 3]
    assert two_process_result["failing_errors"].tolist() == ["1: RuntimeError: simulated failure on rank 1"]


@pytest.mark.slow  # two torchrun processes
def test_render_command_under_torchrun_writes_the_whole_video(tmp_path):
    """`torchrun -m dreampose render` (what `accelerate launch -m dreampose render` runs):
    process 0 writes one mp4 with every frame, in order, equal to a one-process render."""
    import imageio_ffmpeg
    from PIL import Image

    from dreampose.cli import main
    from pose_extraction.pose_sequence import PoseSequence
    from tests.helpers.poses import make_poses

    main(["tiny-model", "--output", str(tmp_path / "model")])
    Image.fromarray(np.full((80, 60, 3), 180, np.uint8)).save(tmp_path / "photo.png")
    PoseSequence.from_uv(make_poses(5), fps=10.0).save(tmp_path / "poses.npz")
    args = [
        "render", "--model", str(tmp_path / "model"), "--image", str(tmp_path / "photo.png"),
        "--poses", str(tmp_path / "poses.npz"), "--steps", "2", "--height", "64", "--width", "64",
        "--noise-per-frame", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "dreampose", *args, "--output", str(tmp_path / "two.mp4"), "--frames-dir", str(tmp_path / "png"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert main([*args, "--output", str(tmp_path / "one.mp4")]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "two.mp4"))[0] == 5
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"frame_{i:05d}.png" for i in range(5)]

    def frames(name):
        reader = imageio_ffmpeg.read_frames(str(tmp_path / name))
        meta = next(reader)
        return np.stack([np.frombuffer(f, np.uint8) for f in reader]).astype(int), meta

    two, _ = frames("two.mp4")
    one, _ = frames("one.mp4")
    assert np.abs(two - one).mean() < 1.0  # same frames, up to float noise and H.264
