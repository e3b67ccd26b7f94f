"""Step 3 of the page (optional): finetune the model on the photos, full (as in the paper) or
LoRA, with the UNet and VAE steps starting at the paper's 500 and 1500 (scaled down in
proportion when the server allows fewer). The endpoint is ``/finetune``; the work is
``dreampose.app.steps.finetune``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dreampose.app.page import wiring
from dreampose.app.page.controls import RadioAsSent, SliderAsSent
from dreampose.app.page.inputs import Inputs
from dreampose.app.service import AppService
from dreampose.app.steps import finetune as work
from dreampose.app.values import Choice, Field
from dreampose.app.zerogpu import gpu
from dreampose.base import paper

MODES = ("Full (as in the paper)", "LoRA (smaller and faster)")
NOTE = (
    f"Finetuning teaches the model this person's face and clothes (the paper finetunes the UNet for "
    f"{paper.FINETUNE_UNET_STEPS} steps and the VAE decoder for {paper.FINETUNE_VAE_STEPS}). You can skip it: "
    "the result then looks less like the photo."
)


@dataclass
class Finetune:
    mode: gr.Radio
    unet_steps: gr.Slider
    vae_steps: gr.Slider
    controls: wiring.StepControls
    download: gr.File  # the finetuned subject


def create(service: AppService) -> Finetune:
    limit = service.limits.max_finetune_steps
    unet_default, vae_default = service.finetune_defaults()
    with gr.Column(elem_classes="step"):
        gr.Markdown("### 3 · Subject finetuning (optional)")
        gr.Markdown(NOTE, elem_classes="note")
        with gr.Row():
            mode = RadioAsSent(list(MODES), value=MODES[0], label="Mode", min_width=240)
            unet_steps = SliderAsSent(
                0, limit, value=unet_default, step=1, label=f"UNet steps (paper: {paper.FINETUNE_UNET_STEPS})",
                elem_id="unet-steps", min_width=240,
            )  # fmt: skip
            vae_steps = SliderAsSent(
                0, limit, value=vae_default, step=1, label=f"VAE decoder steps (paper: {paper.FINETUNE_VAE_STEPS})",
                elem_id="vae-steps", min_width=240,
            )  # fmt: skip
        gr.Markdown(
            f"This server runs at most **{limit} steps** in all (UNet and VAE together).",
            elem_classes="note", elem_id="finetune-limit",
        )  # fmt: skip
        controls = wiring.step_controls(
            "finetune", "finetune-cancel",
            ("Optional: until you finetune, previews and renders use the base model.", "Finetune status",
             "finetune-status"),
            {"value": "Finetune", "elem_id": "finetune-btn", "interactive": not service.setting_up},
        )  # fmt: skip
        download = gr.File(
            label="Finetuned subject (download)",
            elem_id="subject-download",
            elem_classes="output-box",
            height=60,
        )
    return Finetune(mode, unet_steps, vae_steps, controls, download)


def wire(service: AppService, step: Finetune, inputs: Inputs) -> None:
    wiring.run_step(
        service, step.controls, step.controls.buttons[0], endpoint(service),
        [step.mode, step.unet_steps, step.vae_steps, *inputs.photos], [step.controls.status, step.download],
        "finetune",
    )  # fmt: skip
    wiring.cancel_step(service, step.controls)


def endpoint(service: AppService):
    @wiring.documented(
        "Finetune the model on the subject photos (the paper's second phase); later steps of this session use the subject. Returns the status and the subject model to download."
    )
    @gpu(duration=600)
    def finetune(
        mode, unet_steps, vae_steps, photo=None, more_photos=None, request: gr.Request = None, progress=gr.Progress()
    ):  # fmt: skip
        session = service.session(request.session_hash)
        with wiring.kept_status(session, "finetune"):
            limit = service.limits.max_finetune_steps
            unet_steps = Field("unet_steps", "UNet steps", 0, limit, whole=True).read(unet_steps)
            vae_steps = Field("vae_steps", "VAE decoder steps", 0, limit, whole=True).read(vae_steps)
            lora = Choice("mode", "Mode", MODES).read(mode) == MODES[1]
            result = work.finetune(
                service, session, wiring.photos_of(photo, more_photos), lora, unet_steps, vae_steps,
                wiring.progress_bar(progress),
            )  # fmt: skip
        status = wiring.keep_status(session, "finetune", result.message)
        return status, (str(result.download) if result.download else None)

    return finetune
