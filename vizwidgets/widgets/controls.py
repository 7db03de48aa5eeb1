"""What the widgets share: control factories, layouts, messages and small HTML views.

- :func:`option_control`: the control for one of a method's options (from the registry:
  kind, default, range), or None for options that tune speed or memory only;
- :func:`message`: an error as a short red line for the widget (never a traceback);
- :func:`bars`: the top-k prediction as HTML bars.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import torch

__all__ = ["MAX_COMPARED", "MAX_UPLOAD_BYTES", "PREDICTED", "COLORMAPS", "FIRST_IMAGE", "option_control", "message",
           "bars", "course_first", "upload_problem", "wide"]

#: Methods shown beside the main one in compare mode (four pictures in all).
MAX_COMPARED = 3
#: The class dropdown's value for "the predicted class" (a Dropdown cannot select None).
PREDICTED = -1
COLORMAPS = ("jet", "inferno", "viridis", "magma", "gray", "coolwarm", "RdBu_r")
#: The largest file the Explorer takes as an upload. Jupyter's websocket carries at most 10 MiB
#: in one message by default, so a bigger file would be lost on the way without a word.
MAX_UPLOAD_BYTES = 8_000_000
#: Options that tune speed or memory, not what the method shows: not offered as controls.
_HIDDEN_OPTIONS = ("chunk_size",)


def message(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return (
        f'<div style="color:#b00020;white-space:pre-wrap">'
        f"{html.escape(type(error).__name__)}: {html.escape(text)}</div>"
    )


def _size(count: int, megabytes: bool) -> str:
    return f"{count / 1e6:.1f} MB" if megabytes else f"{count:,} bytes"


def upload_problem(name: str, content: bytes, limit: int = MAX_UPLOAD_BYTES) -> str:
    """What is wrong with an uploaded file before it is decoded ("" when nothing is): empty,
    or over ``limit`` bytes. Whether it is an image, and its pixel count, are checked when it is
    loaded (:func:`vizwidgets.data.load_image`)."""
    if not content:
        return f"{name} is empty (0 bytes): choose a JPEG or PNG file with a picture in it"
    if len(content) > limit:
        megabytes = limit >= 1_000_000  # both sizes in the limit's unit
        return (f"{name} is {_size(len(content), megabytes)}, over the limit of {_size(limit, megabytes)}: "
                "save it smaller (fewer pixels, or JPEG) and upload it again")
    return ""


def option_control(option: Any) -> W.Widget | None:
    """A control for a registry :class:`~vizwidgets.attribution.Option`, or None when the
    option is not for people to set here (tensors, ``None`` defaults, chunk sizes).
    Sliders update on release."""
    if option.name in _HIDDEN_OPTIONS or option.kind == "tensor" or option.default is None:
        return None
    label = option.name.replace("_", " ")
    style = {"description_width": "initial"}
    if option.kind == "bool":
        return W.Checkbox(value=option.default, description=label, tooltip=option.help, indent=False)
    if option.kind == "choice":
        choices = [c for c in option.choices if not isinstance(c, torch.Tensor)]
        return W.Dropdown(options=choices, value=option.default, description=label, style=style, tooltip=option.help)
    if option.interactive is not None:
        low, high = option.interactive
    else:
        low = option.minimum if option.minimum is not None else 0
        spread = max(4 * option.default, low + (10 if option.kind == "int" else 1))
        high = min(option.maximum, spread) if option.maximum is not None else spread
    if option.kind == "int":
        return W.IntSlider(value=option.default, min=int(low), max=int(high), description=label,
                           continuous_update=False, style=style, tooltip=option.help)
    return W.FloatSlider(value=float(option.default), min=float(low), max=float(high),
                         step=(float(high) - float(low)) / 100, description=label, continuous_update=False,
                         style=style, tooltip=option.help, readout_format=".3g")


# The image the course talks about first (the cat of notebooks 01 to 05): the widgets open on it.
FIRST_IMAGE = "chelsea"


def course_first(names: list[str]) -> list[str]:
    """``names`` with :data:`FIRST_IMAGE` moved to the front, when it is there."""
    return sorted(names, key=lambda name: name != FIRST_IMAGE)


def wide() -> W.Layout:
    """A fresh layout per control: a shared one would hide them all when one is hidden."""
    return W.Layout(width="320px")


def bars(entries: Sequence[tuple[int, str, float]], chosen: int | None) -> str:
    rows = []
    for index, name, p in entries:
        weight = "bold" if index == chosen else "normal"
        rows.append(
            f'<div style="display:flex;align-items:center;gap:6px;font-size:12px;font-weight:{weight}">'
            '<div style="width:150px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f"{html.escape(name)}</div>"
            f'<div style="background:#4c72b0;height:10px;width:{max(1, round(120 * p))}px"></div>'
            f"<div>{p:.1%}</div></div>"
        )
    return "".join(rows)
