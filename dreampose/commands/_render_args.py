"""Arguments shared by `dreampose preview` and `dreampose render`."""

from __future__ import annotations

import argparse

from dreampose.schedulers import SCHEDULERS


def add_render_arguments(parser: argparse.ArgumentParser, steps_default: int = 100) -> None:
    parser.add_argument(
        "--model", required=True, help="DreamPose model folder or hub id ('tiny' = random test model)"
    )
    parser.add_argument("--image", required=True, help="photo of the subject")
    parser.add_argument("--poses", required=True, help="pose file (.npz) from `dreampose extract-poses`")
    parser.add_argument(
        "--subject-pose",
        default=None,
        help="the photo's own pose file (`dreampose extract-poses photo.jpg`): aligns the driving "
        "poses to the subject's body size and position (feet on the same ground line)",
    )
    parser.add_argument("--image-guidance", type=float, default=8.0, help="sI, image guidance (default 8)")
    parser.add_argument("--pose-guidance", type=float, default=3.0, help="sP, pose guidance (default 3)")
    parser.add_argument(
        "--steps", type=int, default=steps_default, help=f"denoising steps (default {steps_default})"
    )
    parser.add_argument(
        "--scheduler", choices=sorted(SCHEDULERS), default="pndm", help="sampler (default pndm)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--height", type=int, default=640, help="output height, a multiple of 64 (default 640)"
    )
    parser.add_argument("--width", type=int, default=512, help="output width, a multiple of 64 (default 512)")
    parser.add_argument("--batch-frames", type=int, default=1, help="frames sampled together (default 1)")
    parser.add_argument(
        "--noise-per-frame",
        action="store_true",
        help="draw new initial noise for every frame (default: all frames share it, for consistency)",
    )
    parser.add_argument(
        "--turbo",
        type=int,
        default=None,
        metavar="N",
        help="run the whole UNet only every N-th step and reuse its deep features in between "
        "(DeepCache; faster, slightly different frames; e.g. 3). Default: off",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument("--cpu-offload", action="store_true", help="keep idle models on the CPU (small GPUs)")


def settings_from_args(args):
    from dreampose.service import RenderSettings

    return RenderSettings(
        image_guidance_scale=args.image_guidance,
        pose_guidance_scale=args.pose_guidance,
        num_inference_steps=args.steps,
        scheduler=args.scheduler,
        seed=args.seed,
        height=args.height,
        width=args.width,
        frame_batch_size=args.batch_frames,
        same_noise_for_all_frames=not args.noise_per_frame,
        turbo=args.turbo,
    )


def parse_frame_range(text: str | None, num_frames: int) -> list[int] | None:
    """'START:END' (END exclusive, either may be empty) -> frame list; None = all frames."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start) if start else 0
        last = int(end) if end else num_frames
    except ValueError:
        raise ValueError(f"--frames must look like START:END (e.g. 0:48); got {text!r}") from None
    if not 0 <= first < last <= num_frames:
        raise ValueError(f"--frames {text} is outside the pose sequence's frames 0:{num_frames}")
    return list(range(first, last))


def load_poses_from_args(args):
    """The driving poses, aligned to the subject when its pose is given."""
    from dreampose import service

    poses = service.load_poses(args.poses)
    if args.subject_pose is None:
        return poses
    subject = service.load_poses(args.subject_pose)
    return service.align_poses(poses, subject, args.height, args.width)
