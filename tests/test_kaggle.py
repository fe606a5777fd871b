"""Kaggle through the official CLI: credential messages, argument composition, safe downloads.

Kaggle itself is out of reach here, so a stand-in `kaggle` executable records its arguments and plays
the server's part; the real CLI is still checked for what it does without credentials.
"""

import json
import os
import subprocess
import sys
import zipfile

import pytest
from fake_kaggle import competition_zip, install_fake_kaggle

from dl1.kaggle import cli as kaggle_cli
from dl1.kaggle.cli import KaggleError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    script = install_fake_kaggle(str(tmp_path / "bin"))
    log = tmp_path / "kaggle.log"
    monkeypatch.setenv("DL1_KAGGLE_CLI", script)
    monkeypatch.setenv("FAKE_KAGGLE_LOG", str(log))
    monkeypatch.setenv("KAGGLE_API_TOKEN", "test-token")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls


def test_missing_credentials_say_where_to_put_them(no_credentials):
    assert kaggle_cli.find_credentials() is None
    with pytest.raises(KaggleError) as e:
        kaggle_cli.download(no_credentials / "data")
    message = str(e.value)
    assert str(no_credentials / ".kaggle" / "access_token") in message
    assert "KAGGLE_API_TOKEN" in message and "https://www.kaggle.com/settings" in message
    assert "kaggle.json" in message


def test_each_usual_credential_place_is_found(no_credentials, monkeypatch):
    kdir = no_credentials / ".kaggle"
    kdir.mkdir()
    (kdir / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert kaggle_cli.find_credentials().endswith("kaggle.json")
    (kdir / "kaggle.json").unlink()
    (kdir / "access_token").write_text("tok")
    assert kaggle_cli.find_credentials().endswith("access_token")
    (kdir / "access_token").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert kaggle_cli.find_credentials() == "KAGGLE_USERNAME/KAGGLE_KEY"


def test_the_real_cli_without_credentials_gets_our_one_line_message(no_credentials, monkeypatch, capsys):
    from dl1.cli import main

    monkeypatch.delenv("DL1_KAGGLE_CLI", raising=False)
    assert main(["kaggle", "download", str(no_credentials / "d")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dl1: error: Kaggle credentials not found") and err.count("\n") == 1


def test_argument_composition():
    assert kaggle_cli.download_args("dogs-vs-cats-redux-kernels-edition", "/d") == \
        ["competitions", "download", "dogs-vs-cats-redux-kernels-edition", "-p", "/d"]
    assert kaggle_cli.submit_args("state-farm-distracted-driver-detection", "s.csv", "first try") == \
        ["competitions", "submit", "state-farm-distracted-driver-detection", "-f", "s.csv", "-m", "first try"]
    with pytest.raises(KaggleError, match="needs a message"):
        kaggle_cli.submit_args("x", "s.csv", "  ")


def test_download_then_the_slug_is_remembered_for_submit(tmp_path, fake_kaggle):
    data = tmp_path / "state"
    files = kaggle_cli.download(data, "state-farm-distracted-driver-detection")
    assert files == ["state-farm-distracted-driver-detection.zip"]
    assert (data / files[0]).exists() and not (data / ".dl1-download").exists()
    call = fake_kaggle()[0]
    assert call[:3] == ["competitions", "download", "state-farm-distracted-driver-detection"]
    assert call[call.index("-p") + 1] == str(data / ".dl1-download")  # staged, moved when complete
    assert kaggle_cli.resolve_competition(data) == "state-farm-distracted-driver-detection"
    assert kaggle_cli.download(data) == files  # already there: nothing downloaded again
    assert len(fake_kaggle()) == 1
    (tmp_path / "s.csv").write_text("id,label\n1,0.5\n")
    kaggle_cli.submit(str(tmp_path / "s.csv"), "v1", kaggle_cli.resolve_competition(data))
    assert fake_kaggle()[-1] == ["competitions", "submit", "state-farm-distracted-driver-detection",
                                 "-f", str(tmp_path / "s.csv"), "-m", "v1"]


def test_default_competition_is_the_redux_one(tmp_path, fake_kaggle):
    kaggle_cli.download(tmp_path / "redux")
    assert fake_kaggle()[0][2] == "dogs-vs-cats-redux-kernels-edition"


@pytest.mark.parametrize("content", ['["dogs-vs-cats-redux-kernels-edition"]', '{"competition": 3}',
                                     '{"competition": "x", "files": "a.zip"}', '{"competition": "x"'])
def test_a_damaged_state_file_is_one_line_not_a_crash(tmp_path, fake_kaggle, capsys, content):
    from dl1.cli import main

    data = tmp_path / "redux"
    data.mkdir()
    (data / ".dl1-kaggle.json").write_text(content)
    message = (f"{data / '.dl1-kaggle.json'} is damaged (want {{\"competition\": SLUG, \"files\": [...]}}, as dl1 "
               "kaggle download writes it); delete it and name the competition with --competition SLUG")
    with pytest.raises(KaggleError) as e:
        kaggle_cli.remembered_competition(data)
    assert str(e.value) == message
    assert main(["kaggle", "download", str(data)]) != 0
    assert capsys.readouterr().err.strip().endswith(message) and fake_kaggle() == []
    # naming the competition is the way out: the file is written again
    assert kaggle_cli.download(data, "dogs-vs-cats-redux-kernels-edition")
    assert kaggle_cli.remembered_competition(data) == "dogs-vs-cats-redux-kernels-edition"


def test_an_interrupted_download_never_leaves_a_half_file_in_place(tmp_path, fake_kaggle, monkeypatch):
    data = tmp_path / "redux"
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "truncated")
    with pytest.raises(KaggleError, match="incomplete or damaged; run the same command again"):
        kaggle_cli.download(data)
    assert not [f for f in os.listdir(data) if f.endswith(".zip")]
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "ok")
    files = kaggle_cli.download(data)
    with zipfile.ZipFile(data / files[0]) as zf:
        assert zf.testzip() is None


def test_rules_not_accepted_is_explained(tmp_path, fake_kaggle, monkeypatch):
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "forbidden")
    with pytest.raises(KaggleError, match="accept the rules of the competition at "
                                          "https://www.kaggle.com/c/dogs-vs-cats-redux-kernels-edition/rules"):
        kaggle_cli.download(tmp_path / "d")


