"""What the explorer shows, as plain data: no ipywidgets.

How a map is drawn, :class:`Display`, lives in :mod:`vizwidgets.viz`, shared with
:func:`vizwidgets.explain.explain` and the command line; it is re-exported here.

A view reads a :class:`ExplorerState` and asks :mod:`vizwidgets.widgets.compute` for the
picture; callbacks change the state and never read notebook globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vizwidgets.viz import Display

__all__ = ["Display", "Request", "ExplorerState", "DISPLAY_DEFAULTS"]


DISPLAY_DEFAULTS = Display()


@dataclass(frozen=True)
class Request:
    """One attribution: everything its result depends on, hashable, so it can key a cache.

    ``image`` is a key of the explorer's image table (a bundled name, an uploaded file's
    name, or a path); ``target`` None means the predicted class; ``options`` are the
    method's options as sorted ``(name, value)`` pairs.
    """

    image: str
    method: str
    layer: str | None = None
    target: int | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def with_options(self, **options: Any) -> Request:
        merged = dict(self.options)
        merged.update(options)
        return replace(self, options=tuple(sorted(merged.items())))


@dataclass
class ExplorerState:
    """The explorer's whole state: the request, how to draw it, which methods to compare."""

    request: Request
    display: Display = field(default_factory=Display)
    compare: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
