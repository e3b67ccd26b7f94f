"""Pose extraction for DreamPose: DensePose on photos and driving videos, and the pose file."""

from pose_extraction.pose_sequence import FORMAT_VERSION, PoseFileError, PoseSequence

__all__ = ["FORMAT_VERSION", "PoseFileError", "PoseSequence"]
