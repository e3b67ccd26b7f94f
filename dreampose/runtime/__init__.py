"""Loading models to run them: the device and dtype rule, speed settings, and the Hugging Face Hub.

- ``loading``: the one device and dtype rule; loading DreamPose models and DensePose.
- ``speed``: speed settings applied to a loaded pipeline, and their defaults.
- ``hub``: publishing models, fetching published LoRA subjects.
"""