def test_dl1_kaggle_download_command(tmp_path, fake_kaggle):
    out = subprocess.run([sys.executable, "-m", "dl1", "kaggle", "download", str(tmp_path / "x"),
                          "--competition", "some-comp"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "Next: dl1 prepare" in out.stdout and fake_kaggle()[0][2] == "some-comp"


def test_download_and_prepare_killed_at_random_moments_lose_nothing(tmp_path, monkeypatch):
    """`dl1 kaggle download` then `dl1 prepare` from the zips, each SIGKILLed at random moments many
    times, then finished: every image of the competition's zip is there exactly once, by content."""
    import hashlib
    import random
    import signal
    import time
    from collections import Counter

    from dl1.data.sample import write_sample

    raw = tmp_path / "raw"
    write_sample(str(raw), n=300, n_test=60, seed=4, max_side=96, progress=False)
    source = tmp_path / "dogs-vs-cats-redux-kernels-edition.zip"
    competition_zip(str(source), str(raw))  # Kaggle's layout: a zip holding train.zip, test.zip
    script = install_fake_kaggle(str(tmp_path / "bin"))
    env = {**os.environ, "DL1_KAGGLE_CLI": script, "FAKE_KAGGLE_SOURCE": str(source),
           "FAKE_KAGGLE_DELAY": "0.01", "KAGGLE_API_TOKEN": "test-token"}
    repo = REPO
    data = tmp_path / "data"
    rng = random.Random(1)

    def hashes(folder, names):
        out = Counter()
        for root, _, files in os.walk(folder):
            parts = os.path.relpath(root, folder).split(os.sep)
            for f in files:
                if f.endswith(".jpg") and any(part in parts for part in names):
                    out[hashlib.sha1(open(os.path.join(root, f), "rb").read()).hexdigest()] += 1
        return out

    def kill_loop(args, rounds, max_delay):
        killed = 0
        for _ in range(rounds):
            proc = subprocess.Popen([sys.executable, "-m", "dl1", *args], cwd=repo, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, max_delay))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait()
            # a killed download never leaves a partial file under its real name
            assert not (data / source.name).exists() or zipfile.ZipFile(data / source.name).testzip() is None
        done = subprocess.run([sys.executable, "-m", "dl1", *args], cwd=repo, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return killed

    assert kill_loop(["kaggle", "download", str(data)], 6, 0.8) >= 1
    assert hashlib.sha1((data / source.name).read_bytes()).digest() == hashlib.sha1(source.read_bytes()).digest()
    prepare = ["prepare", str(data), "--valid", "40", "--sample-train", "20", "--sample-valid", "10"]
    kill_loop(prepare, 6, 1.5)
    labelled = hashes(data, ["train", "valid"]) - hashes(data / "sample", ["train", "valid"])
    assert labelled == hashes(raw, ["train"])
    assert hashes(data, ["test"]) == hashes(raw, ["test"])


def test_a_download_shows_the_kaggle_commands_progress_while_it_runs(tmp_path):
    """The kaggle command's progress reaches the user while the download is still under way (it was
    captured until the end), and the zip appears in DIR only once it is complete."""
    import select
    import time

    source = tmp_path / "big.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("train.zip", os.urandom(300_000))
    gate = tmp_path / "gate"
    env = {**os.environ, "DL1_KAGGLE_CLI": install_fake_kaggle(str(tmp_path / "bin")),
           "KAGGLE_API_TOKEN": "test-token", "FAKE_KAGGLE_SOURCE": str(source), "FAKE_KAGGLE_GATE": str(gate)}
    data = tmp_path / "redux"
    proc = subprocess.Popen([sys.executable, "-m", "dl1", "kaggle", "download", str(data)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, deadline = b"", time.monotonic() + 60
    try:
        while b"%|" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 0.5)[0]:
                seen += os.read(proc.stderr.fileno(), 65536)
        assert b" 21%| 65536/" in seen, seen  # the first chunk's progress, shown while the fake waits
        assert proc.poll() is None and not (data / "dogs-vs-cats-redux-kernels-edition.zip").exists()
    finally:
        gate.write_text("go")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"100%|" in seen + err and b"Next: dl1 prepare" in out
    assert (data / "dogs-vs-cats-redux-kernels-edition.zip").read_bytes() == source.read_bytes()


def test_the_real_kaggle_command_starts_in_the_locked_environments(tmp_path):
    """`kaggle --version` runs here (the `make test` environment), and every distribution the kaggle
    command imports is pinned in requirements.lock (the `make demo` environment): kaggle 2.2.5 imports six
    without declaring it, so a lock without six would give a `kaggle` that cannot start."""
    import importlib.metadata

    kaggle = os.path.join(os.path.dirname(sys.executable), "kaggle")
    env = {**os.environ, "HOME": str(tmp_path)}
    out = subprocess.run([kaggle, "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("Kaggle CLI "), out.stdout + out.stderr
    probe = ("import sys, kaggle.cli; "
             "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    mods = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert mods.returncode == 0, mods.stderr
    owners = importlib.metadata.packages_distributions()
    imported = {d.lower().replace("_", "-") for m in mods.stdout.split() for d in owners.get(m, [])}
    assert "six" in imported
    locked = {line.split("==")[0] for line in open(os.path.join(REPO, "requirements.lock"))
              if "==" in line and not line.startswith((" ", "#"))}
    # What the test environment has beyond the lock (PySocks, through selenium) may be imported only where
    # it is optional (urllib3 takes socks when it is there): with those modules made unimportable, as in
    # the make demo environment, kaggle must still start.
    extra = imported - locked
    blocked = sorted(m for m in mods.stdout.split()
                     if {d.lower().replace("_", "-") for d in owners.get(m, [])} & extra)
    without = ("import sys\n"
               f"for m in {blocked!r}: sys.modules[m] = None\n"
               "sys.argv = ['kaggle', '--version']\n"
               "import kaggle.cli\n"
               "kaggle.cli.main()\n")
    alone = subprocess.run([sys.executable, "-c", without], capture_output=True, text=True, env=env, timeout=120)
    assert alone.returncode == 0 and alone.stdout.startswith("Kaggle CLI "), (extra, alone.stdout + alone.stderr)
    assert "six" not in extra


@pytest.mark.slow
def test_the_real_kaggle_command_starts_after_a_plain_pip_install(tmp_path):
    """The README's own-environment install (`pip install torch==2.13.0`, then `pip install .`) into a
    fresh virtual environment, resolved from the declared ranges: its `kaggle --version` works."""
    import shutil
    import venv

    copy = tmp_path / "dl1"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(copy / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), copy / name)
    env_dir = tmp_path / "plain"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                              "--no-compile", "torch==2.13.0", str(copy)],
                             capture_output=True, text=True, env=env, timeout=1500)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    out = subprocess.run([str(env_dir / "bin" / "kaggle"), "--version"], capture_output=True, text=True,
                         env={**env, "HOME": str(tmp_path)}, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("Kaggle CLI "), out.stdout + out.stderr
