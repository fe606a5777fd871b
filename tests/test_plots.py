"""Image grids: an empty selection says so and goes on."""

import numpy as np

from dl1.inspect.plots import plots
from dl1.inspect.predictions import plots_idx


def test_plots_of_nothing_say_so_and_go_on(capsys, tmp_path):
    plots([])
    plots_idx(np.array([], dtype=int), [], str(tmp_path))
    assert capsys.readouterr().out.count("no images to show") == 2
