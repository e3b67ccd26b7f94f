"""The page's number and choice controls, passing what they are sent to the endpoint
unchanged, for the endpoint's checks (:mod:`dreampose.app.values`) to read or refuse with a
sentence that names the parameter. Gradio's own reading fails on text, lists and None with
"upstream Gradio app has raised an exception", and answers a value out of range or an unknown
choice in its own words.

Gradio writes a typing stub beside every module that defines a component (``controls.pyi``);
the one committed is what it writes, so nothing changes at import.
"""

from __future__ import annotations

import gradio as gr


class NumberAsSent(gr.Number):
    """``gr.Number`` whose value reaches the endpoint as it was sent."""

    is_template = True  # drawn in the page as a gr.Number

    def preprocess(self, payload):
        return payload


class DropdownAsSent(gr.Dropdown):
    """``gr.Dropdown`` whose value reaches the endpoint as it was sent."""

    is_template = True  # drawn in the page as a gr.Dropdown

    def preprocess(self, payload):
        return payload


class RadioAsSent(gr.Radio):
    """``gr.Radio`` whose value reaches the endpoint as it was sent."""

    is_template = True  # drawn in the page as a gr.Radio

    def preprocess(self, payload):
        return payload


class SliderAsSent(gr.Slider):
    """``gr.Slider`` whose value reaches the endpoint as it was sent."""

    is_template = True  # drawn in the page as a gr.Slider

    def preprocess(self, payload):
        return payload
