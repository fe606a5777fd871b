"""Run the lesson notebooks headless for the tests, and check the committed ones.

``run_notebook`` executes ``nbs/NAME.ipynb`` with papermill: the values given replace those of the cell tagged
``parameters`` (papermill adds a cell after it), the kernel is this Python (the venv's, through a kernelspec
written to a temporary ``JUPYTER_PATH``, so nothing installed globally is needed), offline, with matplotlib's
file-only backend. Each notebook's last cell writes a few key results to the ``results_json`` file it is given;
``run_notebook`` returns them with the run time.
"""

import ast
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NBS = os.path.join(ROOT, "nbs")
KERNEL_NAME = "python3"
# What every notebook's parameters cell must define (papermill injects values for these).
REQUIRED_PARAMETERS = ("path", "size", "weights", "epochs", "batch_size", "results_json")


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
    kdir = os.path.join(folder, "kernels", KERNEL_NAME)
    os.makedirs(kdir, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     f"--IPKernelApp.exec_lines={SEED_LINE}"],
            "display_name": "Python 3 (dl1 tests)", "language": "python", "env": dict(env or {})}
    with open(os.path.join(kdir, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)
    return folder


def run_notebook(name, out_dir, parameters, timeout=600):
    """Execute ``nbs/<name>.ipynb`` with ``parameters``; returns ``(results dict, seconds)``.

    The executed copy is written to ``out_dir`` (look there when a test fails). A failing cell raises
    papermill's ``PapermillExecutionError`` with the cell's traceback.
    """
    import papermill as pm

    os.makedirs(out_dir, exist_ok=True)
    results_json = os.path.join(out_dir, f"{name}.json")
    params = dict(parameters, results_json=results_json)
    start = time.time()
    pm.execute_notebook(os.path.join(NBS, f"{name}.ipynb"), os.path.join(out_dir, f"{name}.ipynb"),
                        parameters=params, kernel_name=KERNEL_NAME, cwd=NBS, progress_bar=False,
                        log_output=False, execution_timeout=timeout)
    seconds = time.time() - start
    with open(results_json, encoding="utf-8") as f:
        return json.load(f), seconds


def parameters_cells(nb):
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


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
