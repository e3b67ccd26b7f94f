"""The paper's numbers, once (Karras et al., 2023, section 4 and supplement section 1, and
the official README). Settings dataclasses, the CLI, the app and the benchmarks take their
defaults from here, so a default cannot drift from the paper in one place only.

Only the standard library is imported: every layer may read this module.
"""

# Inference (section 4.4, official README: --s1 8 --s2 3 --n_steps 100, PNDM)
IMAGE_GUIDANCE = 8.0  # sI of eq. 4
POSE_GUIDANCE = 3.0  # sP of eq. 4
INFERENCE_STEPS = 100
SAMPLER = "pndm"
HEIGHT = 640  # the working resolution: latents 80 x 64
WIDTH = 512
NUM_POSE_FRAMES = 5  # c_p = {p_(i-2), ..., p_(i+2)}

# Subject finetuning, phase 2 (supplement section 1)
FINETUNE_UNET_STEPS = 500  # UNet + adapter
FINETUNE_UNET_LR = 1e-5
FINETUNE_VAE_STEPS = 1500  # VAE decoder
FINETUNE_VAE_LR = 5e-5

# Base training, phase 1: lr 5e-6, effective batch 16 (4 x 4 accumulation steps), 5 epochs
TRAIN_LR = 5e-6
TRAIN_BATCH_SIZE = 4
TRAIN_ACCUMULATION_STEPS = 4
TRAIN_EPOCHS = 5
# Classifier-free guidance dropout: each sample loses its pose, its image, or both, 5 % each
DROPOUT_POSE = 0.05
DROPOUT_IMAGE = 0.05
DROPOUT_BOTH = 0.05

# What the official model is built on (official code, pinned revision)
BASE_MODEL = "CompVis/stable-diffusion-v1-4"
BASE_MODEL_REVISION = "ebb811dd71cdc38a204ecbdd6ac5d580f529fd8c"
IMAGE_ENCODER = "openai/clip-vit-base-patch32"
