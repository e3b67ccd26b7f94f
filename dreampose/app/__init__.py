"""The web app: the service that holds the work, the sessions, and the page.

- ``service``: :class:`~dreampose.app.service.AppService`, the model, limits, canvas, loaded
  models and sessions of one running app (the ``Model`` of a Gradio Space).
- ``sessions``: each tab's private folder, every file in it and its helpers.
- ``steps``: the work of each step, as plain, testable functions of the service and a session.
- ``page``: the Gradio page, one module per step; ``app.py`` composes them.
- ``models``, ``uploads``, ``messages``, ``examples``, ``zerogpu``: what the model status is,
  what an upload may be, what the app says, the bundled example, ZeroGPU.
"""
