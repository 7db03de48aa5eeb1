"""The Explorer: pick image, method, layer and class, and see what the model looks at.

Built once; callbacks change the :class:`~vizwidgets.widgets.state.ExplorerState` and redraw.
Every picture is :func:`vizwidgets.explain.explain`'s for the same request, drawn by
:func:`vizwidgets.viz.render` (the same as :func:`vizwidgets.widgets.explain_picture`). Errors
are shown in the widget as a message; the previous picture stays.
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ipywidgets as W
from IPython.display import display

import vizwidgets as vw
from vizwidgets.attribution import FAMILIES, METHODS
from vizwidgets.data.loading import MAX_PIXELS
from vizwidgets.widgets.compute import Session, png, predictions_of, render
from vizwidgets.widgets.controls import (
    COLORMAPS,
    MAX_COMPARED,
    MAX_UPLOAD_BYTES,
    PREDICTED,
    bars,
    course_first,
    message,
    option_control,
    upload_problem,
    wide,
)
from vizwidgets.widgets.mapview import MODES, MapView
from vizwidgets.widgets.measure import MeasurePanel
from vizwidgets.widgets.state import Display, ExplorerState, Request

__all__ = ["Explorer"]


class Explorer:
    """Pick an image, a method, a layer and a class, and see the explanation change.

    ``Explorer(model=None, images=None)``: ``model`` a :class:`~vizwidgets.models.LoadedModel`
    (default: the bundled EfficientNet-Lite0); ``images`` names, paths or PIL images (default:
    the bundled ones). Display it as the last expression of a cell, or with
    ``display(explorer.widget)``.

    The map is a :class:`~vizwidgets.widgets.mapview.MapView` (``explorer.view``): point at it
    for a pixel's value, drag a box to see the share of the map's energy inside. An upload over
    ``max_upload_bytes`` or ``max_pixels`` (width times height) is refused with a message, and
    the picture and choices on screen stay as they were. ``allow_paths=False`` hides the box that
    reads an image from a path on the server (the web app does this).
    """

    def __init__(self, model: Any = None, images: Sequence[Any] | None = None, *, method: str = "grad_cam",
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
                 allow_paths: bool = True) -> None:

        for name, value in (("max_upload_bytes", max_upload_bytes), ("max_pixels", max_pixels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self._methods = METHODS
        self.model = model if model is not None else vw.load_model()
        self.session = Session(self.model)
        self._bundled = {s.name for s in vw.sample_images()}
        if images is None:
            images = course_first([s.name for s in vw.sample_images()])
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
        self.image_select = W.Dropdown(options=keys, value=keys[0], description="image", layout=wide())
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.path = W.Text(placeholder="or a path to an image, then Enter", continuous_update=False, layout=wide())
        self.allow_paths = bool(allow_paths)
        if not self.allow_paths:  # a page served to others must not read this machine's files
            self.path.layout.display = "none"
        self.method = W.Dropdown(options=method_options, value=method, description="method", layout=wide())
        self.layer = W.Dropdown(options=self.layers, value=self.state.request.layer or self.layers[-1],
                                description="layer", layout=wide())
        self.target = W.Dropdown(description="class", layout=wide())
        self.search = W.Combobox(placeholder="search all classes, then Enter", options=list(self.model.classes),
                                 ensure_option=False, continuous_update=False, layout=wide())
        self.options_box = W.VBox()
        self.option_controls: dict[str, W.Widget] = {}
        self._quiet = False
        self.opacity = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity", style=style)
        self.cmap = W.Dropdown(options=COLORMAPS, value="jet", description="colours", style=style)
        self.scaling = W.Dropdown(options=["percentile", "max", "minmax"], value="percentile", description="scaling",
                                  style=style)
        self.sign = W.ToggleButtons(options=["absolute", "positive", "negative", "all"], value="absolute",
                                    style={"button_width": "auto"},
                                    tooltips=["|map|", "map > 0 only", "map < 0 only", "both signs, diverging colours"])
        self.compare = W.SelectMultiple(options=method_options, value=(), description="compare", rows=6, layout=wide())
        self.mode = W.ToggleButtons(options=list(MODES), value="overlay", style={"button_width": "auto"},
                                    tooltips=["the map over the picture", "the map alone", "picture and map"])
        self.view = MapView()
        self.measure = MeasurePanel(self.session)  # faithfulness of the map on screen, on request
        self.measure.widget.add_class("vizwidgets-measure")
        self.compare_box = W.HBox()
        self.bars = W.HTML()
        self.status = W.HTML()
        self.error = W.HTML()
        self.note = W.HTML()  # warnings about the map (all zero, say), with their reason
        self.widget = W.HBox(
            [
                W.VBox([self.image_select, self.upload, self.path, self.method, self.layer, self.target,
                        self.search, self.options_box, W.HTML("<b>display</b>"), self.opacity, self.cmap,
                        self.scaling, self.sign, self.mode, self.compare]),
                W.VBox([self.view, self.status, self.error, self.note, self.bars, self.measure.widget,
                        self.compare_box]),
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
        self.mode.observe(self._on_mode, "value")
        self.compare.observe(lambda change: self._draw_compared(), "value")
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
                control.observe(functools.partial(self._on_option, option.name), "value")
                self.option_controls[option.name] = control
        self.options_box.children = list(self.option_controls.values())
        self.layer.layout.display = None if self._methods[method].needs_layer else "none"
        # the state holds what the new controls show (the method's defaults)
        values = tuple(sorted((name, control.value) for name, control in self.option_controls.items()))
        self.state.request = replace(self.state.request, options=values)

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
        self.bars.value = bars(entries, chosen if chosen is not None else entries[0][0])

    def _update(self, recompute: bool = True) -> None:
        """Compute (from the cache when it can) and draw; on error keep the last picture."""
        try:
            started = time.perf_counter()
            request = self.state.request  # the one source of truth: controls only write it
            explained = self.session.explained(request)
            attribution = explained.results[request.method].map
            picture = self.session.picture(request.image)
            self.view.show(picture, attribution, self.state.display, label=explained.target_class)
            self.measure.show(request)
            self._draw_compared()
            self.state.seconds = time.perf_counter() - started
            self.state.error = ""
            self.error.value = ""
            title = self._methods[request.method].title
            self.status.value = f"<small>{title}: {self.state.seconds * 1000:.0f} ms</small>"
            self.note.value = "".join(
                f'<div style="color:#8a5300;white-space:pre-wrap;max-width:480px">Note: {html.escape(text)}</div>'
                for text in self.session.notes(request)
            )
        except Exception as error:  # shown to the learner, never raised into the notebook
            self.state.error = str(error)
            self.error.value = message(error)

    def _draw_compared(self) -> None:
        """The other methods chosen for comparison, drawn as the main map is."""
        try:
            request = self.state.request
            picture = self.session.picture(request.image)
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
        except Exception as error:  # shown to the learner, never raised into the notebook
            self.state.error = str(error)
            self.error.value = message(error)

    # -- callbacks: they change the state, then draw ----------------------------------------
    def _on_image(self, change: dict) -> None:
        self.state.request = replace(self.state.request, image=change["new"])
        try:
            self._refresh_targets()
        except Exception as error:
            self.error.value = message(error)
            return
        self._update()

    def _add_and_select(self, key: str, source: Any, max_pixels: int = MAX_PIXELS) -> None:
        try:
            self.session.add_image(key, source, max_pixels=max_pixels)
        except Exception as error:
            self.error.value = message(error)
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
        content = bytes(item["content"])
        self.upload.value = ()  # the same file chosen again is a new upload
        problem = upload_problem(name, content, self.max_upload_bytes)
        if problem:
            self.error.value = message(ValueError(problem))
            return
        if name in self._bundled:  # an upload called "chelsea" must not hide the bundled cat
            name = f"{name} (upload)"
        self._add_and_select(name, content, self.max_pixels)

    def _on_path(self, change: dict) -> None:
        path = change["new"].strip()
        if path and self.allow_paths:
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
            self.state.request = replace(request, layer=change["new"])
            self._update()

    def _on_target(self, change: dict) -> None:
        if self._quiet:
            return
        request = self.state.request
        target = None if change["new"] == PREDICTED else change["new"]
        self.state.request = replace(request, target=target)
        probabilities = self.session.predictions(request.image)
        entries = predictions_of(probabilities, self.model.classes)
        self.bars.value = bars(entries, target if target is not None else entries[0][0])
        self._update()

    def _on_search(self, change: dict) -> None:
        text = change["new"].strip()
        if not text:
            return
        try:
            index = self.model.classes.resolve(text)
        except ValueError as error:
            self.error.value = message(error)
            return
        request = self.state.request
        self.state.request = replace(request, target=index)
        self._refresh_targets()
        self._update()

    def _on_option(self, name: str, change: dict) -> None:
        self.state.request = self.state.request.with_options(**{name: change["new"]})
        self._update()

    def _on_display(self, change: dict) -> None:
        """Draw the same maps another way: no model call, and the main map restyled in the
        browser (opacity and colours) or sent again normalised (sign and scaling)."""
        self.state.display = Display(self.opacity.value, self.cmap.value, self.sign.value, self.scaling.value)
        try:
            self.view.set_display(self.state.display)
        except Exception as error:
            self.error.value = message(error)
            return
        if self.compare.value:
            self._draw_compared()

    def _on_mode(self, change: dict) -> None:
        self.view.mode = change["new"]

    def _ipython_display_(self) -> None:

        display(self.widget)
