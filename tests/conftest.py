"""Shared fixtures: synthetic data sets and stand-in weights made by the tests themselves, offline."""

import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before anything imports Keras: no downloads, no user cache, no screen.
os.environ["DL1_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.pop("DL1_WEIGHTS", None)
os.environ.pop("DL1_CLASS_INDEX", None)
# Under pytest-xdist (make test runs two workers): share the cores between the workers instead of each
# worker's PyTorch (and the notebook kernels and commands it starts) using them all.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _per_worker = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_per_worker))


# pytest-xdist (make test: --dist loadfile --no-loadscope-reorder) hands whole files to the workers in this order
# (its default would sort the files by their number of tests, which sends a long file of one test last): the longest
# files go first, so that none of them starts last and runs alone while the other worker is idle.
LONG_FILES_FIRST = ["test_docs_readme.py", "test_setup_aws.py", "test_docs_commands.py", "test_notebooks.py",
                    "test_replay_2017.py", "test_lesson6.py", "test_bench.py", "test_extra_notebooks.py",
                    "test_resume.py", "test_history.py", "test_exit_codes.py", "test_training_aids.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(scope="session", autouse=True)
def _isolated_keras_home(tmp_path_factory):
    """An empty Keras cache: the tests never see (or touch) the user's ~/.keras."""
    home = tmp_path_factory.mktemp("keras_home")
    os.environ["KERAS_HOME"] = str(home)
    # and compiled graphs (the tests that compile) in a folder of their own, not the user's cache
    os.environ["DL1_COMPILE_CACHE"] = str(tmp_path_factory.mktemp("torch_compile"))
    yield home


class _ModuleTempFolders:
    """tmp_path_factory's mktemp for the folders one test file shares, remembered so they can be removed."""

    def __init__(self, factory):
        self._factory, self.made = factory, []

    def mktemp(self, basename, numbered=True):
        path = self._factory.mktemp(basename, numbered=numbered)
        self.made.append(path)
        return path


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """Folders shared by one test file's tests (data sets, stand-in weights, notebook kernels' homes), removed
    when the file is done unless one of its tests failed: kept to the end, a run's folders came to 21 GB, more
    than a CI machine's free disk (tmp_path's own folders go when their test passes: pyproject's retention)."""
    folders = _ModuleTempFolders(tmp_path_factory)
    failed_before = request.session.testsfailed
    yield folders
    if request.session.testsfailed == failed_before:
        for path in folders.made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def course_data(tmp_path_factory):
    """240 labelled synthetic images in the course layout (train/valid/test/unknown), read-only use."""
    from dl1.data.sample import write_sample

    path = tmp_path_factory.mktemp("course") / "data"
    write_sample(str(path), n=240, layout="course", seed=0, max_side=240, progress=False)
    return path


@pytest.fixture
def kaggle_data(tmp_path):
    """A fresh raw Kaggle-layout synthetic set (train/cat.N.jpg, train/dog.N.jpg, test/N.jpg)."""
    from dl1.data.sample import write_sample

    path = tmp_path / "redux"
    write_sample(str(path), n=120, n_test=30, seed=3, max_side=160, progress=False)
    return path


@pytest.fixture(scope="session")
def standin_weights(course_data, tmp_path_factory):
    """Stand-in 'pretrained' VGG16 weights at 64 px (LSUV on the synthetic images), Keras-2 h5 layout."""
    from dl1.models.standin import make_standin_weights

    path = tmp_path_factory.mktemp("weights") / "standin64.h5"
    make_standin_weights(str(path), str(course_data / "train"), size=64, seed=0, verbose=False)
    return path


@pytest.fixture
def seeded():
    """Deterministic Keras/numpy/python random state for a test that trains."""
    import keras

    keras.utils.set_random_seed(0)
    return 0
