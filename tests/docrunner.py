"""Runs the command blocks of a Markdown file as a user would, for ``tests/test_docs_commands.py`` and
``tests/test_docs_readme.py`` (which say how: read the first one's docstring).

``World`` holds what the files share (the stand-ins, made once and only when a file needs them);
``run_file`` runs one file's blocks in a fresh copy of the repository and reports each failure with its
file, line, block and the end of its output.
"""

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import venv

import doccommands
from fake_kaggle import competition_zip, install_fake_kaggle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "nbs/README.md", "data/README.md", "bench/README.md", "setup/README.md"]
SUITE_BIN = os.path.dirname(sys.executable)
BLOCK_TIMEOUT = 600
# variables this suite (conftest, pytest, xdist) or a developer's shell may set that a user's shell lacks
SUITE_VARIABLES = {"KERAS_BACKEND", "KERAS_HOME", "MPLBACKEND", "OMP_NUM_THREADS", "PYTHONPATH", "VIRTUAL_ENV",
                   "JUPYTER_PATH", "PYTHONHOME"}
SUITE_PREFIXES = ("DL1_", "PYTEST_", "AWS_", "KAGGLE_", "FAKE_KAGGLE_", "MOTO_")
REGION = "eu-west-1"
COMPETITION_FILE = "dogs-vs-cats-redux-kernels-edition.zip"
WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


# ---- the world the blocks run in -----------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_repository(dest):
    """The repository's files as a clone would have them (tracked and new, not ignored), without .venv."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = os.path.join(REPO, name)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, name))


def _layered_venv(copy):
    """``copy/.venv``: a virtual environment whose own site-packages comes first and which also sees the
    copy itself and this suite's packages (a .pth file); this suite's commands are in its bin/, running
    under its python. Whatever a block installs goes into it, never into the suite's environment."""
    target = os.path.join(copy, ".venv")
    venv.create(target, with_pip=False, symlinks=True)
    site = os.path.join(target, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    import sysconfig

    suite = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    with open(os.path.join(site, "_dl1_doc_test.pth"), "w") as f:
        f.write("\n".join([copy] + list(dict.fromkeys(suite))) + "\n")
    python = os.path.join(target, "bin", "python")
    for name in sorted(os.listdir(SUITE_BIN)):
        src = os.path.join(SUITE_BIN, name)
        dst = os.path.join(target, "bin", name)
        if name == "kaggle" or os.path.exists(dst) or not os.path.isfile(src) or os.path.islink(src):
            continue  # kaggle: the stand-in on PATH plays it
        with open(src, "rb") as f:
            first, rest = f.readline(), f.read()
        if first.startswith(b"#!") and os.path.basename(first[2:].strip().split()[0]).startswith(b"python"):
            with open(dst, "wb") as f:
                f.write(b"#!" + python.encode() + b"\n" + rest)
            os.chmod(dst, 0o755)


class _CheckIp(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (the name http.server calls)
        body = b"203.0.113.7\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class World:
    """What the blocks of all files share, each made once and only when a file needs it."""

    def __init__(self, base):
        self.base = base
        self.fakes = os.path.join(base, "fakebin")
        install_fake_kaggle(self.fakes)
        self._weights = self._zip = self._aws = None
        self._stop = []

    def weights(self):
        """Stand-in VGG16 weights in the layout of Keras' ImageNet file (the real one is a download)."""
        if self._weights is None:
            out = os.path.join(self.base, "weights", WEIGHTS_FILE)
            images = os.path.join(self.base, "weights", "images")
            code = ("from dl1.data.sample import write_sample\n"
                    "from dl1.models.standin import make_standin_weights\n"
                    f"write_sample({images!r}, n=16, layout='course', seed=0, max_side=240, progress=False)\n"
                    f"make_standin_weights({out!r}, {images!r} + '/train', size=224, n=8, verbose=False)\n")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "KERAS_BACKEND": "torch"})
            assert done.returncode == 0, done.stderr[-3000:]
            self._weights = out
        return self._weights

    def competition(self):
        """A synthetic Dogs vs Cats Redux zip, as Kaggle ships it, for the stand-in kaggle to serve."""
        if self._zip is None:
            from dl1.data.sample import write_sample

            raw = os.path.join(self.base, "competition")
            write_sample(raw, n=120, n_test=30, seed=5, max_side=200, progress=False)
            self._zip = competition_zip(os.path.join(self.base, COMPETITION_FILE), raw)
        return self._zip

    def aws(self):
        """The AWS emulator (moto) and a stand-in for checkip.amazonaws.com; the variables that point there."""
        if self._aws is None:
            port = _free_port()
            log = open(os.path.join(self.base, "moto.log"), "w")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
            proc = subprocess.Popen([os.path.join(SUITE_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=log, stderr=log, env=env)
            self._stop.append(lambda: (proc.terminate(), proc.wait(timeout=20), log.close()))
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                    time.sleep(0.2)
            checkip = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CheckIp)
            threading.Thread(target=checkip.serve_forever, daemon=True).start()
            self._stop.append(checkip.shutdown)
            self._aws = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                         "DL1_CHECKIP_URL": f"http://127.0.0.1:{checkip.server_address[1]}/"}
        return self._aws

    def close(self):
        for stop in reversed(self._stop):
            stop()

    def environment(self, copy, home, blocks):
        """A user's shell for ``blocks``: no suite variables, ``copy/.venv/bin`` then the stand-ins first."""
        suite_bin = os.path.realpath(SUITE_BIN)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) != suite_bin]
        env = {k: v for k, v in os.environ.items()
               if k not in SUITE_VARIABLES and not k.startswith(SUITE_PREFIXES)}
        env.update(HOME=home, PATH=os.pathsep.join([os.path.join(copy, ".venv", "bin"), self.fakes] + path))
        os.makedirs(os.path.join(home, ".kaggle"), exist_ok=True)
        with open(os.path.join(home, ".kaggle", "access_token"), "w") as f:
            f.write("doc-test-token\n")
        text = "\n".join("\n".join([b.text] + b.before + b.after) for b in blocks if not b.skip)
        if "kaggle" in text or "--upload" in text:
            env["FAKE_KAGGLE_SOURCE"] = self.competition()
        if "aws" in text:
            env.update(self.aws())
        return env

    def imagenet_weights(self, home, block):
        """The stand-in ImageNet file in ``home``'s Keras cache while ``block`` needs it, else none."""
        link = os.path.join(home, ".keras", "models", WEIGHTS_FILE)
        if os.path.lexists(link):
            os.remove(link)
        if any(word in block.text for word in ("finetune", "Vgg16(", "lr-find")):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(self.weights(), link)


