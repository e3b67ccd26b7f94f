"""Dual classifier-free guidance over image and pose (paper eq. 4)."""

from __future__ import annotations

import torch


def dual_guidance(
    eps_uncond: torch.Tensor,
    eps_image: torch.Tensor,
    eps_image_pose: torch.Tensor,
    image_guidance_scale: float,
    pose_guidance_scale: float,
) -> torch.Tensor:
    """eps(∅,∅) + sI (eps(cI,∅) - eps(∅,∅)) + sP (eps(cI,cP) - eps(cI,∅))."""
    return (
        eps_uncond
        + image_guidance_scale * (eps_image - eps_uncond)
        + pose_guidance_scale * (eps_image_pose - eps_image)
    )
