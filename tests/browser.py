"""A real headless Chromium for the tests: Debian's ``chromium`` and ``chromium-driver``, driven by Selenium.

``ensure_chromium()`` finds the two programs, installs the Debian packages with ``apt-get`` when they are
missing and the tests run as root, and otherwise skips the test with a one-line reason: no browser is ever
downloaded by a tool (Selenium Manager is kept offline and given the driver's path). ``chromium()`` starts the
browser with a fresh profile and the flags that keep it quiet on a closed network (without the networking
flags Chromium keeps trying to reach Google's services, and floods the network with refused connections).
``wait_for`` polls a condition. ``free_port`` and ``wait_for_http`` help start a server to point it at
(JupyterLab here; a web app later).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _skip(reason):
    import pytest

    pytest.skip(reason)


def ensure_chromium():
    """``(chromium, chromedriver)`` paths; installs Debian's packages when missing (as root), else skips."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _skip("selenium is not installed (pip install -r requirements-dev.txt)")
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            _skip(f"no {CHROMIUM} and {CHROMEDRIVER}: install Debian's {' and '.join(PACKAGES)} "
                  "(apt-get as root)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = [apt, "install", "-y", "-q", *PACKAGES]
        if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                _skip(f"apt-get could not install {' '.join(PACKAGES)}: {last}")
    return CHROMIUM, CHROMEDRIVER


@contextlib.contextmanager
def chromium(window=(1400, 1000), timeout=30):
    """A headless Chromium (a Selenium ``WebDriver``) with a fresh profile, closed and removed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = ensure_chromium()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for (or fetch) a browser or driver
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(timeout)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition, timeout, what, interval=0.5):
    """Call ``condition()`` until it returns something true (returned), or fail naming ``what``."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url, timeout=60, process=None):
    """Wait until ``url`` answers (any HTTP status); fails early when ``process`` has exited."""
    def up():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with code {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
    return wait_for(up, timeout, url)
