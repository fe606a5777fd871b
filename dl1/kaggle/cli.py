"""Kaggle downloads and submissions through the official ``kaggle`` command (kaggle-cli ``kg`` is dead).

The command runs as a subprocess: ``import kaggle`` authenticates at import time and prints a page of
help when there are no credentials. Credentials are looked for where the CLI looks (token variables and
files, OAuth cache, legacy ``kaggle.json``); when there are none we say where to put them before
calling it. The competition slug is remembered in ``DIR/.dl1-kaggle.json`` so nobody types it twice.
Downloads land in ``DIR/.dl1-download/`` and each file is moved into ``DIR`` only once it is complete
(a zip that opens and passes its CRC check), so a killed download never leaves a half file in place.
A download's output (the kaggle command's progress bar) reaches the user's terminal as it comes.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile

from dl1.io.atomic import write_text
from dl1.io.console import PlainLines, interactive
from dl1.io.errors import DL1Error
from dl1.io.log import note

DEFAULT_COMPETITION = "dogs-vs-cats-redux-kernels-edition"
STATE_FILE = ".dl1-kaggle.json"
SETTINGS_URL = "https://www.kaggle.com/settings/api"


class KaggleError(DL1Error):
    """The kaggle command is missing, has no credentials, or refused the request."""


def config_dir():
    """The folder the kaggle CLI reads: ``$KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or ``~/.config/kaggle``."""
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return env
    home = os.path.join(os.path.expanduser("~"), ".kaggle")
    if os.path.exists(home) or not sys.platform.startswith("linux"):
        return home
    return os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"),
                        "kaggle")


def find_credentials():
    """Where the kaggle CLI will find credentials (a short description), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    home = os.path.join(os.path.expanduser("~"), ".kaggle")
    for folder, name in [(home, "access_token"), (home, "access_token.txt"), (home, "credentials.json"),
                         (config_dir(), "kaggle.json")]:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def credentials_help():
    token = os.path.join(os.path.expanduser("~"), ".kaggle", "access_token")
    legacy = os.path.join(config_dir(), "kaggle.json")
    return (f"Kaggle credentials not found. Create a token at {SETTINGS_URL} ('Generate New Token') and "
            f"save it in {token} (chmod 600), or export KAGGLE_API_TOKEN=<token>, or run 'kaggle auth "
            f"login'; an old kaggle.json goes in {legacy}")


def kaggle_command():
    """The kaggle executable: ``$DL1_KAGGLE_CLI``, the one beside this Python, or on PATH."""
    env = os.environ.get("DL1_KAGGLE_CLI")
    if env:
        return env
    beside = os.path.join(os.path.dirname(sys.executable), "kaggle")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kaggle")
    if not found:
        raise KaggleError("the kaggle command is not installed: pip install kaggle "
                          "(it is in requirements.txt)")
    return found


def _pump(source, sink, tail, keep):
    """Copy ``source`` (a pipe) to ``sink`` (our stdout or stderr) chunk by chunk as it arrives, keeping its
    last ``keep`` bytes in ``tail``: a progress bar redraws with carriage returns, not lines. When ``sink``
    is not a terminal (a log file, a pipe) only whole lines go there, a redrawn line in its last state,
    without colour codes (``PlainLines``)."""
    out = getattr(sink, "buffer", None)
    plain = None if interactive(sink) else PlainLines()

    def write(data):
        if out is not None:
            out.write(data)
        else:
            sink.write(data.decode("utf-8", "replace"))
        sink.flush()

    while chunk := os.read(source.fileno(), 65536):
        write(chunk if plain is None else plain.feed(chunk))
        tail[:] = (tail + chunk)[-keep:]
    if plain is not None:
        write(plain.close())


