"""The explorer's "Measure" panel: how faithful is the map on screen?

Three numbers for the map of one :class:`~vizwidgets.widgets.state.Request`, for the class it
explains, all from :mod:`vizwidgets.metrics`:

- the deletion and insertion curves and their areas (Petsiuk, Das & Saenko 2018, "RISE:
  Randomized Input Sampling for Explanation of Black-box Models", BMVC): delete (or put back)
  pixels in the order the map ranks them, most important first, and follow the class
  probability. Deletion area: lower is better; insertion area: higher is better;
- the average drop in confidence (Chattopadhay, Sarkar, Howlader & Balasubramanian 2018,
  "Grad-CAM++", WACV): ``100 mean(max(0, Y - O) / Y)``, ``Y`` the class probability for the
  image and ``O`` for the image multiplied by the map scaled to [0, 1]; lower is better.

:func:`measure` computes them (once per request and number of steps: the results are kept in
the session, see :func:`results_of`); :func:`plot_curves` draws both curves as a PNG;
:class:`MeasurePanel` is the widget: a Measure button, a steps slider, a progress bar, the
plot and the numbers. It never computes by itself: :meth:`MeasurePanel.show` only shows what
is already known, :meth:`MeasurePanel.run` (the button) measures.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import torch
from IPython.display import display
from torch import Tensor

from vizwidgets.attribution.base import upsample
from vizwidgets.metrics import Curve, confidence_drop, deletion, insertion
from vizwidgets.viz import reduce_channels
from vizwidgets.widgets.compute import LRUCache, Session
from vizwidgets.widgets.controls import message
from vizwidgets.widgets.state import Request

__all__ = ["Faithfulness", "FaithfulnessCache", "results_of", "measure", "plot_curves", "summary", "MeasurePanel",
           "DELETION_COLOUR", "INSERTION_COLOUR"]

#: The curves' colours in :func:`plot_curves` (matplotlib's tab:red and tab:blue).
DELETION_COLOUR = "#d62728"
INSERTION_COLOUR = "#1f77b4"

Progress = Callable[[int, int], None]


@dataclass
class Faithfulness:
    """The faithfulness of one map, for one class (see the module's docstring for the papers).

    Attributes
    ----------
    deletion, insertion:
        the :class:`~vizwidgets.metrics.Curve` s, ``scores`` ``(1, steps + 1)``: the class
        probability at each share of pixels deleted (inserted).
    deletion_auc, insertion_auc:
        the areas under the curves, in [0, 1] (deletion: lower is better; insertion: higher).
    average_drop:
        the average drop in confidence, in percent (lower is better).
    steps:
        points per curve minus one.
    seconds:
        how long the measurement took (wall clock).
    target, target_class:
        the class measured: the one the map explains.
    """

    deletion: Curve
    insertion: Curve
    deletion_auc: float
    insertion_auc: float
    average_drop: float
    steps: int
    seconds: float
    target: int
    target_class: str


class FaithfulnessCache(LRUCache):
    """An :class:`~vizwidgets.widgets.compute.LRUCache` that can also be asked, without
    computing, whether it holds a key (:meth:`peek`)."""

    def peek(self, key: Hashable) -> Any | None:
        """The value for ``key``, or None; counts neither a hit nor a miss."""
        return self._items.get(key)


def results_of(session: Session) -> FaithfulnessCache:
    """The session's measurements, ``session.faithfulness`` (created on first use)."""
    cache = getattr(session, "faithfulness", None)
    if not isinstance(cache, FaithfulnessCache):
        cache = FaithfulnessCache(session.maps.size)
        session.faithfulness = cache  # type: ignore[attr-defined]
    return cache


def _key(session: Session, request: Request, steps: int) -> Hashable:
    """What a measurement depends on: the model, the image's pixels (not its name), the map's
    request and the steps. Raises a readable ValueError for an unknown image."""
    return (session.adapter.name, session.digest(request.image), request.method, request.layer,
            request.target, request.options, steps)


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return steps


def _at_input_size(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """The map as the metrics need it: at the input's size. A map computed smaller (a CAM with
    ``upsample=False``) is resized bilinearly, as the explorer draws it."""
    if tuple(raw.shape[-2:]) == size:
        return raw
    return upsample(reduce_channels(raw, "sum"), size)


def measure(session: Session, request: Request, *, steps: int = 20, progress: Progress | None = None) -> Faithfulness:
    """Deletion and insertion curves (Petsiuk et al. 2018) and average drop (Chattopadhay et al.
    2018) of ``request``'s map on its image, for the class the map explains.

    ``steps``: points per curve minus one, as :func:`vizwidgets.metrics.deletion`
    (deletion fills with the preprocessing's mean colour, insertion starts from a blurred copy,
    the average drop multiplies the image by the map over black: the metrics' defaults, the same
    as :func:`vizwidgets.explain.explain` reports). ``progress(done, total)`` is called after each
    forward pass of the curves, ``total = 2 (steps + 1)`` images for both curves together; the
    average drop (one forward pass of two images) is measured first.

    The result is kept in the session (:func:`results_of`): measuring the same map with the same
    steps again returns it at once, with no model call. The map itself comes from
    :meth:`Session.explained <vizwidgets.widgets.compute.Session.explained>` (its cache when the
    explorer has drawn it).
    """
    if not isinstance(session, Session):
        raise TypeError(f"session must be a vizwidgets.widgets.compute.Session, got {type(session).__name__}")
    if not isinstance(request, Request):
        raise TypeError(f"request must be a vizwidgets.widgets.state.Request, got {type(request).__name__}")
    steps = _check_steps(steps)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (done, total) or None, got {type(progress).__name__}")
    key = _key(session, request, steps)

    def make() -> Faithfulness:
        start = time.perf_counter()
        explanation = session.explained(request)
        x = session.input(request.image)
        maps = _at_input_size(explanation.results[request.method].map, (x.shape[-2], x.shape[-1]))
        target = torch.tensor([explanation.target])
        rows = steps + 1
        total = 2 * rows
        drop = confidence_drop(session.adapter, x, maps, target)

        def first(done: int, _: int) -> None:
            if progress is not None:
                progress(done, total)

        def second(done: int, _: int) -> None:
            if progress is not None:
                progress(rows + done, total)

        deleted = deletion(session.adapter, x, maps, target, steps=steps, progress=first)
        inserted = insertion(session.adapter, x, maps, target, steps=steps, progress=second)
        return Faithfulness(
            deletion=deleted,
            insertion=inserted,
            deletion_auc=float(deleted.auc[0]),
            insertion_auc=float(inserted.auc[0]),
            average_drop=drop.average_drop,
            steps=steps,
            seconds=time.perf_counter() - start,
            target=explanation.target,
            target_class=explanation.target_class,
        )

    result: Faithfulness = results_of(session).get(key, make)
    return result


def plot_curves(result: Faithfulness, *, width: int = 360, height: int = 220) -> bytes:
    """Both curves of ``result`` as PNG bytes, ``width x height`` pixels.

    x: the share of pixels deleted (inserted), y: the class probability; the legend gives each
    curve's area. Drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot,
    so no figure is left open and no notebook output appears.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for curve, auc, colour, label in [
        (result.deletion, result.deletion_auc, DELETION_COLOUR, "deletion"),
        (result.insertion, result.insertion_auc, INSERTION_COLOUR, "insertion"),
    ]:
        axes.plot(curve.fractions.numpy(), curve.scores[0].detach().cpu().numpy(), color=colour, linewidth=2,
                  label=f"{label} (AUC {auc:.3f})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("share of pixels deleted / inserted", fontsize=8)
    axes.set_ylabel(f"p({result.target_class[:18]})", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout(pad=0.4)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def summary(result: Faithfulness) -> str:
    """The panel's numbers, as HTML: the three measures, then class, steps and time."""
    main = (f"deletion AUC {result.deletion_auc:.3f} (lower is better) · insertion AUC "
            f"{result.insertion_auc:.3f} (higher is better) · average drop {result.average_drop:.1f} %")
    detail = (f"class {html.escape(result.target_class)} ({result.target}) · {result.steps} steps · "
              f"{result.seconds:.1f} s")
    return f"<div>{main}</div><div style='color:#666'><small>{detail}</small></div>"


class MeasurePanel:
    """The explorer's Measure panel: faithfulness of the map on screen, next to it.

    ``MeasurePanel(session)``; ``panel.widget`` is the VBox to place. The explorer calls
    :meth:`show` whenever the map on screen changes; the Measure button calls :meth:`run`.
    Results are :func:`measure`'s, kept in the session, so a map measured once shows its
    numbers again as soon as it is back on screen.
    """

    def __init__(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"session must be a vizwidgets.widgets.compute.Session, got {type(session).__name__}")
        self.session = session
        self.request: Request | None = None
        self.result: Faithfulness | None = None  # what the plot and numbers show now
        self.button = W.Button(description="Measure", icon="tachometer",
                               tooltip="deletion and insertion curves and average drop for this map")
        self.steps = W.IntSlider(value=20, min=10, max=100, step=5, description="steps", continuous_update=False)
        self.progress = W.IntProgress(min=0, max=1, value=0, description="")
        self.plot = W.Image(format="png", layout=W.Layout(width="360px"))
        self.numbers = W.HTML()
        self.error = W.HTML()
        self.button.on_click(lambda _: self.run())
        self.steps.observe(lambda _: self._refresh(), names="value")
        self.widget = W.VBox([W.HTML("<b>faithfulness</b>"), W.HBox([self.button, self.steps]), self.progress,
                              self.plot, self.numbers, self.error])
        self._clear()

    def _cached(self, request: Request) -> Faithfulness | None:
        try:
            key = _key(self.session, request, self.steps.value)
        except Exception:  # an image the session no longer knows or can read: nothing measured for it
            return None
        found: Faithfulness | None = results_of(self.session).peek(key)
        return found

    def _display(self, result: Faithfulness) -> None:
        if result is not self.result or not self.plot.value:  # the same map redrawn: keep its plot
            self.plot.value = plot_curves(result)
        self.result = result
        self.numbers.value = summary(result)
        self.progress.max = 2 * (result.steps + 1)
        self.progress.value = self.progress.max

    def _clear(self) -> None:
        self.result = None
        self.plot.value = b""
        self.progress.value = 0
        self.numbers.value = "<span style='color:#666'>press Measure for deletion, insertion and average drop</span>"

    def _refresh(self) -> None:
        if self.request is not None:
            self.show(self.request)

    def show(self, request: Request) -> None:
        """Show ``request``'s measurement if it is known (for the slider's steps), else clear the
        plot and ask for Measure. Never computes."""
        self.request = request
        self.error.value = ""
        found = self._cached(request)
        if found is not None:
            self._display(found)
        else:
            self._clear()

    def run(self) -> Faithfulness | None:
        """Measure the request shown (the button): the progress bar moves, then the plot and
        numbers show the result, which is also returned. On an error, a message shows and the
        previous plot and numbers stay; None is returned."""
        if self.request is None:
            self.error.value = message(ValueError("no map to measure yet: show a request first"))
            return None
        steps = self.steps.value
        self.progress.max = 2 * (steps + 1)
        self.progress.value = 0
        self.button.disabled = True

        def moved(done: int, total: int) -> None:
            self.progress.max = total
            self.progress.value = done

        try:
            result = measure(self.session, self.request, steps=steps, progress=moved)
        except Exception as error:
            self.error.value = message(error)
            if self.result is not None:  # the bar goes back with the result that stays
                self.progress.max = 2 * (self.result.steps + 1)
                self.progress.value = self.progress.max
            else:
                self.progress.value = 0
            return None
        finally:
            self.button.disabled = False
        self.error.value = ""
        self._display(result)
        return result

    def _ipython_display_(self) -> None:
        display(self.widget)
