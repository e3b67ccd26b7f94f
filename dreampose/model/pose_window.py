"""The pose window c_P (paper section 4.2.2): for target frame i, the U and V maps of frames
i-2 .. i+2, resized to the latent grid and stacked as 10 extra UNet input channels.

Pose maps reach the latent grid by nearest-neighbour resizing (as the official code):
averaging would invent UV values that belong to no body part. Beyond the ends of a
sequence the window repeats the nearest existing frame; official numerics (``numerics``)
repeat the centre frame and normalise to [-1, 1] instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dreampose.base.paper import NUM_POSE_FRAMES

POSE_CHANNELS = 2  # U and V


def pose_channels(num_pose_frames: int) -> int:
    return POSE_CHANNELS * num_pose_frames


def pose_window(
    index: int, num_frames: int, num_pose_frames: int = NUM_POSE_FRAMES, repeat_centre: bool = False
) -> list[int]:
    """Frame indices of the pose window centred on ``index``.

    Beyond the ends of the sequence we repeat the nearest frame that exists (so frame 1 of a
    sequence reads 0, 0, 1, 2, 3); ``repeat_centre`` (the official code) repeats the centre
    frame instead.
    """
    if not 0 <= index < num_frames:
        raise ValueError(f"frame {index} is out of range for a sequence of {num_frames} frames")
    half = num_pose_frames // 2
    window = []
    for j in range(index - half, index - half + num_pose_frames):
        if 0 <= j < num_frames:
            window.append(j)
        else:
            window.append(index if repeat_centre else min(max(j, 0), num_frames - 1))
    return window


def pose_condition(
    uv: torch.Tensor,
    indices: list[int],
    latent_size: tuple[int, int],
    num_pose_frames: int = NUM_POSE_FRAMES,
) -> torch.Tensor:
    """The UNet's pose input for target frames ``indices``: (B, 2 * num_pose_frames, h, w),
    in this project's convention (official numerics: ``conditioning.official_pose_condition``).

    ``uv`` is the whole sequence (N, 2, H, W) with values in [0, 1].
    """
    check_pose_array(uv)
    windows = [pose_window(i, uv.shape[0], num_pose_frames) for i in indices]
    index = torch.tensor(windows, device=uv.device).flatten()
    poses = uv[index].float()  # (B * F, 2, H, W)
    poses = F.interpolate(poses, size=tuple(latent_size), mode="nearest")
    return poses.reshape(len(indices), pose_channels(num_pose_frames), *latent_size)


def check_pose_array(uv) -> None:
    """Validate a pose array (N, 2, H, W): raise a ValueError that says what is wrong."""
    shape = tuple(uv.shape)
    if len(shape) != 4 or shape[1] != POSE_CHANNELS:
        raise ValueError(f"poses must have shape (N, 2, H, W): N frames of U and V maps; got shape {shape}")
    if shape[0] == 0:
        raise ValueError("the pose sequence is empty: give at least one pose frame")
