"""The work of the app's steps, one module each, as functions of the service and the user's
session; the page (``dreampose.app.page``) only calls them. Each reuses what the CLI uses,
so the app and ``dreampose render`` cannot disagree.

- ``poses``: step 2, a driving video or pose file to poses on the canvas, aligned to the photo.
- ``finetune``: step 3 (optional), the subject finetuned on its photos.
- ``render``: steps 4 and 5, a preview or guidance grid of one frame, then the video.
"""
