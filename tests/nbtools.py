"""Run the lesson notebooks headless for the tests, and check the committed ones.

``run_notebook`` executes ``nbs/NAME.ipynb`` as a learner's papermill run does: the values given replace
those of the cell tagged ``parameters`` (papermill adds a cell after it), the kernel is this Python (the
venv's, through a kernelspec written to a temporary ``JUPYTER_PATH``), offline, with matplotlib's file-only
backend. The lessons hold no code for the tests: after the last cell, in the same kernel, ``run_notebook``
evaluates the expressions it is asked to ``read`` (after running ``then``, extra code the test needs, for
example the library helper whose result a cell must agree with) and returns their values with the executed
notebook, whose outputs the tests can read too.
"""

import ast
import base64
import os
import pickle
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NBS = os.path.join(ROOT, "nbs")
KERNEL_NAME = "python3"
# What every image notebook's parameters cell defines (papermill injects values for these).
REQUIRED_PARAMETERS = ("path", "size", "weights", "epochs", "batch_size")
_MARK = "NBTOOLS-VALUES:"


def notebook_paths():
    return sorted(os.path.join(NBS, n) for n in os.listdir(NBS) if n.endswith(".ipynb"))


# Run first in every test kernel: the same random draws on every run (Keras draws its default seeds from
# Python's ``random``), so that a notebook test that fails in CI fails the same way here.
SEED_LINE = "import random, numpy, torch; random.seed(0); numpy.random.seed(0); torch.manual_seed(0)"


def write_kernelspec(folder, env=None):
    """A kernelspec named ``python3`` under ``folder/kernels/`` that starts this Python's ipykernel, seeded.

    Put ``folder`` first in ``JUPYTER_PATH`` and papermill/nbclient find it before any other ``python3``.
    ``env`` is added to the kernel's environment.
    """
    import json

    kdir = os.path.join(folder, "kernels", KERNEL_NAME)
    os.makedirs(kdir, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     f"--IPKernelApp.exec_lines={SEED_LINE}"],
            "display_name": "Python 3 (dl1 tests)", "language": "python", "env": dict(env or {})}
    with open(os.path.join(kdir, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)
    return folder


class Run:
    """An executed notebook: ``values`` (what was read from its kernel), ``nb`` (cells with their outputs),
    ``seconds`` (the notebook's own run time, without the reading)."""

    def __init__(self, nb, values, seconds):
        self.nb, self.values, self.seconds = nb, values, seconds

    def __getitem__(self, name):
        return self.values[name]

    def cell(self, contains):
        """The first code cell whose source contains ``contains``."""
        for cell in self.nb.cells:
            if cell.cell_type == "code" and contains in cell.source:
                return cell
        raise KeyError(f"no code cell contains {contains!r}")

    def text(self, contains=None):
        """The text a learner sees under the cells (printed lines, warnings, values shown), all of it or of
        the first cell whose source contains ``contains``."""
        cells = [self.cell(contains)] if contains else [c for c in self.nb.cells if c.cell_type == "code"]
        parts = []
        for cell in cells:
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    parts.append(out.text)
                elif "data" in out and "text/plain" in out.data:
                    parts.append(out.data["text/plain"] + "\n")
        return "".join(parts)

    def count(self, mime):
        """How many outputs carry ``mime`` (``image/png``: plots)."""
        return sum(mime in out.get("data", {}) for c in self.nb.cells if c.cell_type == "code"
                   for out in c.get("outputs", []))


def _reader_source(read):
    """Code that evaluates each expression of ``read`` in the kernel and prints the values, pickled."""
    return (f"import pickle as _p, base64 as _b\n"
            f"print({_MARK!r} + _b.b64encode(_p.dumps({{_k: eval(_k) for _k in {list(read)!r}}})).decode())\n"
            f"del _p, _b")


def run_notebook(name, out_dir, parameters, read=(), then="", timeout=600):
    """Execute ``nbs/<name>.ipynb`` with ``parameters``; then run ``then`` and read the expressions ``read``
    in the same kernel. Returns a ``Run``.

    The executed copy (with a last cell holding the test's own code) is written to ``out_dir`` even when a
    cell fails (look there); a failing cell raises nbclient's ``CellExecutionError`` with its traceback.
    """
    import nbformat
    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    os.makedirs(out_dir, exist_ok=True)
    nb = load_notebook_node(os.path.join(NBS, f"{name}.ipynb"))  # papermill's reading: every cell has tags
    nb = parameterize_notebook(nb, parameters, kernel_name=KERNEL_NAME, language="python")
    n_cells = len(nb.cells)
    probe = then + ("\n" if then else "") + (_reader_source(read) if read else "")
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(probe, metadata={"tags": ["test-only"]}))
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, resources={"metadata": {"path": NBS}})
    start = time.time()
    seconds = None
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if index == n_cells:
                    seconds = time.time() - start
                client.execute_cell(cell, index)
    finally:
        nbformat.write(nb, os.path.join(out_dir, f"{name}.ipynb"))
    values = {}
    if read:
        line = next(line for out in nb.cells[-1].outputs if out.output_type == "stream"
                    for line in out.text.splitlines() if line.startswith(_MARK))
        values = pickle.loads(base64.b64decode(line[len(_MARK):]))
    if seconds is None:
        seconds = time.time() - start
    nb.cells = nb.cells[:n_cells]
    return Run(nb, values, seconds)


def epoch_lines(text):
    """How many epochs a text shows as Keras' one-line-per-epoch log (``fit(..., verbose=2)``)."""
    return len(re.findall(r"^\d+/\d+ - \d+m?s - .*loss", text, re.M))


def parameters_cells(nb):
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def parameters(name):
    """The values of ``nbs/<name>.ipynb``'s parameters cell, as a learner opening it gets them."""
    import nbformat

    nb = nbformat.read(os.path.join(NBS, f"{name}.ipynb"), as_version=4)
    cells = parameters_cells(nb)
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged 'parameters', want exactly one"
    values = {}
    exec(compile(cells[0].source, name, "exec"), {}, values)
    return values


def assigned_names(source):
    """Names assigned at the top level of a code cell's source."""
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def output_problems(nb):
    """Cells of ``nb`` that carry outputs or execution counts (committed notebooks must have none)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell.execution_count}")
    return problems


def offline_kernel(folder, keras_home, **env):
    """A generator for a module-scoped fixture: a ``python3`` kernelspec in ``folder`` running this Python
    offline with its own Keras home (and ``env``), first in ``JUPYTER_PATH`` while the fixture lives."""
    write_kernelspec(str(folder), {"MPLBACKEND": "Agg", "DL1_OFFLINE": "1", "KERAS_HOME": str(keras_home), **env})
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(folder) + (os.pathsep + old if old else "")
    yield folder
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old