# ---- running one block -----------------------------------------------------------------------------------
def _tail(path, lines=60):
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        text = f.read()
    # a progress bar redraws with carriage returns: keep what the terminal would show last
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join(shown[-lines:])


def _run(argv, copy, env, log, typed=None):
    with open(log, "a") as out:
        proc = subprocess.Popen(argv, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL if typed is None else subprocess.PIPE,
                                start_new_session=True)
        if typed is not None:
            proc.stdin.write(typed.encode() + b"\n")
            proc.stdin.close()
        try:
            return proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            out.write(f"\n[doc-test: stopped after {BLOCK_TIMEOUT} s]\n")
            return "timeout"
        finally:  # whatever the block left running (a server, a stuck command), or on Ctrl-C
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def run_block(block, copy, env, logs, index):
    """Run one block (its ``before`` commands first, its ``after`` ones last); returns None, or the failure
    report."""
    log = os.path.join(logs, f"{index:02d}.log")

    def shell(command):
        return ["bash", "-c", "set -e -o pipefail -x\n" + command]

    if block.kind == "python":
        script = os.path.join(logs, f"{index:02d}.py")
        with open(script, "w") as f:
            f.write(block.text)
        main = ["python", script]
    else:
        main = shell(block.text)
    steps = ([("a `before` command of the", shell(c)) for c in block.before] + [("the", main)] +
             [("an `after` command of the", shell(c)) for c in block.after])
    for what, argv in steps:
        code = _run(argv, copy, env, log, block.input if argv is main else None)
        if code != 0:
            return (f"{block.where}: {what} {block.kind} block failed (exit {code}):\n{block.text.rstrip()}\n"
                    f"--- its output, last lines ---\n{_tail(log)}")
    return None


def run_file(doc, world, tmp):
    """Run every command block of ``doc`` in order in a fresh copy under ``tmp``; returns (failure reports,
    a one-line summary of what ran and what was skipped)."""
    copy = os.path.join(tmp, "repo")
    _copy_repository(copy)
    _layered_venv(copy)
    env_path = os.pathsep.join([os.path.join(copy, ".venv", "bin"), os.environ.get("PATH", "")])
    blocks = doccommands.commands(doc, root=copy, path=env_path)
    env = world.environment(copy, os.path.join(tmp, "home"), blocks)
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    failures, ran, skipped = [], [], []
    for i, block in enumerate(blocks):
        if block.skip:
            skipped.append(f"{block.where} ({block.skip})")
            continue
        started = time.monotonic()
        world.imagenet_weights(env["HOME"], block)
        failure = run_block(block, copy, env, logs, i)
        ran.append(f"{block.where} {time.monotonic() - started:.0f}s")
        if failure:
            failures.append(failure)
    return failures, f"{doc}: ran {', '.join(ran) or 'nothing'}; skipped {', '.join(skipped) or 'nothing'}"
