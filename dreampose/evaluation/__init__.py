"""`dreampose evaluate`: the paper's quantitative protocol (Table 1) as one command.

- ``settings``: what the protocol does (EvaluationSettings, the sampler presets).
- ``protocol``: which frames of each test video are compared, finetuning, rendering, resume
  (``protocol.evaluate`` is the entry point).
- ``metrics``: L1, PSNR, SSIM, LPIPS, VGG, FID and FVD, each from a maintained library.
- ``report``: the JSON and Markdown report and the side-by-side videos.
"""
