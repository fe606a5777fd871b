"""Every command the documentation shows runs as written.

The shell and Python blocks of the README files (``tests/doccommands.py`` says which blocks count) run in
order, each file in a fresh copy of the repository, as a user would run them from its root:

- a clean environment: none of the variables this suite sets (``KERAS_BACKEND``, ``DL1_OFFLINE``,
  ``KERAS_HOME``, ``MPLBACKEND``, ...), a fresh ``HOME``, the copy's ``.venv/bin`` first on ``PATH``. That
  ``.venv`` is a virtual environment of its own (what ``make demo`` or ``python3 -m venv`` would leave there)
  that sees this suite's installed packages, so the documented installs find everything pinned in place
  and install nothing into the environment running the tests;
- the world outside stood in for: Kaggle by a stand-in ``kaggle`` command on ``PATH`` (``tests/fake_kaggle.py``,
  serving a synthetic competition zip) and a token in ``~/.kaggle``; AWS by the local emulator (moto) with
  fake credentials; the ImageNet weights by stand-in weights in the Keras cache (``~/.keras/models``), there
  for the blocks that fine-tune or build ``Vgg16()`` only (the others run as on a machine without them: the
  demo then takes its quicker stand-in path at 64 px instead of 224).

A block that cannot run here says why in a ``<!-- doc-test: skip (...) -->`` comment above it. A failure
names the file, the line and the block, with the end of its output.
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
import pytest
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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("doc-world")))
    yield w
    w.close()


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


# ---- the tests ------------------------------------------------------------------------------------------
def test_the_doc_test_comments_parse_and_every_file_has_commands():
    for doc in DOCS:
        found = doccommands.blocks(doc, root=REPO)  # raises on a malformed doc-test comment
        assert all(b.skip is None or b.skip.strip() for b in found)
    assert doccommands.commands("README.md", root=REPO)


def test_the_extractor_reads_labels_markers_and_unlabelled_shell(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "run.sh").write_text("echo hi\n")
    (tmp_path / "doc.md").write_text(
        "# t\n\n```bash\ndl1 sample data/x\n```\n\n<!-- doc-test: skip (needs a CUDA GPU) -->\n\n```sh\nnvidia-smi\n"
        "```\n\n<!-- doc-test: before (dl1 sample data/y) -->\n<!-- doc-test: after (rm -r data/y) -->\n"
        "<!-- doc-test: input (yes) -->\n```python\nprint(1)\n```\n\n```\ndata/x/\n  train/\n"
        "```\n\n    tools/run.sh --fast\n\nthen\n\n    vgg.fit(batches)\n\n```text\nls\n```\n")
    got = [(b.line, b.kind, b.skip, b.before, b.after) for b in doccommands.blocks("doc.md", root=str(tmp_path))]
    assert got == [(3, "shell", None, [], []), (9, "shell", "needs a CUDA GPU", [], []),
                   (16, "python", None, ["dl1 sample data/y"], ["rm -r data/y"]), (20, "other", None, [], []),
                   (25, "shell", None, [], []), (29, "other", None, [], []), (31, "other", None, [], [])]
    assert [b.input for b in doccommands.blocks("doc.md", root=str(tmp_path))][2] == "yes"
    (tmp_path / "bad.md").write_text("<!-- doc-test: skipp (typo) -->\n```bash\nls\n```\n")
    with pytest.raises(doccommands.DocTestMarkError, match="line 1: cannot read"):
        doccommands.blocks("bad.md", root=str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_commands_run_as_written(doc, world, tmp_path):
    copy = str(tmp_path / "repo")
    _copy_repository(copy)
    if not os.path.exists(os.path.join(copy, doc)):
        pytest.skip(f"{doc} is not in the repository")
    _layered_venv(copy)
    env_path = os.pathsep.join([os.path.join(copy, ".venv", "bin"), os.environ.get("PATH", "")])
    blocks = doccommands.commands(doc, root=copy, path=env_path)
    env = world.environment(copy, str(tmp_path / "home"), blocks)
    logs = str(tmp_path / "logs")
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
    print(f"{doc}: ran {', '.join(ran) or 'nothing'}; skipped {', '.join(skipped) or 'nothing'}")
    assert not failures, f"{len(failures)} block(s) of {doc} failed:\n\n" + "\n\n".join(failures)


def test_every_bench_script_starts_in_a_shell_without_keras_backend():
    """`python bench/NAME.py` as bench/README.md shows it: a script that imports keras before dl1 dies with
    `No module named 'tensorflow'` where KERAS_BACKEND is not set (the suite sets it)."""
    env = {k: v for k, v in os.environ.items() if k not in SUITE_VARIABLES and not k.startswith("DL1_")}
    bad = []
    for name in sorted(os.listdir(os.path.join(REPO, "bench"))):
        if name.startswith("bench_") and name.endswith(".py"):
            out = subprocess.run([sys.executable, os.path.join("bench", name), "--help"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                bad.append(f"{name}: {(out.stderr.strip().splitlines() or ['(no output)'])[-1]}")
    assert not bad, "\n".join(bad)
