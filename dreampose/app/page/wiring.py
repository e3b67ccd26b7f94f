"""What every step of the page shares: its run and Cancel buttons and its status line, wired
once (:func:`run_step`, :func:`cancel_step`), errors shown as sentences, and the values the
page sends turned into settings.

What a step promises a person: its progress shows from the first second, its run buttons are
off and its Cancel on while it runs, and its status line keeps its last result or error
(from the session, so it survives other steps) until it runs again.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import gradio as gr

from dreampose.app.messages import OUT_OF_MEMORY, UserError, for_page, is_out_of_memory, sentence
from dreampose.app.service import AppService
from dreampose.app.uploads import UploadOrigins
from dreampose.app.values import Choice, Field, Flag
from dreampose.base import paper
from dreampose.model.checks import MAX_GUIDANCE, MAX_INFERENCE_STEPS, MAX_SEED
from dreampose.model.schedulers import SAMPLERS
from dreampose.rendering.settings import RenderSettings

log = logging.getLogger("dreampose.app")

# Events of the page itself (not API endpoints): no progress, no queue.
PRIVATE = {"api_visibility": "private", "show_progress": "hidden", "queue": False}


@dataclass
class StepControls:
    """A step's run buttons (off while it runs), its Cancel button and its status line;
    ``kind`` names its status in the session and what Cancel stops."""

    kind: str
    buttons: list[gr.Button]
    cancel: gr.Button
    status: gr.Markdown


def step_controls(kind: str, cancel_id: str, status: tuple[str, str, str], *buttons: dict) -> StepControls:
    """A row of the step's run buttons (each a dict of ``gr.Button`` arguments; primary and 3
    wide unless it says otherwise) and its Cancel button (on only while the step runs), then
    its status line, given as (text, label, elem_id)."""
    with gr.Row():
        made = [gr.Button(**{"variant": "primary", "min_width": 120, "scale": 3, **b}) for b in buttons]
        cancel = gr.Button(
            "Cancel", variant="stop", interactive=False, elem_id=cancel_id, scale=1, min_width=90
        )
    text, label, elem_id = status
    return StepControls(
        kind, made, cancel, gr.Markdown(text, label=label, elem_id=elem_id, elem_classes="status")
    )


# Every step that runs a model (poses too: DensePose) queues under this one id, so that
# ``--concurrency N`` (the queue's default limit) bounds them all together, not each kind apart.
MODEL_STEPS = "model"


def run_step(
    service: AppService,
    controls: StepControls,
    button: gr.Button,
    fn: Callable,
    inputs: list,
    outputs: list,
    api_name: str,
    after_outputs: list = (),
    after: Callable | None = None,
):
    """``button`` runs ``fn`` (the endpoint ``api_name``): the status line makes room for the
    progress, the run buttons go off and Cancel on; afterwards (success or error) the status
    comes from the session, the buttons come back, and ``after(session)`` may update
    ``after_outputs``. Returns the endpoint's event, for more to follow its success."""
    buttons, count = controls.buttons, len(controls.buttons)

    def busy():
        return ["", *[gr.Button(interactive=False)] * count, gr.Button(interactive=True)]

    def idle(request: gr.Request):
        session = service.session(request.session_hash)
        ready = not service.setting_up or controls.kind == "poses"  # poses need no model
        out = [session.load_status(controls.kind), *[gr.Button(interactive=ready)] * count]
        return [*out, gr.Button(interactive=False), *(after(session) if after else [])]

    run = button.click(busy, None, [controls.status, *buttons, controls.cancel], **PRIVATE)
    run = run.then(
        fn, inputs, outputs, api_name=api_name, show_progress_on=[controls.status], concurrency_id=MODEL_STEPS
    )
    # Gradio runs ``.then`` only after a success; ``.failure`` covers errors.
    for follow in (run.then, run.failure):
        follow(idle, None, [controls.status, *buttons, controls.cancel, *after_outputs], **PRIVATE)
    return run


