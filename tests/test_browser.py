"""The front ends in a real browser (Debian's chromium driven by Playwright, servers on
127.0.0.1 only, stopped after each test):

- the web app (``python -m vizwidgets app``, Voila): no code on the page, the model named; an
  upload that is not an image, is empty or is over the limit shows a message and changes
  nothing; a PNG through the file chooser changes the prediction; Measure draws the curves;
  toggle buttons show their whole labels. Its screenshot is the README's
  (``VIZWIDGETS_UPDATE_DOCS=1`` writes it there);
- the Explorer in a notebook in JupyterLab 4 and in Notebook 7 (``python -m vizwidgets
  course --app lab|notebook``): the method changes the pixels, pointing shows the kernel's
  value, a dragged box shows the kernel's share, and the page's pixels are the kernel's picture;
- JupyterLab saves a notebook's widget state, so the notebook reopened after its kernel is
  gone shows its widget, not "model not found".

Needs the ``chromium`` package (``apt-get install chromium``; Playwright's own browser
download does not work offline) and the test extras (voila, playwright). Without them the
tests are skipped, unless ``VIZWIDGETS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes them fail.
Screenshots go to ``$VIZWIDGETS_SCREENSHOTS`` (default: the test's temporary folder); a failing
test saves ``failed-<name>.png`` there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from PIL import Image

from vizwidgets.data import sample_image_path

from _servers import free_port, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("VIZWIDGETS_REQUIRE_BROWSER") == "1"

MAP = "canvas.vizwidgets-map"
#: The text chunk that marks the README's screenshot as this test's (tests/test_project.py reads it).
SCREENSHOT_SOURCE = "tests/test_browser.py::test_the_app_takes_an_upload_measures_the_map_and_refuses_bad_files"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]
# the map view's pixels, as the page shows them (RGBA, row by row)
PIXELS = "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
# resolves when the map view has drawn a map newer than `version`
DRAWN_AFTER = """version => { const c = document.querySelector('canvas.vizwidgets-map');
    return c && Number(c.dataset.version || 0) > version; }"""


def _version(page) -> int:
    return int(page.locator(MAP).first.get_attribute("data-version") or 0)


def _missing() -> str | None:
    if CHROMIUM is None:
        return "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
        import voila  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install -e '.[test]')"
    return None


def _require_browser() -> None:
    """Skip without chromium and the test extras, or fail where ``.ci/run`` requires them."""
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser test is required here but {problem}")
        pytest.skip(problem)


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("VIZWIDGETS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@contextlib.contextmanager
def _browser(shots: Path, name: str, height: int = 1000) -> Iterator[Any]:
    """A chromium page; when the test fails inside, its screenshot is saved as ``failed-<name>.png``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": height})
        try:
            yield page
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shots / f"failed-{name}.png"), full_page=True)
            raise
        finally:
            browser.close()


def _rgb(page) -> np.ndarray:
    """The map view's pixels as ``(H, W, 3)`` uint8."""
    canvas = page.locator(MAP).first
    width, height = canvas.evaluate("c => [c.width, c.height]")
    data = np.array(canvas.evaluate(PIXELS), dtype=np.uint8).reshape(height, width, 4)
    return data[..., :3]


def _choose_method(page, scope: str, label: str) -> None:
    page.locator(f"{scope} select").nth(1).select_option(label=label.replace(" ", "\xa0"))


# --- the web app: upload, Measure, bad files -----------------------------------------------------


@pytest.fixture()
def app_url():
    _require_browser()
    from vizwidgets.app import serve

    with serve(port=0) as url:  # 127.0.0.1; Voila, its kernel and its folder are gone afterwards
        yield url


def _upload(page, name: str, content: bytes) -> None:
    """Click the upload button and give the file chooser that opens one file."""
    with page.expect_file_chooser(timeout=30_000) as chooser:
        page.locator(".widget-upload").first.click()
    chooser.value.set_files(files=[{"name": name, "mimeType": "image/png", "buffer": content}])


