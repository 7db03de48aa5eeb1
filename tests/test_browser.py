"""The front ends in a real browser (Debian's chromium driven by Playwright, servers on
127.0.0.1 only, stopped after each test):

- Voila serves the Explorer; changing the method changes the heatmap; toggle buttons show
  their whole labels;
- JupyterLab, started by ``python -m vizwidgets course``, saves a notebook's widget state, so
  the notebook reopened after its kernel is gone shows its widget, not "model not found".

Needs the ``chromium`` package (``apt-get install chromium``; Playwright's own browser
download does not work offline) and the test extras (voila, playwright). Without them the
test is skipped, unless ``VIZWIDGETS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes it fail.
The screenshots go to ``$VIZWIDGETS_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from _servers import free_port, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("VIZWIDGETS_REQUIRE_BROWSER") == "1"

IMAGE = ".widget-image img, img.widget-image"
CANVAS_DATA = """img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    return canvas.toDataURL();
}"""


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


@pytest.fixture()
def voila_url(tmp_path):
    _require_browser()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "from vizwidgets.widgets import Explorer\nexplorer = Explorer(images=['chelsea'])\nexplorer.widget"
    )]
    nbformat.write(notebook, tmp_path / "explorer.ipynb")
    port = free_port()
    command = [
        sys.executable, "-m", "voila", "explorer.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"
    ]
    url = f"http://127.0.0.1:{port}/"
    with running(command, url, tmp_path / "voila.log", cwd=tmp_path):
        yield url


def test_explorer_in_chromium_changes_the_heatmap_with_the_method(voila_url, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("VIZWIDGETS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(voila_url, timeout=120_000)
            image = page.wait_for_selector(IMAGE, timeout=120_000)
            page.wait_for_function(
                f"() => {{ const i = document.querySelector('{IMAGE}'); return i && i.naturalWidth > 0; }}",
                timeout=60_000,
            )
            before = image.evaluate(CANVAS_DATA)
            page.screenshot(path=str(shots / "explorer-grad_cam.png"))
            # every toggle button shows its whole label ("absolute", not "absol...")
            buttons = page.locator(".widget-toggle-buttons button")
            assert buttons.count() >= 4
            page.locator(".widget-toggle-buttons").first.screenshot(path=str(shots / "explorer-sign.png"))
            clipped = ("bs => bs.filter(b => b.scrollWidth > b.clientWidth + 1 || b.getBoundingClientRect().right >"
                       " document.documentElement.clientWidth).map(b => b.innerText)")
            assert buttons.evaluate_all(clipped) == [], "toggle buttons cut their labels off"
            # also with a larger font (JupyterLab's "Increase UI Font Size", another theme's font)
            page.add_style_tag(content=".widget-toggle-buttons button { font-size: 16px !important; }")
            page.locator(".widget-toggle-buttons").first.screenshot(path=str(shots / "explorer-sign-16px.png"))
            assert buttons.evaluate_all(clipped) == [], "at 16 px the toggle buttons cut their labels off"
            methods = page.locator("select").nth(1)
            methods.select_option(label="gradient:\xa0Gradient\xa0(saliency)")
            page.wait_for_function(
                f"before => {{ const i = document.querySelector('{IMAGE}');"
                " if (!i || !i.complete || !i.naturalWidth) return false;"
                f" const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;"
                f" c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL() !== before; }}",
                arg=before, timeout=60_000,
            )
            after = page.locator(IMAGE).first.evaluate(CANVAS_DATA)
            page.screenshot(path=str(shots / "explorer-gradient.png"))
            text = page.inner_text("body")
            assert after != before
            assert "Gradient (saliency):" in text.replace("\xa0", " ")  # the timing line names the method
            assert "Error" not in text and "Traceback" not in text
            assert "predicted: Egyptian cat" in text.replace("\xa0", " ")
            assert methods.is_visible() and page.locator("select").first.is_visible()  # controls stay
        finally:
            browser.close()
    assert (shots / "explorer-gradient.png").stat().st_size > 10_000


# --- JupyterLab: a notebook saved with widgets reopens with them ------------------------------


@pytest.fixture()
def course_server(tmp_path):
    """``python -m vizwidgets course`` on 127.0.0.1 (JupyterLab), with a token; stopped after."""
    _require_browser()
    folder = tmp_path / "my-course"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "import ipywidgets as W\nW.IntSlider(value=7, max=10, description='seven')"
    )]
    nbformat.write(notebook, folder / "widget.ipynb")
    port, token = free_port(), "browser-test-token"
    command = [sys.executable, "-m", "vizwidgets", "course", str(folder), "--", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/api/status?token={token}", tmp_path / "jupyter.log", env=env):
        yield base, token, folder


def test_jupyterlab_reopens_a_saved_notebook_with_its_widgets(course_server, tmp_path) -> None:
    """Run a widget cell, save, stop the kernel, reload: the widget shows, not "model not found"."""
    import json

    from playwright.sync_api import sync_playwright

    base, token, folder = course_server
    shots = Path(os.environ.get("VIZWIDGETS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    saved = folder / "widget.ipynb"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"{base}/lab/tree/widget.ipynb?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
            deadline = time.monotonic() + 120  # the notebook's kernel is up and connected
            kernels: list = []
            while True:
                try:  # while a kernel starts, listing the kernels can fail for a moment (HTTP 500)
                    with urllib.request.urlopen(f"{base}/api/kernels?token={token}") as response:
                        kernels = json.loads(response.read())
                except OSError:
                    kernels = []
                if any(k["connections"] > 0 and k["execution_state"] == "idle" for k in kernels):
                    break
                assert time.monotonic() < deadline, f"no kernel became ready: {kernels}"
                time.sleep(0.5)
            page.wait_for_timeout(1000)
            page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
            page.keyboard.press("Shift+Enter")
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
        finally:
            browser.close()
