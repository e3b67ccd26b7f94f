"""The Gradio page, one small module per step; ``app.py`` composes them.

Each step module builds its components (``create``) and wires its own events (``wire``)
through the one helper every step shares (``wiring.run_step``: busy and idle buttons, the
Cancel button, the status line that keeps the last result or error). Its endpoint function
has the parameter names, order and defaults the README documents for the API. The work is
done by ``dreampose.app.steps`` on the service (``dreampose.app.service``); nothing here
loads a model.

- ``header``: the title, the test-mode banner, the model setup banner, the page without a model.
- ``inputs``: step 1, the photo(s), the driving video or a pose file, the example.
- ``poses``: step 2, extract and align the poses.
- ``finetune``: step 3 (optional), finetune on the photos.
- ``preview``: step 4, the sampling controls shared with the video, a preview, the guidance grid.
- ``render``: step 5, the video, streamed frame by frame.
- ``wiring``: what every step shares; ``style``: the page's CSS.
"""
