"""The results folder: only the newest per-epoch weight files are kept."""

import os

from dl1.workflow.results import Results


def test_only_the_newest_epoch_weight_files_are_kept(tmp_path):
    results = Results(tmp_path)
    for epoch in range(1, 6):
        with open(results.file(results.epoch_weights_name(epoch)), "w") as f:
            f.write("w")
        results.prune_epoch_weights(2)
    assert sorted(os.listdir(results.path)) == ["ft4.h5", "ft5.h5"]
    assert results.prune_epoch_weights(0) == []
