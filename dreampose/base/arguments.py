"""Command-line options made from settings dataclasses, for every command and the app.

A settings field with ``help`` metadata becomes an option: ``--field-name`` (or its
``flag``), its type and default from the field, ``choices`` when given. Booleans become
switches that flip the default. So the defaults and help texts live once, on the settings
(``RenderSettings``, ``FinetuneSettings``, ``TrainSettings``, ``DensePoseOptions``), and
``settings_from_args`` builds the settings back from the parsed arguments.

Only the standard library is imported: every layer may use this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings_cls,
    exclude: tuple[str, ...] = (),
    overrides_of: str | None = None,
) -> None:
    """One option per field of ``settings_cls`` that has ``help`` metadata.

    With ``overrides_of`` (e.g. "--preset"), options default to None and only override the
    settings that option chose (see ``settings_from_args(base=...)``).
    """
    hints = typing.get_type_hints(settings_cls)
    for f in dataclasses.fields(settings_cls):
        if "help" not in f.metadata or f.name in exclude:
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = _base_type(hints[f.name])
        # "default_text": the default depends on what else was chosen (e.g. the model's own
        # canvas); the option is then None unless given, and the caller fills it in.
        default = None if overrides_of or "default_text" in f.metadata else f.default
        if kind is bool:
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=default, help=f.metadata["help"])
            continue
        if overrides_of:
            shown = f" (default from {overrides_of})"
        elif "default_text" in f.metadata:
            shown = f" (default: {f.metadata['default_text']})"
        elif default is None:  # the help says what happens without it
            shown = ""
        else:
            shown = f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
        parser.add_argument(
            flag,
            dest=f.name,
            metavar=f.metadata.get("metavar", flag.lstrip("-").upper().replace("-", "_")),
            type=kind,
            default=default,
            choices=f.metadata.get("choices"),
            help=f.metadata["help"] + shown,
        )


def settings_from_args(settings_cls, args: argparse.Namespace, base=None, **overrides):
    """``settings_cls`` from the options :func:`add_settings_arguments` made (plus ``overrides``).

    With ``base`` (a ``settings_cls``), options left at None keep the base's values.
    """
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(settings_cls)
        if "help" in f.metadata and hasattr(args, f.name)
    }
    if base is not None:
        values = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(base, **{**values, **overrides})
    # An option with "default_text" left out keeps the field's default unless the caller filled it.
    unset = {f.name for f in dataclasses.fields(settings_cls) if "default_text" in f.metadata}
    values = {k: v for k, v in values.items() if v is not None or k not in unset}
    return settings_cls(**{**values, **overrides})


def _base_type(hint):
    """``int`` for ``int`` and for ``int | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint
