"""Run by tests/test_parallel.py under a 2-process launcher: renders the tiny model split
across the processes and, on process 0, saves the stitched frames to the path in argv[1]."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from dreampose.model.tiny import tiny_pipeline
from dreampose.rendering.parallel import chunk_renderer, render_sharded, world
from dreampose.rendering.settings import RenderSettings

NUM_FRAMES = 5  # odd, so the chunks differ in size (3 + 2)
SETTINGS = RenderSettings(num_inference_steps=2, height=64, width=64, frame_batch_size=2, seed=7)


def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    poses = rng.random((NUM_FRAMES, 2, 64, 64), dtype=np.float32)
    return image, poses


def failing_on_rank_1(render_chunk):
    """Rank 1 finishes its first frame, then fails."""

    def render(chunk):
        for n, item in enumerate(render_chunk(chunk)):
            if world()[0] == 1 and n == 1:
                raise RuntimeError("simulated failure on rank 1")
            yield item

    return render


def main(out: str) -> None:
    pipe = tiny_pipeline(seed=0)
    image, poses = inputs()
    frames = list(range(NUM_FRAMES))
    results = {}
    for name, per_frame in (("shared", False), ("per_frame", True)):
        chunk = chunk_renderer(pipe, image, poses, replace(SETTINGS, noise_per_frame=per_frame))
        results[name] = render_sharded(frames, chunk)
    chunk = chunk_renderer(pipe, image, poses, SETTINGS)
    results["failing"] = render_sharded(frames, failing_on_rank_1(chunk))
    if world()[0] != 0:
        assert all(r is None for r in results.values()), "only process 0 should receive frames"
        return
    arrays = {}
    for name, stitched in results.items():
        arrays[f"{name}_indices"] = np.array(stitched.frame_indices)
        arrays[f"{name}_frames"] = np.stack(stitched.frames)
        arrays[f"{name}_errors"] = np.array([f"{r}: {m}" for r, m in stitched.errors.items()])
    arrays["world_size"] = np.array(world()[1])
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
