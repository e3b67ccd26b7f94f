"""`dreampose evaluate`: the paper's quantitative protocol (Table 1) as one command.

- ``protocol``: which frames of each test video are compared, finetuning, rendering, resume.
- ``metrics``: L1, PSNR, SSIM, LPIPS, VGG, FID and FVD, each from a maintained library.
- ``report``: the JSON and Markdown report and the side-by-side videos.
"""

from dreampose.evaluation.protocol import EvaluationSettings, evaluate

__all__ = ["EvaluationSettings", "evaluate"]
