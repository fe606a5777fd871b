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

import os
import subprocess
import sys

import doccommands
import docrunner
import pytest

REPO = docrunner.REPO
ELSEWHERE = ["README.md"]  # tests/test_docs_readme.py runs it (its own file: the longest, on its own worker)


@pytest.fixture(scope="module")
def world(module_tmp):
    w = docrunner.World(str(module_tmp.mktemp("doc-world")))
    yield w
    w.close()


# ---- the tests ------------------------------------------------------------------------------------------
def test_the_doc_test_comments_parse_and_every_file_has_commands():
    for doc in docrunner.DOCS:
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
@pytest.mark.parametrize("doc", [d for d in docrunner.DOCS if d not in ELSEWHERE])
def test_the_documented_commands_run_as_written(doc, world, tmp_path):
    if not os.path.exists(os.path.join(REPO, doc)):
        pytest.skip(f"{doc} is not in the repository")
    failures, summary = docrunner.run_file(doc, world, str(tmp_path))
    print(summary)
    assert not failures, f"{len(failures)} block(s) of {doc} failed:\n\n" + "\n\n".join(failures)


def test_every_bench_script_starts_in_a_shell_without_keras_backend():
    """`python bench/NAME.py` as bench/README.md shows it: a script that imports keras before dl1 dies with
    `No module named 'tensorflow'` where KERAS_BACKEND is not set (the suite sets it)."""
    env = {k: v for k, v in os.environ.items() if k not in docrunner.SUITE_VARIABLES and not k.startswith("DL1_")}
    bad = []
    for name in sorted(os.listdir(os.path.join(REPO, "bench"))):
        if name.startswith("bench_") and name.endswith(".py"):
            out = subprocess.run([sys.executable, os.path.join("bench", name), "--help"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                bad.append(f"{name}: {(out.stderr.strip().splitlines() or ['(no output)'])[-1]}")
    assert not bad, "\n".join(bad)
