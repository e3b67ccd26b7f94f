"""Training DreamPose (paper section 4.3): base training on a video dataset (phase 1,
``train``) and subject finetuning (phase 2, ``finetune``), sharing one loss (``losses``)."""