def test_the_app_takes_an_upload_measures_the_map_and_refuses_bad_files(app_url, tmp_path) -> None:
    """The page: no code, the model named; bad uploads leave everything as it was; a PNG through
    the file chooser changes the prediction; Measure draws the curves; the README's screenshot."""
    shots = _shots(tmp_path)
    rocket = io.BytesIO()
    Image.open(sample_image_path("rocket")).save(rocket, format="PNG")
    big = os.urandom(8_100_000)  # over the app's 8 MB: refused before anything is decoded
    with _browser(shots, "app", height=1250) as page:
        page.goto(app_url, timeout=120_000)
        page.wait_for_function(DRAWN_AFTER, arg=0, timeout=180_000)
        text = page.inner_text("body").replace("\xa0", " ")
        assert "Model: efficientnet_lite0" in text and "predicted: Egyptian cat" in text
        assert "from vizwidgets" not in page.content()  # no code on the page
        # every toggle button shows its whole label ("absolute", not "absol..."), also at 16 px
        buttons = page.locator(".widget-toggle-buttons button")
        assert buttons.count() >= 7
        clipped = ("bs => bs.filter(b => b.scrollWidth > b.clientWidth + 1 || b.getBoundingClientRect().right >"
                   " document.documentElement.clientWidth).map(b => b.innerText)")
        assert buttons.evaluate_all(clipped) == [], "toggle buttons cut their labels off"
        page.add_style_tag(content=".widget-toggle-buttons button { font-size: 16px !important; }")
        assert buttons.evaluate_all(clipped) == [], "at 16 px the toggle buttons cut their labels off"
        page.add_style_tag(content=".widget-toggle-buttons button { font-size: inherit !important; }")

        before, version = _rgb(page), _version(page)
        chosen = page.locator("select").first.input_value()
        for name, content, words in [
            ("notes.png", b"these are words, not pixels", "could not be read as an image"),
            ("empty.png", b"", "empty.png is empty (0 bytes)"),
            ("big.png", big, "big.png is 8.1 MB, over the limit of 8.0 MB"),
        ]:
            _upload(page, name, content)
            page.get_by_text(words).first.wait_for(timeout=30_000)
            page.wait_for_timeout(300)  # nothing else may follow the message
            assert _version(page) == version and np.array_equal(_rgb(page), before), name
            assert page.locator("select").first.input_value() == chosen
            assert "predicted: Egyptian cat" in page.inner_text("body").replace("\xa0", " ")
        page.screenshot(path=str(shots / "app-refused.png"))

        _upload(page, "rocket.png", rocket.getvalue())
        page.wait_for_function(DRAWN_AFTER, arg=version, timeout=60_000)
        text = page.inner_text("body").replace("\xa0", " ")
        assert "predicted: Egyptian cat" not in text and "predicted: " in text
        assert "rocket.png" in page.locator("select").first.inner_text()
        assert not np.array_equal(_rgb(page), before)

        page.get_by_role("button", name="Measure").click()
        page.get_by_text("deletion AUC").first.wait_for(timeout=120_000)
        plot = page.locator(".vizwidgets-measure img").first
        page.wait_for_function("i => i.complete && i.naturalWidth > 100", arg=plot.element_handle(), timeout=30_000)
        assert "Error" not in page.inner_text("body")
        page.screenshot(path=str(shots / "app.png"), full_page=True)
    keep_for_readme(shots / "app.png")


def keep_for_readme(shot: Path) -> None:
    """``VIZWIDGETS_UPDATE_DOCS=1``: this screenshot becomes the README's, marked with the test
    that took it (a PNG text chunk that ``tests/test_project.py`` checks)."""
    if os.environ.get("VIZWIDGETS_UPDATE_DOCS") != "1":
        return
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Source", SCREENSHOT_SOURCE)
    target = Path(__file__).resolve().parent.parent / "docs" / "images" / "app.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".png.part")
    Image.open(shot).save(partial, format="PNG", pnginfo=info, optimize=True)
    partial.replace(target)


