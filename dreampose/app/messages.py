"""What the app says to people: errors they can fix, progress lines, and the setup page.

Problems a user can fix are :class:`UserError` with a plain sentence; the page shows them
as they are. Any other error becomes a sentence too (:func:`sentence`); nothing reaches
the page as a traceback. Gradio renders messages as HTML, so text is escaped (a message
holding ``<urlopen error ...>`` would otherwise be cut off).
"""

from __future__ import annotations

import html
import re
import time

from dreampose.base.downloads import format_duration as duration  # one way to say how long

OUT_OF_MEMORY = (
    "The GPU ran out of memory. Lower the number of steps or frames rendered together, "
    "or start the app with --cpu-offload."
)

MISSING_MODEL_HELP = """\
## The DreamPose model is not installed yet

This app looked for a model at **`{model}`** and did not find one. To get it:

1. Run `dreampose download`: it downloads the official DreamPose checkpoints, Stable Diffusion 1.4
   and CLIP, and converts them (about 6 GB, once).
2. Or, by hand: download the official checkpoints (`unet_epoch_*.pth` and `adapter_*.pth`) from the
   links in the [official DreamPose README](https://github.com/johannakarras/DreamPose) and convert them:

   ```bash
   dreampose convert --unet unet_epoch_20.pth --adapter adapter_20.pth --output models/dreampose
   ```

3. Start the app again: `python app.py` (it looks in `models/dreampose` by default), or point it
   at another folder or Hugging Face model id with `python app.py --model PATH_OR_ID`
   (or the environment variable `DREAMPOSE_MODEL`).

To try the whole app without any download, start it with `python app.py --model tiny`: a tiny
random model whose videos are noise, but every step works.
"""


class UserError(ValueError):
    """A problem the user can fix; its message is shown to them as it is."""


def sentence(error: BaseException | str) -> str:
    """An error's message as a sentence: first letter capitalised, a full stop at the end.

    Names are shown as given: a message that starts with a file or option name
    ("text.mp4 is not a video", "poses_nan.npz: ...") keeps it as it is, since "Text.mp4"
    is another file. Only a plain lowercase first word is capitalised.
    """
    text = str(error).strip() or type(error).__name__
    first_word = re.split(r"[\s:,;]", text, maxsplit=1)[0]
    if re.fullmatch(r"[a-z]+", first_word):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def for_page(text: str) -> str:
    """``text`` made safe to show in the page (Gradio reads messages as HTML)."""
    return html.escape(text, quote=False)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return "out of memory" in str(error).lower()


class Eta:
    """'3 of 10 frames, about 12 s left', from the pace since the first report.

    Timing starts at the first report, not at creation: model loading and warm-up before
    the first step must not inflate the estimate. Nothing is promised before a second
    report has measured a pace, and nothing once the work is done.
    """

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def seconds_left(self, done: int, total: int) -> float | None:
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)
            return None
        t0, done0 = self._first
        if done0 < done < total:
            return (now - t0) / (done - done0) * (total - done)
        return None

    def text(self, done: int, total: int, unit: str) -> str:
        line = f"{done} of {total} {unit}"
        left = self.seconds_left(done, total)
        return line if left is None else f"{line}, about {duration(left)} left"


def warning(text: str) -> str:
    """A line the page shows prominently (bold, with a warning sign)."""
    return f"**⚠ {text}**"
