"""Widgets for notebooks: an explorer for method, layer and class; an activation browser;
maximisation, fooling and style-transfer controls.

Three layers (see the project's design notes): :mod:`~vizwidgets.widgets.state` holds plain
data, :mod:`~vizwidgets.widgets.compute` the cached pure computations, and
:mod:`~vizwidgets.widgets.views` the ipywidgets, built once, whose callbacks only change the
state and redraw.
"""

from vizwidgets.widgets.compute import explain_picture
from vizwidgets.widgets.state import Display, ExplorerState, Request
from vizwidgets.widgets.views import (
    ActivationBrowser,
    Explorer,
    FoolingWidget,
    MaximisationWidget,
    StyleTransferWidget,
)

__all__ = [
    "ActivationBrowser",
    "Display",
    "Explorer",
    "ExplorerState",
    "FoolingWidget",
    "MaximisationWidget",
    "Request",
    "StyleTransferWidget",
    "explain_picture",
]