def _streamed(cmd, keep=65536):
    """Run ``cmd`` with its output shown as it comes; returns (exit code, the end of its output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tails = [bytearray(), bytearray()]
    pumps = [threading.Thread(target=_pump, args=(pipe, sink, tail, keep), daemon=True)
             for pipe, sink, tail in zip((proc.stdout, proc.stderr), (sys.stdout, sys.stderr), tails,
                                         strict=True)]
    for t in pumps:
        t.start()
    try:
        code = proc.wait()
    except BaseException:  # Ctrl-C: the kaggle command got it too; make sure it is gone
        proc.kill()
        proc.wait()
        raise
    for t in pumps:
        t.join()
    return code, b"".join(tails).decode("utf-8", "replace")


def _run(args, what, stream=False):
    if not find_credentials():
        raise KaggleError(credentials_help())
    cmd = [kaggle_command()] + args
    try:
        if stream:
            code, out = _streamed(cmd)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            code, out = proc.returncode, (proc.stdout or "") + (proc.stderr or "")
    except OSError as e:
        raise KaggleError(f"cannot run {cmd[0]}: {e}") from None
    if code != 0 or "Authentication required" in out:
        raise KaggleError(f"{what} failed: {_explain(out, args)}")
    return out


def _explain(output, args):
    text = output.strip()
    if "Authentication required" in text or "401" in text:
        return credentials_help()
    if "403" in text or "Forbidden" in text:
        comp = args[2] if len(args) > 2 else "the competition"
        return (f"Kaggle refused access (403): accept the rules of the competition at "
                f"https://www.kaggle.com/c/{comp}/rules while logged in, then try again")
    if "404" in text or "Not Found" in text:
        return "Kaggle does not know that competition or file (404): check the slug in its URL"
    last = [line for line in text.splitlines() if line.strip()]
    return last[-1][:300] if last else "no output from the kaggle command"


def _state(directory):
    """What ``DIR/.dl1-kaggle.json`` remembers (``{}`` when there is none); a file that is not what
    ``download`` writes (``{"competition": slug, "files": [names]}``) is refused in one line."""
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        state = e
    if not (isinstance(state, dict) and isinstance(state.get("competition"), str)
            and isinstance(state.get("files", []), list)
            and all(isinstance(name, str) for name in state.get("files", []))):
        raise KaggleError(f"{path} is damaged (want {{\"competition\": SLUG, \"files\": [...]}}, as dl1 kaggle "
                          f"download writes it); delete it and name the competition with --competition SLUG")
    return state


def remembered_competition(directory):
    """The competition that ``directory``'s data came from, if ``dl1 kaggle download`` fetched it."""
    return _state(directory).get("competition")


def resolve_competition(directory, competition=None):
    return competition or remembered_competition(directory) or DEFAULT_COMPETITION


def download_args(competition, path, file_name=None, quiet=False):
    """The kaggle CLI arguments that download ``competition``'s files into ``path``."""
    args = ["competitions", "download", competition, "-p", path]
    if file_name:
        args += ["-f", file_name]
    if quiet:
        args.append("-q")
    return args


def submit_args(competition, file_name, message):
    """The kaggle CLI arguments that submit ``file_name`` with ``message``."""
    if not message or not message.strip():
        raise KaggleError("a submission needs a message: -m 'what changed'")
    return ["competitions", "submit", competition, "-f", os.fspath(file_name), "-m", message]


def _complete(path):
    if not path.lower().endswith(".zip"):
        return os.path.getsize(path) > 0
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def download(directory, competition=None, file_name=None, force=False):
    """Download a competition's files into ``directory``; returns the file names now there."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    try:
        state = _state(directory)
    except KaggleError:
        if competition is None:
            raise
        state = {}  # rewritten below for the competition named
    competition = competition or state.get("competition") or DEFAULT_COMPETITION
    if not force and state.get("competition") == competition and state.get("files") and \
            all(os.path.exists(os.path.join(directory, f)) for f in state["files"]):
        note("already downloaded: %s (use --force to download again)", ", ".join(state["files"]))
        return state["files"]
    staging = os.path.join(directory, ".dl1-download")
    os.makedirs(staging, exist_ok=True)
    write_text(os.path.join(directory, STATE_FILE), json.dumps({"competition": competition}))
    note("downloading %s into %s with the kaggle command ...", competition, directory)
    _run(download_args(competition, staging, file_name), f"kaggle download of {competition}", stream=True)
    files = []
    for name in sorted(os.listdir(staging)):
        src = os.path.join(staging, name)
        if not _complete(src):
            raise KaggleError(f"{src} is incomplete or damaged; run the same command again to download it")
        os.replace(src, os.path.join(directory, name))
        files.append(name)
    if not files:
        raise KaggleError(f"the kaggle command downloaded nothing for {competition}")
    shutil.rmtree(staging, ignore_errors=True)
    write_text(os.path.join(directory, STATE_FILE),
               json.dumps({"competition": competition, "files": files}, indent=1))
    return files


def submit(file_name, message, competition=DEFAULT_COMPETITION):
    """Upload a submission file; returns the kaggle command's output."""
    if not os.path.isfile(file_name):
        raise KaggleError(f"submission file not found: {file_name}")
    return _run(submit_args(competition, file_name, message), f"kaggle submission to {competition}")
