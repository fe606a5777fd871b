"""lesson1 as a learner sees it: JupyterLab in a real headless Chromium runs the notebook on the synthetic
stand-in data (small parameters), and its plots show as images and its progress bars as widgets, not raw text.

Skipped with a one-line reason where Chromium cannot be had (see ``tests/browser.py``).
"""

import json
import os
import secrets
import subprocess
import sys
import urllib.request

import browser
import nbtools
import pytest

LESSON1 = {"size": 32, "weights": None, "epochs": 1, "batch_size": 8}


@pytest.fixture
def lab(tmp_path, _isolated_keras_home):
    """JupyterLab serving a folder that holds lesson1 with small parameters; yields ``(server url, token)``."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from dl1.data.sample import write_sample

    browser.ensure_chromium()
    data = tmp_path / "dogscats"
    write_sample(str(data), n=40, layout="course", seed=2, max_side=96, progress=False)
    root = tmp_path / "lab"
    root.mkdir()
    nb = load_notebook_node(os.path.join(nbtools.NBS, "lesson1.ipynb"))
    nb = parameterize_notebook(nb, dict(LESSON1, path=str(data)), kernel_name=nbtools.KERNEL_NAME,
                               language="python")
    nbformat.write(nb, root / "lesson1.ipynb")
    jupyter = nbtools.write_kernelspec(str(tmp_path / "jupyter"), {
        "DL1_OFFLINE": "1", "KERAS_HOME": str(_isolated_keras_home), "DL1_CACHE_DIR": str(tmp_path / "cache")})
    env = dict(os.environ, JUPYTER_PATH=jupyter, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    # every cell in the page, as a learner scrolling through sees them (JupyterLab 4 otherwise renders only the
    # cells near the viewport)
    tracker = tmp_path / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    port, token = browser.free_port(), secrets.token_hex(16)
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 (closed below, after the server)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        browser.wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=120, process=server)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# What the page says about its code cells: the prompts ("[3]:", "[*]:", "[ ]:"), tracebacks, the rendered
# images and widget progress bars, and the text outputs.
PAGE_STATE = """
const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
const text = [...document.querySelectorAll('.jp-OutputArea .jp-RenderedText')].map(e => e.innerText);
return {
  prompts: cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).innerText || ''),
  errors: [...document.querySelectorAll('.jp-OutputArea [data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => e.innerText).filter(t => t.includes('Traceback') || t.includes('Error')),
  images: [...document.querySelectorAll('.jp-OutputArea .jp-RenderedImage img')]
            .map(i => [i.naturalWidth, i.naturalHeight]),
  bars: [...document.querySelectorAll('.jp-OutputArea .widget-hprogress')]
            .map(b => b.closest('.jp-OutputArea-child').innerText),
  text: text,
};
"""


def _menu(driver, bar_item, entry):
    from selenium.webdriver.common.by import By

    browser.wait_for(lambda: driver.find_elements(
        By.XPATH, f"//li[contains(@class, 'lm-MenuBar-item')][.//div[text()='{bar_item}']]"), 30,
        f"the {bar_item} menu")[0].click()
    browser.wait_for(lambda: driver.find_elements(
        By.XPATH, f"//li[contains(@class, 'lm-Menu-item')][.//div[text()='{entry}']]"), 30,
        f"{bar_item} > {entry}")[0].click()


def _kernel_idle(server, token):
    """The notebook's kernel has started and waits for code (JupyterLab's sessions API)."""
    with urllib.request.urlopen(f"{server}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.load(r)
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


@pytest.mark.slow
def test_lesson1_runs_in_jupyterlab_with_plots_and_widget_progress_bars(lab):
    server, token = lab
    with browser.chromium() as driver:
        driver.get(f"{server}/lab/tree/lesson1.ipynb?token={token}")
        # the notebook is open and its kernel (this Python, offline) has started
        browser.wait_for(lambda: _kernel_idle(server, token) and driver.execute_script(
            "return document.querySelectorAll('.jp-Notebook .jp-CodeCell').length > 10"), 180,
            "lesson1 open with its kernel idle")

        # Run > Run All Cells, until the first cell runs (a click that comes too early does nothing)
        for attempt in range(3):
            _menu(driver, "Run", "Run All Cells")
            try:
                browser.wait_for(lambda: driver.execute_script(PAGE_STATE)["prompts"][0].strip() != "[ ]:", 20,
                                 "the first cell to start", interval=1)
                break
            except AssertionError:
                if attempt == 2:
                    raise

        def finished():
            state = driver.execute_script(PAGE_STATE)
            if state["errors"]:
                raise AssertionError("a cell failed in the browser:\n" + state["errors"][0][-2000:])
            done = state["prompts"] and all(p.strip().startswith("[") and p.strip()[1:-2].isdigit()
                                            for p in state["prompts"])
            return state if done else None

        state = browser.wait_for(finished, 600, "every cell of lesson1 to run", interval=2)
    # plots: the batches of four images, rendered as pictures
    assert len(state["images"]) >= 2 and all(w > 0 and h > 0 for w, h in state["images"]), state["images"]
    # progress bars: tqdm's widgets (the frozen layers' features computed once), not text bars
    bars = [" ".join(b.replace("\u2007", " ").split()) for b in state["bars"]]  # tqdm pads with figure spaces
    assert any(b.startswith("Features of 32 images in") and "100%" in b for b in bars), bars
    raw = [t for t in state["text"] if "Features of" in t or "HBox(children" in t or "FloatProgress(" in t]
    assert not raw, raw