def cancel_step(service: AppService, controls: StepControls, *kinds: str) -> None:
    """Cancel stops this session's job of ``kinds`` (default: the step's own) after its current
    step; also the endpoint ``cancel_<kind>``."""
    kinds = kinds or (controls.kind,)

    def cancel(request: gr.Request):
        if any([service.cancel(request.session_hash, kind) for kind in kinds]):
            gr.Info("Stopping after the current step…")

    # The MCP tool's name and description (Gradio takes them from the function)
    cancel.__name__ = name = f"cancel_{controls.kind}"
    cancel.__doc__ = (
        f"Stop this session's {' or '.join(kinds)} step after its current step; what it finished is kept."
    )

    controls.cancel.click(cancel, None, None, concurrency_limit=None, api_name=name)


# ----------------------------------------------------------------------------- API documentation
# What each endpoint parameter means: the one source of the named endpoints' "Args:" sections,
# which gradio_client's view_api and the MCP tools (``app.py --mcp``) show to callers.
PARAMETERS = {
    "photo": "the subject photo: a picture of the whole person to animate (JPEG or PNG)",
    "more_photos": "more photos of the same person (optional; finetuning learns from all of them)",
    "driving_video": "the driving video whose motion the person follows (or give pose_file instead)",
    "pose_file": "poses instead of a video: a DreamPose .npz or the official zip of frame_N_densepose.npy",
    "fps": "frames per second taken from the video (empty: the video's own rate)",
    "start": "the second of the video to start at (empty: its start)",
    "end": "the second of the video to end at (empty: its end)",
    "max_frames": "at most this many frames (empty: as many as this app allows)",
    "align": "true: move and scale the poses onto the person in the photo",
    "mode": "one of the two choices: full finetuning, as in the paper, or LoRA (smaller and faster)",
    "unet_steps": f"finetuning steps of the UNet and adapter (the paper: {paper.FINETUNE_UNET_STEPS})",
    "vae_steps": f"finetuning steps of the VAE decoder (the paper: {paper.FINETUNE_VAE_STEPS})",
    "frame": "the pose frame to render (0 is the first)",
    "s_i": f"image guidance sI: how closely the person follows the photo (the paper: {paper.IMAGE_GUIDANCE:g})",
    "s_p": f"pose guidance sP: how closely the person follows the pose (the paper: {paper.POSE_GUIDANCE:g})",
    "steps": "denoising steps (not used when fast is true)",
    "sampler": f"one of {', '.join(SAMPLERS)} (pndm is the paper's; not used when fast is true)",
    "seed": "random seed: the same seed and settings give the same frames",
    "fast": "true: the fast preset (its own sampler and steps) instead of steps and sampler",
    "image_guidance_values": "sI values separated by commas: the grid's rows",
    "pose_guidance_values": "sP values separated by commas: the grid's columns",
    "side_by_side": "true: also a video of the driving poses beside the render",
    "keep_sound": "true: the render keeps the driving video's sound",
    "first": "the first frame to render (empty: 0)",
    "last": "the last frame to render (empty or -1: as far as one render may go)",
}


def documented(summary: str):
    """Give an endpoint the docstring its callers read: ``summary``, then an "Args:" line for
    each of its parameters from ``PARAMETERS`` (Gradio's request and progress are not listed)."""

    def document(fn):
        names = [name for name in inspect.signature(fn).parameters if name in PARAMETERS]
        fn.__doc__ = summary + "\n\nArgs:\n" + "\n".join(f"    {n}: {PARAMETERS[n]}" for n in names)
        return fn

    return document


# ----------------------------------------------------------------------------- errors and status
@contextlib.contextmanager
def user_errors():
    """Show problems as a sentence in the page (``gr.Error``) instead of a stack trace. The
    terminal gets one line for a user's mistake or an out-of-memory, the traceback only for a
    real fault (Gradio would print one for every error)."""
    try:
        yield
    except gr.Error:
        raise
    except (UserError, ValueError) as e:
        log.info("refused: %s", sentence(e))
        raise gr.Error(for_page(sentence(e)), print_exception=False) from e
    except Exception as e:
        if is_out_of_memory(e):
            log.warning("out of memory: %s", e)
            raise gr.Error(OUT_OF_MEMORY, print_exception=False) from e
        log.exception("step failed")
        raise gr.Error(
            for_page(
                f"Something went wrong ({type(e).__name__}: {e}). Your poses, subject and videos are kept; "
                "please try again."
            ),
            print_exception=False,  # logged above, once
        ) from e


