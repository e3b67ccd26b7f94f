"""The numbers and switches an endpoint is sent, read once at its start: a value that means one
number (3, 3.0, "3") is taken as that number; anything else (text, a list, NaN, a fraction where
a whole number goes, a value out of range; for a switch anything but true or false; for a
choice any other name) is refused with a sentence that names the parameter as the
page and the API call it and the range it may take.

The page's own controls never send such values, but API clients can send anything: without
this, Gradio's generic "upstream Gradio app has raised an exception" or Python's "Cannot
convert float NaN to integer" came back instead. The page's number controls
(``dreampose.app.page.controls``) pass what they receive through unchanged, so these checks
decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from dreampose.app.messages import UserError

REFUSE = object()  # ``Field.read(empty=...)``: an empty value is refused too


@dataclass(frozen=True)
class Field:
    """One numeric parameter of an endpoint: its API name, what the page calls it, and its range
    (``high`` None: no upper bound; ``high_text``: how the bound is written, e.g. "2**63 - 1")."""

    name: str
    label: str
    low: float
    high: float | None = None
    whole: bool = False
    high_text: str | None = None

    def read(self, value, empty=REFUSE):
        """``value`` as a number in range (an int for a whole number); ``empty`` is what None or
        "" stand for (by default they are refused: the page always sends a number there)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            if empty is REFUSE:
                raise self.refusal("nothing")
            return empty
        number = _as_number(value)
        if self.whole and isinstance(number, float):
            number = int(number) if number.is_integer() else None
        if number is None or number < self.low or (self.high is not None and number > self.high):
            raise self.refusal(_shown(value))
        return number if self.whole else float(number)

    def refusal(self, got: str) -> UserError:
        kind = "a whole number" if self.whole else "a number"
        if self.high is None:
            allowed = f"{kind} of at least {_bound(self.low)}"
        else:
            allowed = f"{kind} from {_bound(self.low)} to {self.high_text or _bound(self.high)}"
        return UserError(f"{self.label} ({self.name}) must be {allowed}; got {got}.")


@dataclass(frozen=True)
class Flag:
    """One on/off parameter of an endpoint (a checkbox in the page). Only true and false are
    taken: Python would read the text "false" as true."""

    name: str
    label: str

    def read(self, value) -> bool:
        if isinstance(value, bool):
            return value
        got = "nothing" if value is None else _shown(value)
        raise UserError(f"{self.label} ({self.name}) must be true or false; got {got}.")


@dataclass(frozen=True)
class Choice:
    """One parameter that takes one of a few names (a dropdown or radio buttons in the page)."""

    name: str
    label: str
    choices: tuple[str, ...]

    def read(self, value) -> str:
        if isinstance(value, str) and value in self.choices:
            return value
        got = "nothing" if value is None else _shown(value)
        shown = ", ".join(f'"{c}"' for c in self.choices)
        raise UserError(f"{self.label} ({self.name}) must be one of {shown}; got {got}.")


def _as_number(value) -> int | float | None:
    """An int (exact, however large: seeds go to 2**63 - 1) or a finite float for a number or a
    text that is one; None for anything else (a bool is not a number here: True would silently
    be 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, Integral):
        return int(value)
    if not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
