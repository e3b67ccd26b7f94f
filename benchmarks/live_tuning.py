"""Live tuning: how long a preview takes after a control is released, with the session's
encoded photo and pose windows reused (a re-render with another sI) and without them (the
first preview, or one after another photo or other poses).

Timed on the server, from the start of the app's preview step (what the page's live event
runs, ``dreampose.app.steps.render.preview``) to its PNG written, on the bundled example's
photo and poses with the fast preset. Gradio's queue and the browser's fetch of the PNG come on
top of both alike. The photo's encoding and the pose window are timed on their own too.

    python -m benchmarks.live_tuning                 # the tiny random model (offline)
    python -m benchmarks.live_tuning --model demo    # the demo model
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

from benchmarks.common import machine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="what app.py --model takes (default: tiny)")
    p.add_argument("--device", default=None, help="default: cuda when there is one")
    p.add_argument("--dtype", default=None, help="default: as the app loads the model")
    p.add_argument("--repeats", type=int, default=5, help="previews timed each way (the median is reported)")
    p.add_argument("--frame", type=int, default=0, help="the pose frame previewed")
    return p.parse_args(argv)


class Timed:
    """Wraps one method of the pipeline: how often it ran and for how long in all."""

    def __init__(self, pipe, name: str) -> None:
        self.calls, self.seconds = 0, 0.0
        real = getattr(pipe, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        setattr(pipe, name, timed)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from dreampose.app.examples import ASSETS
    from dreampose.app.service import AppService
    from dreampose.app.steps import poses as pose_step
    from dreampose.app.steps import render as render_step
    from dreampose.app.uploads import AppLimits

    photo, video = str(ASSETS / "example_photo.png"), str(ASSETS / "example_dance.mp4")  # poses shipped

    with tempfile.TemporaryDirectory() as root:
        service = AppService(
            args.model, limits=AppLimits.from_env(), device=args.device, dtype=args.dtype, session_root=root
        )
        session = service.session("benchmark")
        pose_step.extract_poses(service, session, [photo], video)
        pipe = service.pipeline(session)
        encode, windows = Timed(pipe, "encode_photo"), Timed(pipe, "pose_windows")
        fast = service.fast_settings()
        render_step.preview(service, session, None, args.frame, fast)  # warm-up: loads, allocates

        def preview(s_i: float, cached: bool) -> float:
            if not cached:
                session.memo.clear()  # as after another photo or other poses
            settings = replace(fast, image_guidance_scale=s_i)
            start = time.perf_counter()
            render_step.preview(service, session, None, args.frame, settings)
            return time.perf_counter() - start

        rows = []
        for cached in (False, True):
            before = encode.calls, encode.seconds, windows.seconds
            times = [preview(6.0 + i, cached) for i in range(args.repeats)]
            encodes = (encode.calls - before[0]) / args.repeats
            prep = (encode.seconds - before[1] + windows.seconds - before[2]) / args.repeats
            rows.append(("reused (another sI)" if cached else "encoded again", times, encodes, prep))
        service.close()

    print(f"# live tuning: {args.model} model on {machine()}, canvas {fast.height} x {fast.width}")
    print(
        f"# fast preset: {fast.num_inference_steps} {fast.scheduler} steps; {args.repeats} previews each way\n"
    )
    print("| photo and poses | median s | min s | photo encodings per preview | encode + pose window s |")
    print("|---|---|---|---|---|")
    for name, times, encodes, prep in rows:
        print(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {encodes:g} | {prep:.3f} |")
    saved = statistics.median(rows[0][1]) - statistics.median(rows[1][1])
    print(f"\nreuse saves {saved:.3f} s per preview ({saved / statistics.median(rows[0][1]):.0%})")


if __name__ == "__main__":
    main()
