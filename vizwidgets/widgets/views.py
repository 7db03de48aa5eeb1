"""The ipywidgets views: built once, then only their values change.

- :class:`Explorer`: image, method, layer, class, the method's options, display controls,
  a compare mode; the picture, the prediction bars and the time of the last computation.
- :class:`ActivationBrowser`: the feature maps of a layer, channel by channel, the top
  channels, and a channel's maximisation.
- :class:`MaximisationWidget`, :class:`FoolingWidget`, :class:`StyleTransferWidget`: a loop's
  parameters, Run and Stop, and the image updating as it runs.

Every picture is what a plain function returns for the same arguments
(:func:`vizwidgets.widgets.compute.explain_picture`, :func:`vizwidgets.synthesis.maximize`,
...). Errors are shown in the widget as a message; the previous picture stays.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from vizwidgets.widgets.compute import Session, png, predictions_of, render
from vizwidgets.widgets.state import Display, ExplorerState, Request

__all__ = ["Explorer", "ActivationBrowser", "MaximisationWidget", "FoolingWidget", "StyleTransferWidget", "option_control"]

#: Methods shown beside the main one in compare mode (four pictures in all).
MAX_COMPARED = 3
#: The class dropdown's value for "the predicted class" (a Dropdown cannot select None).
PREDICTED = -1
COLORMAPS = ("jet", "inferno", "viridis", "magma", "gray", "coolwarm", "RdBu_r")
#: Options that tune speed or memory, not what the method shows: not offered as controls.
_HIDDEN_OPTIONS = ("chunk_size",)


def _message(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(type(error).__name__)}: {html.escape(text)}</div>'


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
    return W.FloatSlider(value=float(option.default), min=float(low), max=float(high), step=(float(high) - float(low)) / 100,
                         description=label, continuous_update=False, style=style, tooltip=option.help, readout_format=".3g")


# The image the course talks about first (the cat of notebooks 01 to 05): the widgets open on it.
FIRST_IMAGE = "chelsea"


def _course_first(names: list[str]) -> list[str]:
    """``names`` with :data:`FIRST_IMAGE` moved to the front, when it is there."""
    return sorted(names, key=lambda name: name != FIRST_IMAGE)


def _wide() -> W.Layout:
    """A fresh layout per control: a shared one would hide them all when one is hidden."""
    return W.Layout(width="320px")


def _bars(entries: Sequence[tuple[int, str, float]], chosen: int | None) -> str:
    rows = []
    for index, name, p in entries:
        weight = "bold" if index == chosen else "normal"
        rows.append(
            f'<div style="display:flex;align-items:center;gap:6px;font-size:12px;font-weight:{weight}">'
            f'<div style="width:150px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">{html.escape(name)}</div>'
            f'<div style="background:#4c72b0;height:10px;width:{max(1, round(120 * p))}px"></div>'
            f"<div>{p:.1%}</div></div>"
        )
    return "".join(rows)


class Explorer:
    """Pick an image, a method, a layer and a class, and see the explanation change.

    ``Explorer(model=None, images=None)``: ``model`` a :class:`~vizwidgets.models.LoadedModel`
    (default: the bundled EfficientNet-Lite0); ``images`` names, paths or PIL images (default:
    the bundled ones). Display it as the last expression of a cell, or with
    ``display(explorer.widget)``.
    """

    def __init__(self, model: Any = None, images: Sequence[Any] | None = None, *, method: str = "grad_cam") -> None:
        import vizwidgets as vw
        from vizwidgets.attribution import FAMILIES, METHODS

        self._methods = METHODS
        self.model = model if model is not None else vw.load_model()
        self.session = Session(self.model)
        self._bundled = {s.name for s in vw.sample_images()}
        if images is None:
            images = _course_first([s.name for s in vw.sample_images()])
        keys = []
        for i, image in enumerate(images):
            key = image if isinstance(image, str) else f"image {i + 1}"
            keys.append(self.session.add_image(key, image))
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
        self.layers = [info.name for info in vw.list_layers(self.model)]
        self.state = ExplorerState(Request(keys[0], method, self._layer_for(method, None)))
        order = {family: k for k, family in enumerate(FAMILIES)}
        grouped = sorted(METHODS.values(), key=lambda m: (order.get(m.family, 99), list(METHODS).index(m.name)))
        method_options = [(f"{m.family}: {m.title}", m.name) for m in grouped]

        style = {"description_width": "initial"}
        self.image_select = W.Dropdown(options=keys, value=keys[0], description="image", layout=_wide())
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.path = W.Text(placeholder="or a path to an image, then Enter", continuous_update=False, layout=_wide())
        self.method = W.Dropdown(options=method_options, value=method, description="method", layout=_wide())
        self.layer = W.Dropdown(options=self.layers, value=self.state.request.layer or self.layers[-1], description="layer", layout=_wide())
        self.target = W.Dropdown(description="class", layout=_wide())
        self.search = W.Combobox(placeholder="search all classes, then Enter", options=list(self.model.classes),
                                 ensure_option=False, continuous_update=False, layout=_wide())
        self.options_box = W.VBox()
        self.option_controls: dict[str, W.Widget] = {}
        self._quiet = False
        self.opacity = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity", style=style)
        self.cmap = W.Dropdown(options=COLORMAPS, value="jet", description="colours", style=style)
        self.scaling = W.Dropdown(options=["percentile", "max", "minmax"], value="percentile", description="scaling", style=style)
        self.sign = W.ToggleButtons(options=["absolute", "positive", "negative", "all"], value="absolute", style={"button_width": "auto"},
                                   tooltips=["|map|", "map > 0 only", "map < 0 only", "both signs, diverging colours"])
        self.compare = W.SelectMultiple(options=method_options, value=(), description="compare", rows=6, layout=_wide())
        self.image = W.Image(format="png", layout=W.Layout(width="336px", height="336px"))
        self.compare_box = W.HBox()
        self.bars = W.HTML()
        self.status = W.HTML()
        self.error = W.HTML()
        self.note = W.HTML()  # warnings about the map (all zero, say), with their reason
        self.widget = W.HBox(
            [
                W.VBox([self.image_select, self.upload, self.path, self.method, self.layer, self.target,
                        self.search, self.options_box, W.HTML("<b>display</b>"), self.opacity, self.cmap,
                        self.scaling, self.sign, self.compare]),
                W.VBox([self.image, self.status, self.error, self.note, self.bars, self.compare_box]),
            ]
        )
        self._build_options(method)
        self._refresh_targets()
        self.image_select.observe(self._on_image, "value")
        self.upload.observe(self._on_upload, "value")
        self.path.observe(self._on_path, "value")
        self.method.observe(self._on_method, "value")
        self.layer.observe(self._on_layer, "value")
        self.target.observe(self._on_target, "value")
        self.search.observe(self._on_search, "value")
        for control in (self.opacity, self.cmap, self.scaling, self.sign):
            control.observe(self._on_display, "value")
        self.compare.observe(lambda change: self._update(), "value")
        self._update()

    # -- helpers ---------------------------------------------------------------------------
    def _layer_for(self, method: str, current: str | None) -> str | None:
        if not self._methods[method].needs_layer:
            return None
        return current if current is not None else self.model.default_layer

    def _build_options(self, method: str) -> None:
        self.option_controls = {}
        for option in self._methods[method].options:
            control = option_control(option)
            if control is not None:
                control.observe(self._on_option, "value")
                self.option_controls[option.name] = control
        self.options_box.children = list(self.option_controls.values())
        self.layer.layout.display = None if self._methods[method].needs_layer else "none"

    def _refresh_targets(self) -> None:
        probabilities = self.session.predictions(self.state.request.image)
        entries = predictions_of(probabilities, self.model.classes)
        options = [(f"predicted: {entries[0][1]} ({entries[0][2]:.0%})", PREDICTED)]
        options += [(f"{name} ({p:.1%})", index) for index, name, p in entries]
        chosen = self.state.request.target
        if chosen is not None and chosen not in [i for i, _, _ in entries]:
            options.append((f"{self.model.classes[chosen]} ({float(probabilities[chosen]):.1%})", chosen))
        self._quiet = True  # the dropdown follows the state here; it must not drive it
        try:
            self.target.options = options
            self.target.value = chosen if chosen is not None else PREDICTED
        finally:
            self._quiet = False
        self.bars.value = _bars(entries, chosen if chosen is not None else entries[0][0])

    def _request(self) -> Request:
        options = tuple(sorted((name, control.value) for name, control in self.option_controls.items()))
        request = self.state.request
        return Request(request.image, request.method, request.layer, request.target, options)

    def _update(self, recompute: bool = True) -> None:
        """Compute (from the cache when it can) and draw; on error keep the last picture."""
        try:
            started = time.perf_counter()
            request = self._request()
            attribution = self.session.explanation(request)
            picture = self.session.picture(request.image)
            self.image.value = png(render(picture, attribution, self.state.display))
            panels = []
            others = [name for name in self.compare.value if name != request.method]
            for name in others[:MAX_COMPARED]:
                other = Request(request.image, name, self._layer_for(name, None), request.target)
                drawn = render(picture, self.session.explanation(other), self.state.display)
                panels.append(W.VBox([W.HTML(f"<b>{html.escape(self._methods[name].title)}</b>"),
                                      W.Image(value=png(drawn), format="png", layout=W.Layout(width="224px"))]))
            if len(others) > MAX_COMPARED:
                panels.append(W.HTML(f"<small>showing the first {MAX_COMPARED} of {len(others)} methods</small>"))
            self.compare_box.children = panels
            self.state.request = request
            self.state.seconds = time.perf_counter() - started
            self.state.error = ""
            self.error.value = ""
            self.status.value = f"<small>{self._methods[request.method].title}: {self.state.seconds * 1000:.0f} ms</small>"
            self.note.value = "".join(
                f'<div style="color:#8a5300;white-space:pre-wrap;max-width:480px">Note: {html.escape(text)}</div>'
                for text in self.session.notes(request)
            )
        except Exception as error:  # shown to the learner, never raised into the notebook
            self.state.error = str(error)
            self.error.value = _message(error)

    # -- callbacks: they change the state, then draw ----------------------------------------
    def _on_image(self, change: dict) -> None:
        self.state.request = Request(change["new"], self.state.request.method, self.state.request.layer, self.state.request.target)
        try:
            self._refresh_targets()
        except Exception as error:
            self.error.value = _message(error)
            return
        self._update()

    def _add_and_select(self, key: str, source: Any) -> None:
        try:
            self.session.add_image(key, source)
        except Exception as error:
            self.error.value = _message(error)
            return
        if key not in self.image_select.options:
            self.image_select.options = [*self.image_select.options, key]
        if self.image_select.value == key:  # same name, perhaps new pixels: show them
            self._on_image({"new": key})
        else:
            self.image_select.value = key

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = str(item["name"])
        if name in self._bundled:  # an upload called "chelsea" must not hide the bundled cat
            name = f"{name} (upload)"
        self._add_and_select(name, bytes(item["content"]))

    def _on_path(self, change: dict) -> None:
        path = change["new"].strip()
        if path:
            self._add_and_select(path, path)

    def _on_method(self, change: dict) -> None:
        method = change["new"]
        layer = self._layer_for(method, self.layer.value)
        self.state.request = Request(self.state.request.image, method, layer, self.state.request.target)
        self._build_options(method)
        self._update()

    def _on_layer(self, change: dict) -> None:
        request = self.state.request
        if self._methods[request.method].needs_layer:
            self.state.request = Request(request.image, request.method, change["new"], request.target, request.options)
            self._update()

    def _on_target(self, change: dict) -> None:
        if self._quiet:
            return
        request = self.state.request
        target = None if change["new"] == PREDICTED else change["new"]
        self.state.request = Request(request.image, request.method, request.layer, target, request.options)
        probabilities = self.session.predictions(request.image)
        entries = predictions_of(probabilities, self.model.classes)
        self.bars.value = _bars(entries, target if target is not None else entries[0][0])
        self._update()

    def _on_search(self, change: dict) -> None:
        text = change["new"].strip()
        if not text:
            return
        try:
            index = self.model.classes.resolve(text)
        except ValueError as error:
            self.error.value = _message(error)
            return
        request = self.state.request
        self.state.request = Request(request.image, request.method, request.layer, index, request.options)
        self._refresh_targets()
        self._update()

    def _on_option(self, change: dict) -> None:
        self._update()

    def _on_display(self, change: dict) -> None:
        self.state.display = Display(self.opacity.value, self.cmap.value, self.sign.value, self.scaling.value)
        self._update()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class ActivationBrowser:
    """The feature maps of one layer for one image: a channel at a time, the strongest
    channels as a grid, and a button to grow the image that excites the chosen channel."""

    def __init__(self, model: Any = None, images: Sequence[str] | None = None, *, top: int = 16) -> None:
        import vizwidgets as vw

        self.model = model if model is not None else vw.load_model()
        self.session = Session(self.model)
        names = list(images) if images is not None else _course_first([s.name for s in vw.sample_images()])
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
        from vizwidgets.features import activations

        image, layer = self.image_select.value, self.layer.value
        key = ("activations", self.session.digest(image), layer)  # by content, not by name
        return self.session.maps.get(key, lambda: activations(self.model, self.session.input(image), layer))

    def update(self, new_layer: bool = False) -> None:
        from vizwidgets.features import feature_grid

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
            self.caption.value = (f"<small>{self.layer.value}: {maps.shape[0]} channels of {maps.shape[1]}x{maps.shape[2]}; "
                                  f"channel {c} mean {float(maps[c].mean()):.3f}; top: {order[:8].tolist()}</small>")
            self.error.value = ""
        except Exception as error:
            self.error.value = _message(error)

    def run_maximisation(self) -> None:
        from vizwidgets.synthesis import Channel, maximize

        try:
            result = maximize(self.model, Channel(self.layer.value, self.channel.value), steps=self.steps.value, progress=False)
            self.synthesised.value = png((result.to_numpy() * 255).round().astype(np.uint8))
        except Exception as error:
            self.error.value = _message(error)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class _LoopWidget:
    """Run and Stop buttons, a progress bar and a live image around one optimisation loop.

    Subclasses give ``controls`` and ``_run(callback)``, which calls the plain function with
    the controls' values. ``run(background=False)`` runs in the caller's thread (tests,
    scripts); the Run button runs in a background thread so that Stop can be clicked.
    """

    every = 4  # redraw the image every few steps

    def __init__(self, model: Any, controls: list[W.Widget], steps: W.IntSlider) -> None:
        import vizwidgets as vw

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
            self.error.value = _message(error)
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
        from IPython.display import display

        display(self.widget)


class MaximisationWidget(_LoopWidget):
    """Activation maximisation (:func:`vizwidgets.synthesis.maximize`) with controls."""

    def __init__(self, model: Any = None) -> None:
        import vizwidgets as vw

        model = model if model is not None else vw.load_model()
        layers = [info.name for info in vw.list_layers(model)]
        self.kind = W.ToggleButtons(options=["class", "channel", "neuron"], value="class")
        self.target = W.Combobox(value="goldfinch", options=list(model.classes), ensure_option=True, description="class")
        self.layer = W.Dropdown(options=layers, value=model.default_layer, description="layer")
        self.channel = W.BoundedIntText(value=0, min=0, max=4095, description="channel")
        steps = W.IntSlider(value=128, min=8, max=1024, step=8, description="steps", continuous_update=False)
        self.lr = W.FloatLogSlider(value=0.05, base=10, min=-3, max=0, description="lr", continuous_update=False)
        self.parametrization = W.Dropdown(options=["fourier", "pixels"], value="fourier", description="image as")
        self.seed = W.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
        super().__init__(model, [self.kind, self.target, self.layer, self.channel, steps, self.lr, self.parametrization, self.seed], steps)

    def _run(self, callback: Callable[..., Any]) -> Any:
        from vizwidgets.synthesis import Channel, ClassLogit, Neuron, maximize

        if self.kind.value == "class":
            objective: Any = ClassLogit(self.target.value)
        elif self.kind.value == "channel":
            objective = Channel(self.layer.value, self.channel.value)
        else:
            objective = Neuron(self.layer.value, self.channel.value)
        return maximize(self.model, objective, steps=self.steps.value, lr=self.lr.value,
                        parametrization=self.parametrization.value, seed=self.seed.value, progress=False, callback=callback)


class FoolingWidget(_LoopWidget):
    """A targeted attack (:func:`vizwidgets.synthesis.fool`) on a bundled image."""

    every = 1

    def __init__(self, model: Any = None) -> None:
        import vizwidgets as vw

        model = model if model is not None else vw.load_model()
        names = [s.name for s in vw.sample_images()]
        self.source = W.Dropdown(options=names, value="chelsea", description="image")
        self.target = W.Combobox(value="goldfinch", options=list(model.classes), ensure_option=True, description="turn into")
        self.confidence = W.FloatSlider(value=0.9, min=0.5, max=0.99, step=0.01, description="confidence", continuous_update=False)
        self.epsilon = W.IntSlider(value=8, min=1, max=32, description="budget /255", continuous_update=False)
        steps = W.IntSlider(value=100, min=1, max=500, description="max steps", continuous_update=False)
        super().__init__(model, [self.source, self.target, self.confidence, self.epsilon, steps], steps)

    def _run(self, callback: Callable[..., Any]) -> Any:
        from vizwidgets.synthesis import fool

        return fool(self.model, self.source.value, self.target.value, confidence=self.confidence.value,
                    max_steps=self.steps.value, epsilon=self.epsilon.value / 255, progress=False, callback=callback)


class StyleTransferWidget(_LoopWidget):
    """Style transfer (:func:`vizwidgets.synthesis.style_transfer`) between bundled images."""

    every = 5

    def __init__(self, model: Any = None) -> None:
        import vizwidgets as vw

        model = model if model is not None else vw.load_model()
        names = [s.name for s in vw.sample_images()]
        self.content = W.Dropdown(options=names, value="chelsea", description="content")
        self.style = W.Dropdown(options=names, value="starry_night", description="style")
        self.style_weight = W.FloatLogSlider(value=1e3, base=10, min=0, max=6, description="style weight", continuous_update=False)
        self.optimizer = W.Dropdown(options=["adam", "lbfgs"], value="adam", description="optimiser")
        steps = W.IntSlider(value=200, min=10, max=1000, step=10, description="steps", continuous_update=False)
        super().__init__(model, [self.content, self.style, self.style_weight, self.optimizer, steps], steps)

    def _run(self, callback: Callable[..., Any]) -> Any:
        from vizwidgets.synthesis import style_transfer

        return style_transfer(self.model, self.content.value, self.style.value, steps=self.steps.value,
                              style_weight=self.style_weight.value, optimizer=self.optimizer.value,
                              progress=False, callback=callback)