@contextlib.contextmanager
def kept_status(session, kind: str):
    """Run a step; its error is shown as a toast *and* kept in the step's status line."""
    try:
        with user_errors():
            yield
    except gr.Error as e:
        with contextlib.suppress(Exception):  # the session may have closed meanwhile
            session.save_status(kind, f"**Error:** {e.message}")
        raise


def keep_status(session, kind: str, text: str) -> str:
    """A step's result as the page shows it, kept in its status line (until the step runs
    again); returns it."""
    status = for_page(text)
    session.save_status(kind, status)
    return status


def progress_bar(progress: gr.Progress):
    """One progress display: the bar's fraction, and our own words (with counts and time left)."""
    return lambda done, total, text: progress(done / total if total else 0.0, desc=text)


# ----------------------------------------------------------------------------- values from the page
def photos_of(photo, more) -> list:
    return [photo, *(more or [])] if photo else list(more or [])


# The sampling controls of step 4, shared by the preview, the grid and the video.
IMAGE_GUIDANCE = Field("s_i", "Image guidance sI", 0, MAX_GUIDANCE)
POSE_GUIDANCE = Field("s_p", "Pose guidance sP", 0, MAX_GUIDANCE)
STEPS = Field("steps", "Steps", 1, MAX_INFERENCE_STEPS, whole=True)
SEED = Field("seed", "Seed", 0, MAX_SEED, whole=True, high_text="2**63 - 1")
FAST = Flag("fast", "Fast preview")
SAMPLER = Choice("sampler", "Sampler", tuple(SAMPLERS))


def frame_field(service: AppService, name: str, label: str) -> Field:
    """A frame number: up to the pose limit (whether the poses have that frame is the step's check)."""
    return Field(name, label, 0, max(service.limits.max_pose_frames - 1, 1), whole=True)


def render_settings(
    service: AppService, s_i, s_p, steps, sampler, seed, fast: bool = False
) -> RenderSettings:
    """The step-4 controls as settings: the fast preset (its own steps and sampler) or these.
    An empty seed is 0, as the page starts."""
    # steps and sampler are checked even when the fast preset replaces them
    steps, sampler, fast = STEPS.read(steps), SAMPLER.read(sampler), FAST.read(fast)
    base = service.fast_settings() if fast else service.video_settings()
    if not fast:
        base = replace(base, num_inference_steps=steps, scheduler=sampler)
    return replace(
        base,
        image_guidance_scale=IMAGE_GUIDANCE.read(s_i),
        pose_guidance_scale=POSE_GUIDANCE.read(s_p),
        seed=SEED.read(seed, empty=0),
    )


def cache_lifetime(limits) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (every, age) in seconds: uploads and results that Gradio keeps
    in its own cache are deleted once older than ``limits.cache_ttl_s`` (checked every tenth
    of it, at most every 10 minutes), and all of them when the server stops."""
    age = max(1, int(limits.cache_ttl_s))
    return max(1, min(age // 10, 600)), age


def end_sessions(service: AppService, demo: gr.Blocks) -> None:
    """A closed tab's session stops its jobs and deletes its folder."""

    def end_session(request: gr.Request):
        service.end_session(request.session_hash)

    demo.unload(end_session)


def page_uploads(demo: gr.Blocks) -> UploadOrigins:
    """The files the page's endpoints may read: those uploaded to it (Gradio's live set) and the
    copies of the bundled examples it made while the page was built (read before any request,
    so a file Gradio copies for a request later is never among them)."""
    built = frozenset(name for files in demo.temp_file_sets for name in files)
    return UploadOrigins(uploaded=demo.upload_file_set, bundled=built)
