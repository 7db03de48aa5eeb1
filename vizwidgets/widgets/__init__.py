"""Widgets for notebooks: an explorer for method, layer and class; an activation browser;
maximisation, fooling and style-transfer controls.

Three layers (see the project's design notes): :mod:`~vizwidgets.widgets.state` holds plain
data, :mod:`~vizwidgets.widgets.compute` the cached computations (the chain itself is
:func:`vizwidgets.explain.explain`), and the views, built once, whose callbacks only change the
state and redraw: :mod:`~vizwidgets.widgets.explorer`, :mod:`~vizwidgets.widgets.browser` and
:mod:`~vizwidgets.widgets.loops`, with what they share in :mod:`~vizwidgets.widgets.controls`;
the Explorer's map is :mod:`~vizwidgets.widgets.mapview` (an anywidget you can point at) and its
faithfulness panel :mod:`~vizwidgets.widgets.measure`.
"""

from vizwidgets.widgets.browser import ActivationBrowser
from vizwidgets.widgets.compute import explain_picture
from vizwidgets.widgets.explorer import Explorer
from vizwidgets.widgets.loops import FoolingWidget, MaximisationWidget, StyleTransferWidget
from vizwidgets.widgets.mapview import MapView
from vizwidgets.widgets.measure import MeasurePanel
from vizwidgets.widgets.state import Display, ExplorerState, Request

__all__ = [
    "ActivationBrowser",
    "Display",
    "Explorer",
    "ExplorerState",
    "FoolingWidget",
    "MapView",
    "MaximisationWidget",
    "MeasurePanel",
    "Request",
    "StyleTransferWidget",
    "explain_picture",
]
