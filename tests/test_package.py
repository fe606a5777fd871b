"""The package: one import name, layers checked by import-linter, no side effects on import, the 2017 faces
as re-exports, and a wheel that installs a working `dl1`."""

import ast
import importlib.util
import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every name `from utils import *` gave before the package existed (the first landing's utils/__init__.py).
NAMES_2017 = """
Activation Adadelta Adagrad Adam Adamax Add ArrayIterator AveragePooling2D BatchNormalization
Bidirectional Concatenate Conv1D Conv2D Convolution2D DL1Error DataError Dense DirectoryIterator Dot
Dropout EarlyStopping Embedding FileLink Flatten GRU GlobalAveragePooling2D GlobalMaxPooling2D Image
ImageDataGenerator Input K LSTM Lambda MaxPooling1D MaxPooling2D MixIterator Model ModelCheckpoint
Nadam OneHotEncoder OrderedDict PIL RMSprop Reshape SGD Sequential SimpleRNN SubmissionError TSNE
TimeDistributed UpSampling2D Vgg16 Vgg16BN WeightsError ZeroPadding2D adjust_dropout attrgetter
best_clip binary_submission categorical_accuracy categorical_crossentropy ceil chain choice
confusion_matrix copy_layer copy_layers copy_model copy_weights display do_clip floor get_batches
get_classes get_data get_file glob gray image insert_layer inspect_predictions itemgetter itertools
json keras l1 l1_l2 l2 load_array log_loss math methodcaller mk_size mk_square multiclass_submission
newaxis normal np onehot os pad_sequences parse_id pd permutation pickle plot plot_confusion_matrix
plot_log_loss plots plots_idx plt prepare_data randn random re save_array shutil split_at sys to_bw
to_categorical to_plot uniform validate_submission vgg_ft vgg_ft_bn vgg_mean vgg_preprocess
wrap_config write_sample write_submission
""".split()


def _bin(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def test_the_import_layers_hold():
    out = subprocess.run([_bin("lint-imports")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_importing_dl1_changes_nothing_process_wide_but_the_backend():
    code = (
        "import os, sys, warnings, logging\n"
        "import blosc2, numpy, PIL.Image  # third-party imports have their own effects (blosc2 sets env vars)\n"
        "env = dict(os.environ); filters = list(warnings.filters); root = list(logging.getLogger().handlers)\n"
        "mods = set(sys.modules)\n"
        "import dl1, dl1.cli, dl1.workflow, dl1.data.prepare\n"
        "changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}\n"
        "print(sorted(changed), warnings.filters == filters, logging.getLogger().handlers == root,\n"
        "      'keras' in sys.modules, 'torch' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['KERAS_BACKEND']", "True", "True", "False", "False"]


def test_importing_the_library_installs_no_warning_filter_or_log_handler():
    code = ("import warnings, logging, keras, torch, scipy.ndimage, sklearn.metrics, matplotlib.pyplot, pandas\n"
            "import PIL.Image, tqdm.auto, h5py, blosc2\n"
            "filters = list(warnings.filters); root = list(logging.getLogger().handlers)\n"
            "import dl1.compat.star, dl1.models.vgg16, dl1.train.fit, dl1.workflow.steps\n"
            "new = [f for f in warnings.filters if f not in filters]\n"
            "print(new == [], logging.getLogger().handlers == root, logging.getLogger('dl1').propagate)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "False"], out.stdout


def test_the_2017_faces_are_re_exports_with_every_old_name():
    import dl1.models.vgg16 as models_vgg16
    import utils
    import vgg16

    assert vgg16.Vgg16 is models_vgg16.Vgg16 and vgg16.vgg_preprocess is models_vgg16.vgg_preprocess
    missing = sorted(set(NAMES_2017) - set(utils.__all__))
    assert not missing, missing
    namespace = {}
    exec("from utils import *", namespace)
    assert not sorted(set(NAMES_2017) - set(namespace))
    assert namespace["get_batches"] is __import__("dl1.data.batches", fromlist=["x"]).get_batches


def test_the_wheel_holds_the_package_the_faces_and_the_dependencies(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), REPO], capture_output=True, text=True)
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip("setuptools is not in this environment")
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("dl1-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for module in ("dl1/__init__.py", "dl1/__main__.py", "dl1/cli.py", "dl1/models/vgg16.py", "dl1/io/errors.py",
                   "dl1/compat/star.py", "dl1/workflow/steps.py", "dl1/nn/kprivate.py", "vgg16.py", "vgg16bn.py",
                   "utils/__init__.py"):
        assert module in names, module
    assert not any(n.startswith(("tests/", "bench/", "nbs/")) for n in names)
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for dep in ("torch", "keras", "numpy", "pillow", "h5py", "blosc2", "pandas", "scikit-learn", "tqdm"):
        assert any(r.lower().startswith(dep) and "extra ==" not in r for r in requires), dep
    assert any("papermill" in r and 'extra == "notebooks"' in r for r in requires)
    assert "dl1 = dl1.cli:main" in entry


def _dl1_modules_and_aliases(tree):
    """``{alias: module}`` of the dl1 modules a module imports (``import dl1.x as m``, ``from dl1 import x``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("dl1.") and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dl1"):
            for a in node.names:
                if importlib.util.find_spec(f"{node.module}.{a.name}") if _is_package(node.module) else False:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _is_package(module):
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.submodule_search_locations is not None


def underscore_imports(path):
    """``[(line, name)]``: underscore names a module takes from another dl1 module, by ``from dl1.x import
    _name`` or as ``module._name`` of an imported dl1 module."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("dl1") or node.level):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("_")
                      and not a.name.startswith("__")]
    aliases = _dl1_modules_and_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_no_module_imports_another_modules_underscore_names():
    from test_private_api import library_files

    found = {os.path.relpath(p, REPO): u for p in library_files() if (u := underscore_imports(p))}
    assert not found, f"underscore names used across modules (make them public where they live): {found}"


def test_the_underscore_scan_catches_both_forms(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from dl1.train.fit import _merge, fit_model\nfrom dl1.train import distributed as d\n"
                   "import dl1.nn.kprivate as kp\nd._SeenLog\nkp._state\nd.__name__\n")
    assert sorted(name for _, name in underscore_imports(str(bad))) == ["_merge", "d._SeenLog", "kp._state"]