# --- JupyterLab 4 and Notebook 7: the Explorer in a notebook -------------------------------------

EXPLORER_CELLS = [
    "from vizwidgets.widgets import Explorer\nexplorer = Explorer(images=['chelsea'])\nexplorer",
    # what the kernel holds after the clicks, for the test to compare with what the page showed
    "import json\nimport numpy as np\nfrom vizwidgets.viz import reduce_channels\n"
    "np.save('shown.npy', explorer.view.rendered())\n"
    "np.save('values.npy', reduce_channels(explorer.session.explanation(explorer.state.request))[0, 0].numpy())\n"
    "stats = explorer.view.box_stats()\n"
    "with open('box.json.part', 'w') as f:\n"
    "    json.dump({'box': explorer.view.box, 'share': stats.share, 'hit': stats.hit}, f)\n"
    "import os; os.replace('box.json.part', 'box.json')",
]


def _jupyter(tmp_path: Path, app: str, name: str, cells: list[str]) -> Iterator[tuple[str, str, Path]]:
    """``python -m vizwidgets course --app APP`` on 127.0.0.1 with a token, serving a notebook
    ``name`` of ``cells`` among the course's; stopped after."""
    _require_browser()
    folder = tmp_path / "my-course"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, folder / name)
    port, token = free_port(), "browser-test-token"
    command = [sys.executable, "-m", "vizwidgets", "course", str(folder), "--app", app, "--", "--no-browser",
               f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}"]
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/api/status?token={token}", tmp_path / "jupyter.log", env=env):
        yield base, token, folder


@pytest.fixture(params=["lab", "notebook"])
def explorer_notebook(request, tmp_path):
    yield from _jupyter(tmp_path, request.param, "explorer.ipynb", EXPLORER_CELLS)


def _wait_for_kernel(base: str, token: str) -> None:
    deadline = time.monotonic() + 120  # the notebook's kernel is up and connected
    kernels: list = []
    while True:
        try:  # while a kernel starts, listing the kernels can fail for a moment (HTTP 500)
            with urllib.request.urlopen(f"{base}/api/kernels?token={token}") as response:
                kernels = json.loads(response.read())
        except OSError:
            kernels = []
        if any(k["connections"] > 0 and k["execution_state"] == "idle" for k in kernels):
            return
        assert time.monotonic() < deadline, f"no kernel became ready: {kernels}"
        time.sleep(0.5)


