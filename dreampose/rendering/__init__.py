"""From a photo and poses to frames and videos, the same way for the CLI, the app and evaluation.

- ``render``: the render loop, previews, videos (with sound) and the guidance grid.
- ``poses``: driving poses from a file onto the canvas, aligned to the subject.
- ``parallel``: one video rendered by several processes (GPUs), stitched in order.
"""
