"""Loading models to run them: what a model reference names, the device and dtype rule,
speed settings, the Hugging Face Hub, and the options the CLI and the app share.

- ``references``: the one resolver of ``--model`` strings (:class:`ModelRef`: tiny, demo, a model
  or LoRA subject folder, a hub id, official checkpoints, missing), read by every caller.
- ``loading``: the one device and dtype rule; loading DreamPose models and DensePose.
- ``speed``: speed settings applied to a loaded pipeline, and their defaults.
- ``hub``: publishing models, fetching published LoRA subjects.
- ``options``: ``--device``, ``--dtype``, the speed and DensePose options, for the CLI and the app.
"""