def _run_cell(page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell .cm-content").nth(index).click()
    page.keyboard.press("Shift+Enter")


def test_the_explorer_in_jupyterlab_and_notebook_7(explorer_notebook, tmp_path, request) -> None:
    """Run the Explorer's cell; switch the method (the pixels change); point at the map (its
    value, as the kernel has it); drag a box (its share, as the kernel computes it); and the
    page's pixels are the kernel's picture, to within rounding."""
    base, token, folder = explorer_notebook
    app = request.node.callspec.params["explorer_notebook"]
    shots = _shots(tmp_path)
    path = "lab/tree/explorer.ipynb" if app == "lab" else "notebooks/explorer.ipynb"
    with _browser(shots, f"explorer-{app}") as page:
        page.goto(f"{base}/{path}?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
        _wait_for_kernel(base, token)
        page.wait_for_timeout(1000)
        _run_cell(page, 0)
        page.wait_for_function(DRAWN_AFTER, arg=0, timeout=180_000)
        page.wait_for_timeout(300)
        before, version = _rgb(page), _version(page)
        assert before.shape == (224, 224, 3) and before.std() > 10
        _choose_method(page, ".jp-OutputArea", "gradient: Gradient (saliency)")
        page.wait_for_function(DRAWN_AFTER, arg=version, timeout=60_000)
        page.wait_for_timeout(300)
        after = _rgb(page)
        assert not np.array_equal(after, before)
        assert "Gradient (saliency):" in page.inner_text(".jp-OutputArea").replace("\xa0", " ")

        canvas = page.locator(MAP).first
        box = canvas.bounding_box()
        scale = box["width"] / 224
        page.mouse.move(box["x"] + 150.5 * scale, box["y"] + 90.5 * scale)
        readout = page.locator(".vizwidgets-readout").first
        assert readout.get_attribute("data-x") == "150" and readout.get_attribute("data-y") == "90"
        assert "value" in readout.inner_text() and "Egyptian cat" in readout.inner_text()
        shown_value = float(readout.get_attribute("data-value"))
        page.mouse.move(box["x"] + 60.5 * scale, box["y"] + 40.5 * scale)
        page.mouse.down()
        page.mouse.move(box["x"] + 189.5 * scale, box["y"] + 169.5 * scale, steps=8)
        page.mouse.up()
        line = page.locator(".vizwidgets-box").first
        page.wait_for_function("e => e.textContent.includes('energy')", arg=line.element_handle())
        words = line.inner_text()
        page.screenshot(path=str(shots / f"explorer-{app}.png"))

        _run_cell(page, 1)
        result = folder / "box.json"
        deadline = time.monotonic() + 60
        while not result.exists():
            assert time.monotonic() < deadline, "the second cell did not run"
            time.sleep(0.25)
    kernel = json.loads(result.read_text())
    left, top, right, bottom = kernel["box"]
    # the pixels pressed and released, both inside (a browser rounds the pointer to whole screen pixels)
    assert np.abs(np.array(kernel["box"]) - [60, 40, 190, 170]).max() <= 1, kernel["box"]
    share = f"{100 * kernel['share']:.1f}%"
    assert words.startswith(f"box ({left}, {top})-({right}, {bottom}): {share} of the map's energy"), words
    assert ("inside (a hit)" in words) == kernel["hit"]
    values = np.load(folder / "values.npy")
    assert shown_value == pytest.approx(float(values[90, 150]), rel=1e-6, abs=1e-12)
    shown = np.load(folder / "shown.npy")  # vizwidgets.viz.render's picture of the same map
    assert np.abs(shown.astype(int) - after.astype(int)).max() <= 2


# --- JupyterLab: a notebook saved with widgets reopens with them ------------------------------


@pytest.fixture()
def course_server(tmp_path):
    yield from _jupyter(tmp_path, "lab", "widget.ipynb",
                        ["import ipywidgets as W\nW.IntSlider(value=7, max=10, description='seven')"])


def test_jupyterlab_reopens_a_saved_notebook_with_its_widgets(course_server, tmp_path) -> None:
    """Run a widget cell, save, stop the kernel, reload: the widget shows, not "model not found"."""
    base, token, folder = course_server
    shots = _shots(tmp_path)
    saved = folder / "widget.ipynb"
    with _browser(shots, "jupyterlab-reopened", height=800) as page:
        page.goto(f"{base}/lab/tree/widget.ipynb?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
        _wait_for_kernel(base, token)
        page.wait_for_timeout(1000)
        _run_cell(page, 0)
        page.wait_for_selector(".jp-OutputArea .widget-slider", timeout=60_000)
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        state: dict = {}
        while time.monotonic() < deadline and not state:
            metadata = json.loads(saved.read_text()).get("metadata", {})
            widgets = metadata.get("widgets", {})
            state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
            time.sleep(0.5)
        assert any(m.get("state", {}).get("description") == "seven" for m in state.values()), state
        # "later": the kernel is gone, and the notebook is opened again
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}") as response:
            kernels = json.loads(response.read())
        for kernel in kernels:
            request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(request).close()
        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-OutputArea-output", timeout=120_000)
        page.wait_for_timeout(3000)  # the widget manager restores (or fails to) meanwhile
        page.screenshot(path=str(shots / "jupyterlab-reopened.png"))
        text = page.inner_text(".jp-Notebook")
        assert "model not found" not in text
        assert page.locator(".jp-OutputArea .widget-slider").count() == 1
        assert "seven" in text
