"""A stand-in for the official ``kaggle`` command, for the tests (Kaggle itself is out of reach here).

``install_fake_kaggle(folder)`` writes an executable ``folder/kaggle`` that answers ``--version``, ``competitions
download -p DIR [-f FILE] [-q]`` and ``competitions submit -f FILE -m MSG`` the way the real one does:
a download writes ``<competition>.zip`` into DIR chunk by chunk with a progress line on stderr, a submission
prints a line. Its environment steers it:

    FAKE_KAGGLE_LOG      append each call's arguments (one JSON list a line) to this file
    FAKE_KAGGLE_MODE     ok (default), forbidden (a 403 as Kaggle answers it), truncated (half a zip)
    FAKE_KAGGLE_SOURCE   the file a download serves (default: a tiny valid zip)
    FAKE_KAGGLE_DELAY    seconds between 64 KB chunks (a slow network)
    FAKE_KAGGLE_GATE     after the first chunk, wait until this file exists (a test watches the progress)

``competition_zip(path, raw)`` packs a raw Kaggle-layout folder (``train/``, ``test/``, as ``dl1 sample``
writes it) the way Kaggle ships Dogs vs Cats Redux: one zip holding ``train.zip`` and ``test.zip``.
"""

import os
import stat
import sys
import textwrap
import zipfile

SCRIPT = textwrap.dedent('''\
    #!{python}
    import io, json, os, sys, time, zipfile
    args = sys.argv[1:]
    if os.environ.get("FAKE_KAGGLE_LOG"):
        with open(os.environ["FAKE_KAGGLE_LOG"], "a") as f:
            f.write(json.dumps(args) + "\\n")
    if args in (["--version"], ["-v"]):
        print("Kaggle CLI 2.2.5 (a stand-in)")
        sys.exit(0)
    mode = os.environ.get("FAKE_KAGGLE_MODE", "ok")
    if mode == "forbidden":
        print("403 Client Error: Forbidden - You must accept this competition's rules before you'll be "
              "able to download files.", file=sys.stderr)
        sys.exit(1)
    if args[:2] == ["competitions", "download"]:
        path = args[args.index("-p") + 1]
        target = os.path.join(path, args[2] + ".zip")
        if mode == "truncated":
            data = b"PK\\x03\\x04 cut short"
        elif os.environ.get("FAKE_KAGGLE_SOURCE"):
            data = open(os.environ["FAKE_KAGGLE_SOURCE"], "rb").read()
        else:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("sample_submission.csv", "id,label\\n1,0.5\\n")
            data = buf.getvalue()
        print(f"Downloading {{os.path.basename(target)}} to {{path}}")
        delay = float(os.environ.get("FAKE_KAGGLE_DELAY", "0"))
        gate = os.environ.get("FAKE_KAGGLE_GATE")
        with open(target, "wb") as fout:  # the file grows chunk by chunk, as over a network
            for start in range(0, len(data), 64 * 1024):
                fout.write(data[start:start + 64 * 1024])
                fout.flush()
                done = min(len(data), start + 64 * 1024)
                if "-q" not in args:
                    sys.stderr.write(f"\\r{{100 * done // len(data):3d}}%| {{done}}/{{len(data)}} bytes")
                    sys.stderr.flush()
                while gate and not os.path.exists(gate):
                    time.sleep(0.05)
                gate = None
                time.sleep(delay)
        if "-q" not in args:
            sys.stderr.write("\\n")
    elif args[:2] == ["competitions", "submit"]:
        print("Successfully submitted to", args[2])
    else:
        print("kaggle (stand-in): unexpected arguments", args, file=sys.stderr)
        sys.exit(2)
''')


def install_fake_kaggle(folder, python=sys.executable):
    """Write the stand-in as ``folder/kaggle`` (made executable); returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "kaggle")
    with open(path, "w") as f:
        f.write(SCRIPT.format(python=python))
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    return path


def competition_zip(path, raw):
    """Pack ``raw/train`` and ``raw/test`` as Kaggle ships Dogs vs Cats Redux: ``path`` holds train.zip and
    test.zip, each with its folder inside."""
    with zipfile.ZipFile(path, "w") as bundle:
        for split in ("train", "test"):
            inner = f"{path}.{split}.zip"
            with zipfile.ZipFile(inner, "w") as zf:
                for name in sorted(os.listdir(os.path.join(raw, split))):
                    zf.write(os.path.join(raw, split, name), f"{split}/{name}")
            bundle.write(inner, f"{split}.zip")
            os.remove(inner)
    return path
