"""The Explorer in a real browser: Voila serves a notebook on 127.0.0.1, Debian's chromium,
driven by Playwright, changes the method and sees the heatmap change.

Needs the ``chromium`` package (``apt-get install chromium``; Playwright's own browser
download does not work offline) and the test extras (voila, playwright). Without them the
test is skipped, unless ``VIZWIDGETS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes it fail.
The screenshots go to ``$VIZWIDGETS_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def voila_url(tmp_path):
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser test is required here but {problem}")
        pytest.skip(problem)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "from vizwidgets.widgets import Explorer\nexplorer = Explorer(images=['chelsea'])\nexplorer.widget"
    )]
    nbformat.write(notebook, tmp_path / "explorer.ipynb")
    port = _free_port()
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", "explorer.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("voila did not start: " + (tmp_path / "voila.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


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
            page.wait_for_function(f"() => {{ const i = document.querySelector('{IMAGE}'); return i && i.naturalWidth > 0; }}",
                                   timeout=60_000)
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
                f"before => {{ const i = document.querySelector('{IMAGE}'); if (!i || !i.complete || !i.naturalWidth) return false;"
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
