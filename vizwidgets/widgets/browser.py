"""The activation browser: a layer's feature maps, channel by channel, its strongest
channels, and a channel's maximisation (:func:`vizwidgets.synthesis.maximize`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from IPython.display import display

import vizwidgets as vw
from vizwidgets.features import activations, feature_grid
from vizwidgets.synthesis import Channel, maximize
from vizwidgets.widgets.compute import Session, png
from vizwidgets.widgets.controls import course_first, message

__all__ = ["ActivationBrowser"]


class ActivationBrowser:
    """The feature maps of one layer for one image: a channel at a time, the strongest
    channels as a grid, and a button to grow the image that excites the chosen channel."""

    def __init__(self, model: Any = None, images: Sequence[str] | None = None, *, top: int = 16) -> None:

        self.model = model if model is not None else vw.load_model()
        self.session = Session(self.model)
        names = list(images) if images is not None else course_first([s.name for s in vw.sample_images()])
        for name in names:
            self.session.add_image(name, name)
        self.top = top
        self.layers = [info.name for info in vw.list_layers(self.model)]
        self.image_select = W.Dropdown(options=names, value=names[0], description="image")
        self.layer = W.Dropdown(options=self.layers, value=self.model.default_layer, description="layer")
        self.channel = W.IntSlider(min=0, max=1, value=0, description="channel", continuous_update=False)
        self.steps = W.IntSlider(value=64, min=8, max=512, step=8, description="steps", continuous_update=False)
        self.maximise = W.Button(description="Maximise this channel", icon="play")
        self.map = W.Image(format="png", layout=W.Layout(width="224px"))
        self.grid = W.Image(format="png", layout=W.Layout(width="336px"))
        self.synthesised = W.Image(format="png", layout=W.Layout(width="224px"))
        self.caption = W.HTML()
        self.error = W.HTML()
        self.widget = W.VBox([
            W.HBox([self.image_select, self.layer, self.channel]),
            W.HBox([W.VBox([W.HTML("<b>channel</b>"), self.map]), W.VBox([W.HTML("<b>top channels</b>"), self.grid]),
                    W.VBox([self.steps, self.maximise, self.synthesised])]),
            self.caption, self.error,
        ])
        self.image_select.observe(lambda c: self.update(), "value")
        self.layer.observe(lambda c: self.update(new_layer=True), "value")
        self.channel.observe(lambda c: self.update(), "value")
        self.maximise.on_click(lambda b: self.run_maximisation())
        self.update(new_layer=True)

    def activations(self) -> torch.Tensor:

        image, layer = self.image_select.value, self.layer.value
        key = ("activations", self.session.digest(image), layer)  # by content, not by name
        return self.session.maps.get(key, lambda: activations(self.model, self.session.input(image), layer))

    def update(self, new_layer: bool = False) -> None:

        try:
            maps = self.activations()[0]
            if new_layer:
                self.channel.max = maps.shape[0] - 1
            c = self.channel.value
            single = feature_grid(maps[c : c + 1], padding=0)
            self.map.value = png((np.repeat(single[..., None], 3, axis=2) * 255).astype(np.uint8))
            order = maps.mean(dim=(1, 2)).argsort(descending=True)[: self.top]
            grid = feature_grid(maps[order], padding=1)
            self.grid.value = png((np.repeat(grid[..., None], 3, axis=2) * 255).astype(np.uint8))
            self.caption.value = (f"<small>{self.layer.value}: {maps.shape[0]} channels of "
                                  f"{maps.shape[1]}x{maps.shape[2]}; channel {c} mean {float(maps[c].mean()):.3f}; "
                                  f"top: {order[:8].tolist()}</small>")
            self.error.value = ""
        except Exception as error:
            self.error.value = message(error)

    def run_maximisation(self) -> None:

        try:
            objective = Channel(self.layer.value, self.channel.value)
            result = maximize(self.model, objective, steps=self.steps.value, progress=False)
            self.synthesised.value = png((result.to_numpy() * 255).round().astype(np.uint8))
        except Exception as error:
            self.error.value = message(error)

    def _ipython_display_(self) -> None:

        display(self.widget)
