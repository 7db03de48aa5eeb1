"""Widgets around optimisation loops: a loop's parameters, Run and Stop, and the image updating
as it runs, in a background thread (maximisation, fooling, style transfer).

Each picture is what the plain function (:func:`vizwidgets.synthesis.maximize`,
:func:`~vizwidgets.synthesis.fool`, :func:`~vizwidgets.synthesis.style_transfer`) returns for the
same arguments; Stop ends the loop cleanly with the image so far.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from IPython.display import display

import vizwidgets as vw
from vizwidgets.synthesis import Channel, ClassLogit, Neuron, fool, maximize, style_transfer
from vizwidgets.widgets.compute import png
from vizwidgets.widgets.controls import message

__all__ = ["MaximisationWidget", "FoolingWidget", "StyleTransferWidget"]


class _LoopWidget:
    """Run and Stop buttons, a progress bar and a live image around one optimisation loop.

    Subclasses give ``controls`` and ``_run(callback)``, which calls the plain function with
    the controls' values. ``run(background=False)`` runs in the caller's thread (tests,
    scripts); the Run button runs in a background thread so that Stop can be clicked.
    """

    every = 4  # redraw the image every few steps

    def __init__(self, model: Any, controls: list[W.Widget], steps: W.IntSlider) -> None:

        self.model = model if model is not None else vw.load_model()
        self.steps = steps
        self.run_button = W.Button(description="Run", icon="play", button_style="primary")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.progress = W.IntProgress(min=0, max=1, value=0, description="step")
        self.image = W.Image(format="png", layout=W.Layout(width="256px"))
        self.status = W.HTML()
        self.error = W.HTML()
        self.result: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.run_button.on_click(lambda b: self.run(background=True))
        self.stop_button.on_click(lambda b: self.stop())
        self.widget = W.HBox([W.VBox([*controls, W.HBox([self.run_button, self.stop_button]), self.progress]),
                              W.VBox([self.image, self.status, self.error])])

    def _show(self, image: torch.Tensor) -> None:
        array = image[0].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()
        self.image.value = png((array * 255).round().astype(np.uint8))

    def _callback(self, step: int, numbers: dict[str, float], image: Any) -> bool | None:
        self.progress.value = step + 1
        self.status.value = "<small>" + ", ".join(f"{k} {v:.3g}" for k, v in numbers.items()) + "</small>"
        if image is not None and (step + 1) % self.every == 0:
            self._show(image)
        return False if self._stop.is_set() else None

    def _run(self, callback: Callable[..., Any]) -> Any:
        raise NotImplementedError

    def _final_image(self, result: Any) -> torch.Tensor:
        return result.images if hasattr(result, "images") else result.image

    def _work(self) -> None:
        try:
            self.result = self._run(self._callback)
            self._show(self._final_image(self.result))
            self.error.value = ""
        except Exception as error:
            self.error.value = message(error)
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True

    def run(self, background: bool = False) -> Any:
        """Run the loop with the controls' values; ``background=True`` returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return None
        self._stop.clear()
        self.progress.max = self.steps.value
        self.progress.value = 0
        self.run_button.disabled = True
        self.stop_button.disabled = False
        if background:
            self._thread = threading.Thread(target=self._work, daemon=True)
            self._thread.start()
            return None
        self._work()
        return self.result

    def stop(self) -> None:
        """Ask the running loop to stop after its current step."""
        self._stop.set()

    def _ipython_display_(self) -> None:

        display(self.widget)


class MaximisationWidget(_LoopWidget):
    """Activation maximisation (:func:`vizwidgets.synthesis.maximize`) with controls."""

    def __init__(self, model: Any = None) -> None:

        model = model if model is not None else vw.load_model()
        layers = [info.name for info in vw.list_layers(model)]
        self.kind = W.ToggleButtons(options=["class", "channel", "neuron"], value="class")
        self.target = W.Combobox(value="goldfinch", options=list(model.classes), ensure_option=True,
                                 description="class")
        self.layer = W.Dropdown(options=layers, value=model.default_layer, description="layer")
        self.channel = W.BoundedIntText(value=0, min=0, max=4095, description="channel")
        steps = W.IntSlider(value=128, min=8, max=1024, step=8, description="steps", continuous_update=False)
        self.lr = W.FloatLogSlider(value=0.05, base=10, min=-3, max=0, description="lr", continuous_update=False)
        self.parametrization = W.Dropdown(options=["fourier", "pixels"], value="fourier", description="image as")
        self.seed = W.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
        controls = [self.kind, self.target, self.layer, self.channel, steps, self.lr, self.parametrization, self.seed]
        super().__init__(model, controls, steps)

    def _run(self, callback: Callable[..., Any]) -> Any:

        if self.kind.value == "class":
            objective: Any = ClassLogit(self.target.value)
        elif self.kind.value == "channel":
            objective = Channel(self.layer.value, self.channel.value)
        else:
            objective = Neuron(self.layer.value, self.channel.value)
        return maximize(self.model, objective, steps=self.steps.value, lr=self.lr.value,
                        parametrization=self.parametrization.value, seed=self.seed.value, progress=False,
                        callback=callback)


class FoolingWidget(_LoopWidget):
    """A targeted attack (:func:`vizwidgets.synthesis.fool`) on a bundled image."""

    every = 1

    def __init__(self, model: Any = None) -> None:

        model = model if model is not None else vw.load_model()
        names = [s.name for s in vw.sample_images()]
        self.source = W.Dropdown(options=names, value="chelsea", description="image")
        self.target = W.Combobox(value="goldfinch", options=list(model.classes), ensure_option=True,
                                 description="turn into")
        self.confidence = W.FloatSlider(value=0.9, min=0.5, max=0.99, step=0.01, description="confidence",
                                        continuous_update=False)
        self.epsilon = W.IntSlider(value=8, min=1, max=32, description="budget /255", continuous_update=False)
        steps = W.IntSlider(value=100, min=1, max=500, description="max steps", continuous_update=False)
        super().__init__(model, [self.source, self.target, self.confidence, self.epsilon, steps], steps)

    def _run(self, callback: Callable[..., Any]) -> Any:

        return fool(self.model, self.source.value, self.target.value, confidence=self.confidence.value,
                    max_steps=self.steps.value, epsilon=self.epsilon.value / 255, progress=False, callback=callback)


class StyleTransferWidget(_LoopWidget):
    """Style transfer (:func:`vizwidgets.synthesis.style_transfer`) between bundled images."""

    every = 5

    def __init__(self, model: Any = None) -> None:

        model = model if model is not None else vw.load_model()
        names = [s.name for s in vw.sample_images()]
        self.content = W.Dropdown(options=names, value="chelsea", description="content")
        self.style = W.Dropdown(options=names, value="starry_night", description="style")
        self.style_weight = W.FloatLogSlider(value=1e3, base=10, min=0, max=6, description="style weight",
                                             continuous_update=False)
        self.optimizer = W.Dropdown(options=["adam", "lbfgs"], value="adam", description="optimiser")
        steps = W.IntSlider(value=200, min=10, max=1000, step=10, description="steps", continuous_update=False)
        super().__init__(model, [self.content, self.style, self.style_weight, self.optimizer, steps], steps)

    def _run(self, callback: Callable[..., Any]) -> Any:

        return style_transfer(self.model, self.content.value, self.style.value, steps=self.steps.value,
                              style_weight=self.style_weight.value, optimizer=self.optimizer.value,
                              progress=False, callback=callback)
