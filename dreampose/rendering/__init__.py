"""From a photo and poses to frames and videos, the same way for the CLI, the app and evaluation.

Every function here is a stream of typed events (``dreampose.model.events``: ``Progress``,
``FrameDone``, then ``Finished`` with the result), with a plain function beside it that runs
the stream to its result:

- ``settings``: :class:`RenderSettings` (the paper's defaults; the CLI options) and the fast preset.
- ``frames``: the render loop (``stream_frames`` / ``render_frames``) and one-frame previews.
- ``video``: an mp4 with the driving video's sound that keeps every finished frame (``stream_video``).
- ``grid``: the guidance grid over sI x sP (``stream_grid``).
- ``poses``: driving poses from a file onto the canvas, aligned to the subject.
- ``parallel``: one video rendered by several processes (GPUs), stitched in order.
"""
