"""The top README's commands run as written: the install by hand, `make demo`, the walk-through from
`dl1 sample` to the upload, the papermill examples (how: ``tests/test_docs_commands.py``'s docstring). Its own
file so that, the longest of the documentation runs, it gets a pytest-xdist worker of its own."""

import docrunner
import pytest


@pytest.mark.slow
def test_the_readme_commands_run_as_written(module_tmp, tmp_path):
    world = docrunner.World(str(module_tmp.mktemp("doc-world")))
    try:
        failures, summary = docrunner.run_file("README.md", world, str(tmp_path))
    finally:
        world.close()
    print(summary)
    assert not failures, f"{len(failures)} block(s) of README.md failed:\n\n" + "\n\n".join(failures)
