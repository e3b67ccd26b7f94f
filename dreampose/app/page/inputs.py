"""Step 1 of the page: a photo of the person (plus optional extra photos for finetuning) and
a driving video shown as a player, or a pose file instead; the synthetic example is one click
away. The uploads are inputs of the later steps' endpoints; nothing runs here."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dreampose.app.examples import example_pairs
from dreampose.app.service import AppService


@dataclass
class Inputs:
    photo: gr.Image
    more: gr.File  # more photos of the same person
    driving: gr.Video
    pose_file: gr.File

    @property
    def photos(self) -> list:
        """What the steps that read the photos take last: the photo and the extra photos."""
        return [self.photo, self.more]


def create(service: AppService) -> Inputs:
    with gr.Column(elem_classes="step"):
        gr.Markdown("### 1 · Inputs")
        with gr.Row():
            with gr.Column(min_width=300):
                photo = photo_upload(label="Photo of the person", height=300, elem_id="photo")
                with gr.Accordion(
                    "More photos of the same person (optional: they help finetuning)", open=False
                ):
                    more = gr.File(
                        label="More photos", file_count="multiple", file_types=["image"], height=90
                    )
            with gr.Column(min_width=300):
                driving = gr.Video(label="Driving video", sources=["upload"], height=300, elem_id="driving")
                with gr.Accordion("Or a pose file instead of a video", open=False):
                    pose_file = gr.File(
                        label="Pose file: .npz from `dreampose extract-poses`, or the official .npy poses as a .zip",
                        file_types=[".npz", ".zip"], height=90, elem_id="pose-file",
                    )  # fmt: skip
        examples = example_pairs()
        if examples:
            gr.Examples(
                examples,
                inputs=[photo, driving],
                label="Examples (people of the drawn world, poses included)",
                examples_per_page=3,  # one round: every person and every clip once
            )
    return Inputs(photo, more, driving, pose_file)


def photo_upload(**kwargs) -> gr.Image:
    """The photo input, handing the service the very file that was uploaded.

    ``gr.Image`` opens an upload with PIL and converts it to RGB before any handler runs: a
    damaged photo then fails inside Gradio with its generic "upstream" error, a transparent
    background turns black and a 16-bit photo clips, all before the one photo loader (EXIF,
    alpha onto white, 16 bit, size limits) sees the file. The CLI and the app must read the
    same photo the same way, so the loader gets the file itself. (Replaced on the instance:
    a subclass of a Gradio component makes Gradio write a ``.pyi`` file beside this one.)
    """
    image = gr.Image(type="filepath", **kwargs)
    decode = image.preprocess

    def file_as_uploaded(payload):
        if payload is None or payload.path is None:  # nothing, or a data: URL
            return decode(payload)
        return payload.path

    image.preprocess = file_as_uploaded
    return image
