"""What the library says goes through the dl1 logger: ``print`` only where printing is the point.

The line: ``dl1/cli.py`` and ``dl1/workflow/`` print, since what a command shows as its steps is its
output; so do the two 2017 functions whose printed text is what the learner asked for
(``plot_confusion_matrix`` prints the matrix, ``train_sgd`` the course's error lines). Everything else, a
choice made for the user, a file reused, a run resumed, an epoch of a data-parallel run, is a note (or a
warning) of the ``dl1`` logger, which a user can silence or redirect."""

import ast
import logging
import os

from test_private_api import REPO, library_files

PRINTING_MODULES = ("dl1/cli.py", "dl1/workflow/")
PRINTING_FUNCTIONS = {("dl1/inspect/plots.py", "plot_confusion_matrix"), ("dl1/models/rnn.py", "train_sgd")}


def prints(path):
    """``[(function, line)]`` of every ``print(...)`` call in the module at ``path``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id == "print":
                found.append((function, child.lineno))
            visit(child, name)

    visit(tree, None)
    return found


def test_the_library_prints_only_where_printing_is_the_point():
    stray = {}
    for path in library_files():
        rel = os.path.relpath(path, REPO)
        if rel.startswith(PRINTING_MODULES):
            continue
        left = [(fn, line) for fn, line in prints(path) if (rel, fn) not in PRINTING_FUNCTIONS]
        if left:
            stray[rel] = left
    assert not stray, f"print() in library modules (use dl1.io.log.note/warn): {stray}"
    assert prints(os.path.join(REPO, "dl1", "inspect", "plots.py")), "the scan finds no print at all: broken"


def test_notes_can_be_silenced_like_any_logger(capsys, course_data):
    from dl1.data.batches import get_batches

    get_batches(course_data / "valid", batch_size=4, target_size=(32, 32))
    assert "Found " in capsys.readouterr().out
    logger = logging.getLogger("dl1")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        get_batches(course_data / "valid", batch_size=4, target_size=(32, 32))
        assert capsys.readouterr().out == ""
    finally:
        logger.setLevel(level)
