"""One run configuration: every number checked when the arguments are read (one line naming the option and the
value, nothing written), defaults in one place, the whole config recorded in a versioned dl1-model.json that
every later command reads through one validating function, and --sample on every data-folder command."""

import inspect
import json
import os
import shutil

import numpy as np
import pytest

from dl1.cli import build_parser, main
from dl1.io.arrays import save_array
from dl1.models.config import DEFAULT_LR, ConfigError, RunConfig
from dl1.models.record import VERSION, ModelRecord


def _tree(folder):
    """Every file under ``folder`` with its bytes and modification time (to tell that nothing was written)."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = (fh.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.fixture
def trained_folder(tmp_path):
    """A data folder whose results/ holds a model record and a weights file (stand-ins, never loaded)."""
    d = tmp_path / "data"
    for split in ("train/cats", "train/dogs", "valid/cats", "valid/dogs", "test/unknown", "results"):
        (d / split).mkdir(parents=True)
    (d / "results" / "dl1-model.json").write_text(json.dumps(
        {"version": VERSION, "arch": "vgg16", "classes": ["cats", "dogs"], "size": [64, 64], "weights": "ft1.h5"}))
    (d / "results" / "ft1.h5").write_bytes(b"weights")
    return d


@pytest.mark.parametrize("args, message", [
    (["finetune", "{d}", "--epochs", "-1"], "--epochs must be 1 or more, not -1"),
    (["finetune", "{d}", "--epochs", "0"], "--epochs must be 1 or more, not 0"),
    (["finetune", "{d}", "--batch-size", "0"], "--batch-size must be 1 or more, not 0"),
    (["finetune", "{d}", "--lr", "0"], "--lr must be a finite number above 0, not 0.0"),
    (["finetune", "{d}", "--lr", "nan"], "--lr must be a finite number above 0, not nan"),
    (["finetune", "{d}", "--lr", "inf"], "--lr must be a finite number above 0, not inf"),
    (["finetune", "{d}", "--size", "16"], "--size 16 is too small: VGG16 halves the image five times, so use at "
                                          "least 32 (--arch vgg16)"),
    (["finetune", "{d}", "--size", "31", "--arch", "resnet50"], "--size 31 is too small: ResNet50 halves the "
                                                                "image five times, so use at least 32 (--arch "
                                                                "resnet50)"),
    (["finetune", "{d}", "--keep", "-1"], "--keep must be 0 or more, not -1"),
    (["finetune", "{d}", "--checkpoint-every", "0"], "--checkpoint-every must be 1 or more, not 0"),
    (["finetune", "{d}", "--freeze-epochs", "-2", "--unfreeze"], "--freeze-epochs must be 0 or more, not -2"),
    (["finetune", "{d}", "--seed", "-1"], "--seed must be 0 or more, not -1"),
    (["lr-find", "{d}", "--num-steps", "1"], "--num-steps must be 2 or more, not 1"),
    (["lr-find", "{d}", "--start-lr", "1", "--end-lr", "0.5"], "--start-lr must be below --end-lr, not 1.0 and 0.5"),
    (["lr-find", "{d}", "--batch-size", "-8"], "--batch-size must be 1 or more, not -8"),
    (["predict", "{d}", "--tta", "0"], "--tta must be 1 or more, not 0"),
    (["predict", "{d}", "--batch-size", "0"], "--batch-size must be 1 or more, not 0"),
    (["inspect", "{d}", "--n-view", "0"], "--n-view must be 1 or more, not 0"),
    (["prepare", "{d}", "--valid", "-1"], "--valid must be 0 or more, not -1"),
    (["prepare", "{d}", "--sample-train", "-5"], "--sample-train must be 0 or more, not -5"),
    (["demo", "{d}/demo", "--n", "3"], "--n must be 20 or more, not 3"),
    (["demo", "{d}/demo", "--epochs", "0"], "--epochs must be 1 or more, not 0"),
    (["sample", "{d}/new", "--n", "0"], "--n must be 1 or more, not 0"),
])
def test_a_bad_number_is_one_line_naming_the_option_and_nothing_is_written(args, message, trained_folder, capsys):
    before = _tree(trained_folder)
    assert main([a.format(d=trained_folder) for a in args]) == 2
    err = capsys.readouterr().err
    assert err == f"dl1: error: {message}\n"
    assert _tree(trained_folder) == before  # the record and the weights untouched, no folder made


def test_the_config_error_is_a_dl1_error_the_command_line_can_tell_apart():
    from dl1.io.errors import DL1Error

    with pytest.raises(ConfigError) as e:
        RunConfig(epochs=0)
    assert isinstance(e.value, DL1Error) and isinstance(e.value, ValueError)
    with pytest.raises(ConfigError, match="unknown setting 'epoch': use one of arch, batch_size"):
        RunConfig.build(epoch=3)
    with pytest.raises(ConfigError, match="--epochs must be a whole number, not 1.5"):
        RunConfig(epochs=1.5)
    with pytest.raises(ConfigError, match="--arch must be one of vgg16, vgg16bn, .*densenet121, not 'alexnet'"):
        RunConfig(arch="alexnet")


def test_defaults_live_in_one_place():
    from dl1.models.classifier import ImageClassifier

    config = RunConfig()
    assert config.lr == DEFAULT_LR and config.size == 224 and config.arch == "vgg16" and config.schedule == "constant"
    for method, name in ((ImageClassifier.compile, "lr"), (ImageClassifier.fit_one_cycle, "max_lr"),
                         (ImageClassifier.fine_tune, "base_lr")):
        assert inspect.signature(method).parameters[name].default == DEFAULT_LR
    from dl1.data.prepare import DEFAULT_LABEL_REGEX
    from dl1.workflow import steps

    assert steps.DEFAULT_LABEL_REGEX is DEFAULT_LABEL_REGEX
    args = build_parser().parse_args(["prepare", "d"])
    assert not hasattr(args, "label_regex") and not hasattr(args, "valid")  # prepare_data's defaults apply


def test_finetune_and_lr_find_share_the_declared_options():
    parser = build_parser()
    common = ["--arch", "resnet50", "--batch-size", "8", "--size", "48", "--weights", "none", "--no-cache",
              "--mixed-precision", "off", "--seed", "3", "--sample", "--unfreeze", "--verbose", "0"]
    a = RunConfig.from_namespace(parser.parse_args(["finetune", "d", *common, "--epochs", "4", "--lr", "0.01"]))
    b = RunConfig.from_namespace(parser.parse_args(["lr-find", "d", *common, "--num-steps", "20"]))
    for config in (a, b):
        assert (config.arch, config.batch_size, config.size, config.weights, config.cache, config.seed,
                config.sample, config.unfreeze, config.verbose) == ("resnet50", 8, 48, "none", False, 3, True,
                                                                    True, 0)
    assert (a.epochs, a.lr, a.num_steps) == (4, 0.01, 100) and (b.epochs, b.lr, b.num_steps) == (1, DEFAULT_LR, 20)
    assert a.model_args() == {"weights": None, "size": 48, "mixed_precision": False, "jit_compile": "auto"}
    with pytest.raises(SystemExit):
        parser.parse_args(["lr-find", "d", "--epochs", "2"])  # lr-find has no --epochs
    assert RunConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "is not a model record (a JSON object with the class names was expected, found list)"),
    ("null", "is not a model record (a JSON object with the class names was expected, found null)"),
    ('{"size": [64, 64]}', "has no list of class names ('classes')"),
    ('{"classes": "cats", "size": [64, 64]}', "has no list of class names ('classes')"),
    ('{"version": 99, "classes": ["a", "b"]}', "is a version 99 model record and this dl1 reads versions 1 to 2: "
                                               "upgrade dl1, or run 'dl1 finetune' again"),
    ('{"classes": ["a", "b"], "size": [64]}', "has an invalid size [64] (two whole numbers expected)"),
    ('{"classes": ["a", "b"], "arch": "alexnet"}', "unknown architecture 'alexnet'"),
    ("{not json", "is damaged"),
])
def test_a_damaged_record_is_one_line_for_every_command(content, message, trained_folder, capsys):
    (trained_folder / "results" / "dl1-model.json").write_text(content)
    for command in ("predict", "inspect", "export", "submit"):
        assert main([command, str(trained_folder)]) == 1, command
        err = capsys.readouterr().err
        assert err.startswith("dl1: error: ") and message in err and err.count("\n") == 1, (command, err)


def test_old_records_still_read_and_new_ones_carry_the_whole_config(trained_folder):
    from dl1.workflow.results import Results

    results = Results(trained_folder, create=False)
    (trained_folder / "results" / "dl1-model.json").write_text(
        '{"classes": ["cats", "dogs"], "size": [64, 64], "weights": "ft1.h5", "lr": 0.001}')  # version 1
    record = results.read_model()
    assert (record.arch, record.classes, record.size, record.run_config()) == ("vgg16", ["cats", "dogs"], [64, 64],
                                                                                 None)
    config = RunConfig(arch="resnet50", epochs=3, size=64)
    results.write_model(ModelRecord(classes=["a", "b"], size=[64, 64], arch="resnet50", config=config.to_dict()))
    data = json.loads((trained_folder / "results" / "dl1-model.json").read_text())
    assert data["version"] == VERSION and data["config"]["epochs"] == 3
    assert results.read_model().run_config() == config
    results.write_model({"classes": ["x", "y"], "size": [32, 32], "weights": "ft2.h5"})  # as the notebooks do
    assert results.read_model().weights == "ft2.h5"


def test_a_model_trained_with_sample_is_named_when_asked_for_without_it(trained_folder, capsys):
    shutil.move(str(trained_folder / "results"), str(trained_folder / "sample" / "results"))
    sample = trained_folder / "sample" / "results"
    for command in ("predict", "inspect", "export"):
        assert main([command, str(trained_folder)]) == 1
        err = capsys.readouterr().err
        assert err == f"dl1: error: no trained model in {trained_folder / 'results'}: there is one in {sample} " \
                      "(trained with --sample): add --sample\n", command
    save_array(sample / "test_preds.dat", np.array([[0.9, 0.1]]))  # submit reads the predictions
    assert main(["submit", str(trained_folder)]) == 1
    assert capsys.readouterr().err == f"dl1: error: {trained_folder / 'results' / 'test_preds.dat'} not found: " \
                                      f"there is one in {sample} (made with --sample): add --sample, or run " \
                                      "'dl1 predict DIR' first\n"


def test_submit_takes_sample(trained_folder, capsys):
    sample = trained_folder / "sample"
    shutil.move(str(trained_folder / "results"), str(sample / "results"))
    for i in (1, 2, 3):
        (trained_folder / "test" / "unknown" / f"{i}.jpg").write_bytes(b"x")
    save_array(sample / "results" / "test_preds.dat", np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]))
    save_array(sample / "results" / "filenames.dat", [f"unknown/{i}.jpg" for i in (1, 2, 3)])
    assert main(["submit", str(trained_folder), "--sample"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {sample / 'results' / 'submission.csv'}: 3 rows" in out
    assert not (trained_folder / "results").exists()


def test_every_data_folder_command_takes_sample():
    parser = build_parser()
    for command in ("finetune", "lr-find", "predict", "inspect", "submit", "export", "cache"):
        assert parser.parse_args([command, "d", "--sample"]).sample is True, command


def test_a_run_that_trains_nothing_leaves_the_record_and_weights_alone(tmp_path, capsys):
    from dl1.data.sample import write_sample

    d = tmp_path / "data"
    write_sample(str(d), n=24, layout="course", seed=1, max_side=48, progress=False)
    args = ["finetune", str(d), "--weights", "none", "--size", "32", "--batch-size", "8", "--verbose", "0"]
    assert main(args) == 0
    before = _tree(d / "results")
    record = json.loads((d / "results" / "dl1-model.json").read_text())
    assert record["version"] == VERSION and record["epochs_done"] == 1 and record["config"]["batch_size"] == 8
    capsys.readouterr()
    assert main(args) == 0  # the checkpoint says the one epoch is done
    assert "Nothing to train: 1 epoch(s) of 1 done already" in capsys.readouterr().out
    assert _tree(d / "results") == before
