"""The Dogs-vs-Cats main job, one function per step: what ``dl1 prepare|finetune|predict|inspect|submit``
run and what the Redux notebook calls. Each prints the lines a user reads and returns what it made.

    prepare(DIR)  ->  finetune(DIR)  ->  predict(DIR)  ->  inspect(DIR)  ->  submit(DIR)
"""

import functools
import os
import time

from dl1.data.prepare import DEFAULT_LABEL_REGEX, prepare_data
from dl1.inspect.losses import Interpretation, format_most_confused, write_most_confused
from dl1.inspect.predictions import plot_log_loss, save_inspection
from dl1.io.atomic import write_text
from dl1.io.errors import DL1Error, SubmissionError
from dl1.io.folderlock import folder_lock
from dl1.io.log import examples, note, warn
from dl1.kaggle.cli import (
    KaggleError,
    credentials_help,
    download,
    find_credentials,
    kaggle_command,
    resolve_competition,
)
from dl1.kaggle.cli import submit as kaggle_submit
from dl1.kaggle.submission import (
    best_clip,
    binary_submission,
    log_loss_score,
    multiclass_submission,
    validate_submission,
    write_submission,
)
from dl1.models.config import ConfigError, RunConfig, at_least, checked
from dl1.models.record import ModelRecord
from dl1.workflow.results import Results

# Keras (and PyTorch) are imported only inside the steps that run a model, so that ``dl1 prepare``,
# ``dl1 submit`` and ``dl1 validate`` start in a fraction of a second.

__all__ = ["DEFAULT_LABEL_REGEX", "app", "app_engine", "classify", "clip_value", "data_root", "export",
           "feature_cache", "finetune", "inspect", "kaggle_download", "load_trained", "lr_find", "need_dir",
           "prediction_table", "predict", "prepare", "show_history", "submit", "test_folder", "upload_check",
           "validate", "validation_examples", "weights_arg"]


def data_root(directory, sample=False):
    """The folder a step works on: ``directory``, or ``directory/sample`` with ``sample``."""
    return os.path.join(directory, "sample") if sample else os.fspath(directory)


def need_dir(path, hint):
    """One line naming ``path`` when it is not a folder."""
    if not os.path.isdir(path):
        raise DL1Error(f"folder not found: {path} ({hint})")


def weights_arg(value):
    """``'imagenet'``, None (for 'none'/'random') or an existing file, from a command-line value."""
    if value is None or str(value).lower() in ("none", "random"):
        return None
    if str(value).lower() == "imagenet":
        return "imagenet"
    if not os.path.isfile(value):
        raise DL1Error(f"weights file not found: {value} (use imagenet, none or a file)")
    return value


def writes_under(command, when=None):
    """Decorate a step that writes under its data folder (its first argument): the step holds the folder's
    lock (``dl1.io.folderlock``) while it runs, so a second command on the same folder is one line naming
    the process that holds it. ``when(directory, **kwargs)`` false: the call writes nothing there (no lock).
    Under torchrun only rank 0 writes, so only rank 0 locks."""
    def decorate(step):
        @functools.wraps(step)
        def locked(directory, *args, **kwargs):
            enabled = os.environ.get("RANK", "0") == "0" and (when is None or when(directory, *args, **kwargs))
            with folder_lock(directory, command, enabled=enabled):
                return step(directory, *args, **kwargs)
        return locked
    return decorate


def _csv_inside(directory, paths=None, csv=None, **_):
    """``classify --csv F`` writes under ``directory`` only when F lies inside it."""
    if not csv:
        return False
    inside = os.path.abspath(os.fspath(directory)) + os.sep
    return os.path.abspath(os.fspath(csv)).startswith(inside)


# ---- prepare ---------------------------------------------------------------------------------------------
@writes_under("prepare")
def prepare(directory, **options):
    """Raw Kaggle data (folders or zips) into the course layout; safe to re-run. Returns the report.
    ``options`` go to ``dl1.data.prepare.prepare_data`` (``valid``, ``sample_train``, ``sample_valid``,
    ``seed``, ``label_regex``, ...), whose signature holds the defaults."""
    for name in ("valid", "sample_train", "sample_valid", "seed"):
        if name in options:
            checked("--" + name.replace("_", "-"), options[name], at_least(0))
    report = prepare_data(directory, **options)
    if report.unreadable:
        print(f"Set aside {len(report.unreadable)} unreadable image(s) under "
              f"{os.path.join(directory, 'unreadable')}: {examples(report.unreadable)}")
    print(report.summary())
    return report


# ---- finetune --------------------------------------------------------------------------------------------
def _epoch_weights_saver(model, results, record, keep, offset=0, written=None):
    """A Keras callback that saves ``ft<epoch>.h5`` (1-based) and the model record after each epoch, and
    keeps only the ``keep`` newest such files, deleting only files this run wrote (``written``, a list the
    savers of one run share)."""
    import keras

    written = [] if written is None else written

    class SaveEpochWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            name = results.epoch_weights_name(offset + epoch + 1)
            model.model.save_weights(results.file(name))
            written.append(results.file(name))
            record.weights, record.epochs_done = name, offset + epoch + 1
            record.val_accuracy = (logs or {}).get("val_accuracy")
            results.write_model(record)
            for path in results.prune_epoch_weights(keep, protect=[results.file(name)], own=written):
                note("removed %s (--keep %d)", os.path.basename(path), keep)

    return SaveEpochWeights()


def _history_aside(results):
    """``--restart``: the earlier run's ``history.csv`` and curves kept under a dated name, so that the new
    run's record starts at epoch 1 as its weight files do (ft1.h5, ...)."""
    from dl1.train.history import CURVES_NAME, FILE_NAME

    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (FILE_NAME, CURVES_NAME):
        path = results.file(name)
        if os.path.exists(path):
            stem, ext = os.path.splitext(name)
            kept = results.file(f"{stem}-{stamp}{ext}")
            os.replace(path, kept)
            note("--restart: the earlier run's %s is kept as %s", name, os.path.basename(kept))


def _nbytes(variables):
    """Bytes of ``variables`` as a weights file stores them (float32)."""
    import math

    return sum(4 * math.prod(int(n) for n in v.shape) for v in variables)


def _previous_record(results, restart):
    """The record a resumed run continues (None with ``restart``, or when it is absent or damaged)."""
    if restart:
        return None
    try:
        return results.read_model(required=False)
    except DL1Error as e:
        note("%s; starting a new record", e)
        return None


@writes_under("finetune")
def finetune(directory, config=None, **settings):
    """The 7-line recipe on ``directory/train`` and ``directory/valid`` with the settings of ``config`` (a
    ``RunConfig``; keyword ``settings`` change it, e.g. ``finetune(DIR, epochs=3, arch='resnet50')``):
    ``ft<N>.h5`` after each epoch (the ``keep`` newest kept), ``dl1-model.json`` (the record, with the
    whole config), and a checkpoint that a re-run resumes from. ``one_cycle``: a one-cycle schedule
    peaking at ``lr``; ``unfreeze``: ``fine_tune`` (``freeze_epochs`` head epochs, then ``epochs`` with
    every layer training at discriminative rates, ``lr`` the base rate). Under ``torchrun`` every process
    trains its share of each batch (``batch_size`` is the global batch) and only rank 0 writes files and
    prints. Returns the ``ModelRecord``; a run that trains no epoch writes nothing."""
    config = RunConfig.build(config, **settings)
    root = data_root(directory, config.sample)
    for split in ("train", "valid"):
        need_dir(os.path.join(root, split), "run 'dl1 prepare DIR' first")
    model_args = config.model_args()
    model_args["weights"] = weights_arg(config.weights)
    import keras

    from dl1.models.classifier import build_classifier
    from dl1.train import distributed

    main = distributed.is_main()
    distributed.pin_device()
    results = Results(root)
    keras.utils.set_random_seed(config.seed)  # random weights (weights=none, new heads) repeat from run to run
    model = build_classifier(config.arch, verbose=main, cache_dir=results.cache_dir, **model_args)
    batches = model.get_batches(os.path.join(root, "train"), batch_size=config.batch_size, seed=config.seed)
    val_batches = model.get_batches(os.path.join(root, "valid"), batch_size=config.batch_size * 2, shuffle=False)
    model.finetune(batches)
    model.compile(lr=config.lr)
    if main:  # one epoch's weights file and a checkpoint must fit, or the run stops now rather than later
        results.check_room(_nbytes(model.model.weights) + 3 * _nbytes(model.model.trainable_weights),
                           "an epoch's weights and checkpoint")
    checkpoint = results.file(Results.CHECKPOINT)
    if config.restart and main:
        stale = [checkpoint] + [checkpoint[:-len(".npz")] + f"-{phase}.npz" for phase in ("head", "unfrozen")]
        for path in stale:
            if os.path.exists(path):
                os.remove(path)
        _history_aside(results)
    distributed.barrier()
    record = ModelRecord(classes=list(model.classes), size=list(model.size), arch=model.arch, policy=model.policy,
                         schedule=config.schedule, config=config.to_dict())
    old = _previous_record(results, config.restart)
    if old and old.classes == record.classes and old.size == record.size and old.arch == record.arch:
        record.weights, record.epochs_done, record.val_accuracy = old.weights, old.epochs_done, old.val_accuracy
    start = time.time()
    common = {"cache": config.cache, "checkpoint": checkpoint, "checkpoint_every": config.checkpoint_every,
              "verbose": config.verbose, "history": results.path}  # history.csv: one row per epoch
    keep = config.keep
    if config.unfreeze:
        history = _fine_tune(model, batches, val_batches, config, results, record, common)
    elif config.one_cycle:
        history = model.fit_one_cycle(batches, val_batches, config.epochs, max_lr=config.lr,
                                      callbacks=[_epoch_weights_saver(model, results, record, keep)], **common)
    else:
        history = model.fit(batches, val_batches, nb_epoch=config.epochs,
                            callbacks=[_epoch_weights_saver(model, results, record, keep)], **common)
    distributed.finish()
    if not main:
        return record
    if not history.epoch:
        print(f"Nothing to train: {record.epochs_done} epoch(s) of {config.epochs} done already; "
              f"{results.model_file} and the weights are unchanged (--restart starts again)")
        return record
    acc = history.history.get("val_accuracy") or [record.val_accuracy]
    print(f"Fine-tuned {record.epochs_done} epoch(s) in {time.time() - start:.0f}s; "
          f"validation accuracy {acc[-1] if acc[-1] is not None else float('nan'):.3f}; "
          f"weights {results.file(record.weights or '?')}")
    return record


def _fine_tune(model, batches, val_batches, config, results, record, common):
    """``model.fine_tune`` with per-epoch weight files numbered across both phases."""
    import keras

    keep = config.keep
    written = []
    savers = [_epoch_weights_saver(model, results, record, keep, written=written),
              _epoch_weights_saver(model, results, record, keep, offset=config.freeze_epochs, written=written)]

    class PhaseSaver(keras.callbacks.Callback):  # head epochs (some layers frozen), then the unfrozen ones
        def on_epoch_end(self, epoch, logs=None):
            unfrozen = all(layer.trainable for layer in model.model.layers)
            savers[1 if unfrozen else 0].on_epoch_end(epoch, logs)

    return model.fine_tune(batches, val_batches, epochs=config.epochs, freeze_epochs=config.freeze_epochs,
                           base_lr=config.lr, callbacks=[PhaseSaver()], **common)


@writes_under("lr-find")
def lr_find(directory, config=None, **settings):
    """The learning-rate range test on ``directory/train`` after ``finetune`` (the head alone, on cached
    features; ``unfreeze``: every layer), with the settings of ``config`` (a ``RunConfig``; keyword
    ``settings`` change it); writes ``results/lr_find.png``. The same data and ``seed`` give the same
    suggestion (rule ``suggest``); its ``suggestion`` is None when the loss never fell. Returns the
    ``LRFinder``."""
    config = RunConfig.build(config, **settings)
    root = data_root(directory, config.sample)
    need_dir(os.path.join(root, "train"), "run 'dl1 prepare DIR' first")
    model_args = config.model_args()
    model_args["weights"] = weights_arg(config.weights)
    import keras

    from dl1.models.classifier import build_classifier

    results = Results(root)
    keras.utils.set_random_seed(config.seed)  # new heads' weights and dropout repeat from run to run
    model = build_classifier(config.arch, cache_dir=results.cache_dir, **model_args)
    batches = model.get_batches(os.path.join(root, "train"), batch_size=config.batch_size, seed=config.seed)
    model.finetune(batches)
    if config.unfreeze:
        model.unfreeze()
    model.compile()
    return model.lr_find(batches, start_lr=config.start_lr, end_lr=config.end_lr, num_steps=config.num_steps,
                         fname=results.file(Results.LR_FIND_PNG), cache="auto" if config.cache else False,
                         verbose=config.verbose, suggest=config.suggest, seed=config.seed)


EXPORT_FORMATS = {"keras": (".keras", Results.EXPORT), "onnx": (".onnx", Results.EXPORT_ONNX)}


@writes_under("export")
def export(directory, sample=False, weights=None, output=None, format="keras"):
    """The trained model as one ``.keras`` file (``results/model.keras`` or ``output``) that plain Keras
    loads without dl1, the class names beside it; or with ``format='onnx'`` one ``.onnx`` file
    (``results/model.onnx``) that ONNX Runtime runs without dl1, Keras or PyTorch, the class names in its
    metadata. Returns the path."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    suffix, default = EXPORT_FORMATS[format]
    root = data_root(directory, sample)
    out = output
    if out is not None and not str(out).endswith(suffix):
        raise ConfigError(f"-o {out}: the file name must end in {suffix} (--format {format})")
    model, results, _ = load_trained(root, weights)
    return model.export(out or results.file(default))


def load_trained(root, weights_file=None):
    """``(model, results, record)``: the model ``finetune`` trained in ``root`` (the architecture, size,
    policy and class names its ``dl1-model.json`` records), with the weights of its last epoch (or
    ``weights_file``)."""
    from dl1.models.classifier import build_classifier

    results = Results(root, create=False)
    record = results.read_model()
    if record.size is None:
        raise DL1Error(f"{results.model_file} does not say the input size: run 'dl1 finetune' again")
    path = weights_file or results.file(record.weights or "")
    if not os.path.isfile(path):
        raise DL1Error(f"weights file not found: {path}; run 'dl1 finetune' (or give --weights)")
    from dl1.nn.weightfiles import describe

    info = describe(path)  # before anything is built: a damaged, foreign or other-class file is one line
    if info.last_units is not None and info.last_units != len(record.classes):
        raise DL1Error(f"{path} holds a model with {info.last_units} outputs but {results.model_file} lists "
                       f"{len(record.classes)} classes ({', '.join(record.classes[:6])}"
                       f"{', ...' if len(record.classes) > 6 else ''}): give the weights trained on these classes")
    model = build_classifier(record.arch, weights=None, size=tuple(record.size), verbose=False,
                             mixed_precision=record.policy or False, cache_dir=results.cache_dir)
    model.ft(len(record.classes))
    model.model.load_weights(path)
    model.classes = list(record.classes)
    return model, results, record


# ---- predict ---------------------------------------------------------------------------------------------
def test_folder(directory, sample=False):
    """The test images of ``directory`` (``DIR/sample`` has no test set of its own: then ``DIR/test``)."""
    test = os.path.join(data_root(directory, sample), "test")
    return test if os.path.isdir(test) or not sample else os.path.join(directory, "test")


@writes_under("predict")
def predict(directory, sample=False, weights=None, batch_size=64, valid=True, tta=1):
    """Probabilities for ``test/`` (and ``valid/``) under ``results/``; returns the test predictions.
    ``tta=N``: each the mean over the original and N-1 flipped/shifted versions."""
    checked("--batch-size", batch_size, at_least(1))
    checked("--tta", tta, at_least(1))
    root = data_root(directory, sample)
    test = test_folder(directory, sample)
    need_dir(test, "run 'dl1 prepare DIR' first")
    model, results, record = load_trained(root, weights)
    images = sum(len(files) for _, _, files in os.walk(test)) + sum(
        len(files) for _, _, files in os.walk(os.path.join(root, "valid")))
    results.check_room(images * (4 * len(record.classes) + 64), "the predictions")  # before the work
    batches, preds = model.test(test, batch_size=batch_size, tta=tta)
    path = results.save(Results.TEST_PREDS, preds)
    results.save(Results.TEST_FILENAMES, batches.filenames)
    print(f"Predicted {len(preds)} test images{f' (TTA x{tta})' if tta > 1 else ''} -> {path}")
    valid_dir = os.path.join(root, "valid")
    if valid and os.path.isdir(valid_dir):
        vb = model.get_batches(valid_dir, shuffle=False, batch_size=batch_size)
        vp = model.predict_tta(vb, n=tta) if tta > 1 else model.predict_batches(vb)
        path = results.save(Results.VALID_PREDS, vp)
        results.save(Results.VALID_FILENAMES, vb.filenames)
        results.save(Results.VALID_LABELS, vb.classes)
        acc = float((vp.argmax(1) == vb.classes).mean())
        print(f"Predicted {len(vp)} validation images (accuracy {acc:.3f}) -> {path}")
    return preds


# ---- classify --------------------------------------------------------------------------------------------
def prediction_table(df, top=3):
    """The rows of ``predict_files``' DataFrame as a text table: the image, its predicted class and
    probability, then every class's probability (or, past 6 classes, the ``top`` most likely ones)."""
    import numpy as np

    classes = list(df.columns)
    wide = len(classes) <= 6
    head = ["image", "class", "probability"] + (classes if wide else [f"top {top}"])
    rows = []
    for path, probs in zip(df.index, df.to_numpy(), strict=True):
        best = int(probs.argmax())
        rest = [f"{p:.4f}" for p in probs] if wide else \
            ["  ".join(f"{classes[i]} {probs[i]:.4f}" for i in np.argsort(-probs, kind="stable")[:top])]
        rows.append([str(path), classes[best], f"{probs[best]:.4f}"] + rest)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head] + rows)


@writes_under("classify", when=_csv_inside)
def classify(directory, paths, sample=False, weights=None, tta=1, batch_size=32, csv=None):
    """Class probabilities for image files and folders (``paths``) with the model ``finetune`` trained in
    ``directory`` (``predict_files``): a table on the terminal, and with ``csv`` a CSV file (the image's
    path, then one column per class). Files that are not readable images are named and skipped. Returns the
    DataFrame."""
    checked("--tta", tta, at_least(1))
    checked("--batch-size", batch_size, at_least(1))
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    missing = [os.fspath(p) for p in paths if not os.path.exists(p)]
    if missing:  # before the model is loaded: a mistyped name costs nothing
        raise DL1Error(f"not found: {', '.join(missing)}")
    model, _, _ = load_trained(data_root(directory, sample), weights)
    df = model.predict_files(paths, batch_size=batch_size, tta=tta)
    print(prediction_table(df))
    if csv:
        write_text(csv, df.to_csv(float_format="%.6g"))
        print(f"Wrote {csv}: {len(df)} rows, one column per class ({', '.join(df.columns[:6])}"
              f"{', ...' if len(df.columns) > 6 else ''})")
    return df


# ---- app -------------------------------------------------------------------------------------------------
APP_ENGINES = ("auto", "onnx", "keras")


def validation_examples(root, per_class=4, limit=24):
    """Up to ``per_class`` images of each class folder of ``root/valid`` (``limit`` in all), as
    ``(path, 'class/file')`` pairs: the app's gallery."""
    from dl1.data.images import is_hidden_or_junk, list_images

    valid = os.path.join(root, "valid")
    if not os.path.isdir(valid):
        return []
    found = []
    for name in sorted(n for n in os.listdir(valid) if not is_hidden_or_junk(n)):
        if os.path.isdir(os.path.join(valid, name)):
            images, _ = list_images(os.path.join(valid, name))
            found += [(os.path.join(valid, name, f), f"{name}/{f}") for f in images[:per_class]]
    return found[:limit]


def check_engine(engine, weights=None):
    """A ConfigError when ``engine`` is not one of ``APP_ENGINES`` or cannot go with ``weights``."""
    if engine not in APP_ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(APP_ENGINES)}, not {engine!r}")
    if engine == "onnx" and weights is not None:
        raise ConfigError("--weights picks the Keras model's weights and the ONNX file holds its own: give one "
                          "of --weights and --engine onnx")


def app_engine(root, weights=None, engine="auto"):
    """What the app serves for the model trained in ``root``: the exported ``results/model.onnx`` (ONNX
    Runtime, no training stack) when there is one at least as new as the weights, else the Keras model
    (``engine='onnx'``/``'keras'`` insists on one). Returns the ``dl1.serve.engines`` object."""
    from dl1.serve.engines import KerasEngine, OnnxEngine

    check_engine(engine, weights)
    results = Results(root, create=False)
    record = results.read_model()
    onnx = results.file(Results.EXPORT_ONNX)
    if engine != "keras" and weights is None and os.path.isfile(onnx):
        trained = results.file(record.weights or "")
        if engine == "onnx" or not os.path.isfile(trained) or os.path.getmtime(onnx) >= os.path.getmtime(trained):
            served = OnnxEngine(onnx)
            if list(served.classes) != list(record.classes):
                raise DL1Error(f"{onnx} has the classes {served.classes} but {results.model_file} says "
                               f"{record.classes}: run 'dl1 export DIR --format onnx' again")
            return served
        note("%s is older than %s: serving the Keras model ('dl1 export DIR --format onnx' updates it)",
             onnx, trained)
    elif engine == "onnx":
        raise DL1Error(f"no {onnx} to serve: run 'dl1 export DIR --format onnx' first")
    model, _, _ = load_trained(root, weights)
    return KerasEngine(model)


def port_number(value):
    """A ``checked`` test: a TCP port, 1 to 65535."""
    return at_least(1)(value) or (None if value <= 65535 else "must be 65535 or less")


def app(directory, sample=False, weights=None, port=7860, host="127.0.0.1", engine="auto"):
    """Serve the model trained in ``directory`` as a web app on ``host``:``port`` until interrupted (Gradio,
    the ``dl1[app]`` extra): upload a photo or pick a validation image, see the class probabilities."""
    from dl1.serve.app import require_gradio, serve

    checked("--port", port, port_number)
    check_engine(engine, weights)
    require_gradio()  # before the model is loaded: the missing extra is the first thing said
    root = data_root(directory, sample)
    served = app_engine(root, weights, engine)
    title = f"dl1: {os.path.basename(os.path.abspath(root))}"
    running = serve(served, validation_examples(root), host=host, port=port, title=title)
    print(f"Serving {len(served.classes)} classes ({', '.join(served.classes[:6])}"
          f"{', ...' if len(served.classes) > 6 else ''}) with {served.name} at http://{host}:{port}/ "
          "(Ctrl-C stops)", flush=True)
    running.block_thread()
    return running


# ---- inspect ---------------------------------------------------------------------------------------------
@writes_under("inspect")
def inspect(directory, sample=False, n_view=4, seed=0):
    """PNGs of right, wrong and uncertain validation predictions, the confusion matrix and the log-loss
    curve; prints the counts and the best clip value. Returns the files written."""
    checked("--n-view", n_view, at_least(1))
    root = data_root(directory, sample)
    results = Results(root, create=False)
    record = results.read_model()
    show_history(results)
    probs, filenames, labels = results.load(
        [Results.VALID_PREDS, Results.VALID_FILENAMES, Results.VALID_LABELS], "dl1 predict DIR")
    classes = record.classes
    sel, _, written = save_inspection(os.path.join(root, "valid"), list(filenames), probs, labels, classes,
                                      results.path, n_view=n_view, seed=seed)
    plot_log_loss(results.file(Results.LOG_LOSS_PNG))
    written.append(results.file(Results.LOG_LOSS_PNG))
    interp = Interpretation(probs, labels, list(filenames), os.path.join(root, "valid"), classes)
    interp.plot_top_losses(min(9, len(labels)), fname=results.file(Results.TOP_LOSSES_PNG))
    written.append(results.file(Results.TOP_LOSSES_PNG))
    confused = interp.most_confused(min_count=1)
    written.append(write_most_confused(confused, results.file(Results.MOST_CONFUSED)))
    print(format_most_confused(confused))
    print(f"Found {sel['n_correct']} correct labels and {sel['n_incorrect']} incorrect labels")
    print("(confusion matrix above: rows are the true classes, columns the predicted ones: "
          + ", ".join(classes) + ")")
    mx, scores = best_clip(labels, probs)
    print(f"Validation log loss: {log_loss_score(labels, probs):.4f} unclipped, "
          f"{scores[mx]:.4f} clipped at {mx} (best clip)")
    print("Wrote " + ", ".join(os.path.basename(w) for w in written) + f" in {results.path}")
    return written


def show_history(results, last=5):
    """Print the last ``last`` rows of ``results/history.csv`` and where the training curves are."""
    from dl1.train.history import COLUMNS, CURVES_NAME, FILE_NAME, curves_behind, draw_curves, read_history

    rows = read_history(results.path)
    if not rows:
        return rows
    if curves_behind(results.path):  # a run stopped between two redraws
        try:
            draw_curves(rows, results.file(CURVES_NAME))  # the rows just read, not the file again
        except OSError as e:
            warn("cannot redraw the training curves in %s (%s)", results.path, e.strerror or e)
    print(f"Training history ({len(rows)} epoch(s), {results.file(FILE_NAME)}; last {min(last, len(rows))}):")
    table = [COLUMNS] + [[_shown(row[c]) for c in COLUMNS] for row in rows[-last:]]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for r in table:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    curves = results.file(CURVES_NAME)
    if os.path.isfile(curves):
        print(f"Training curves: {curves}")
    return rows


def _shown(value):
    if isinstance(value, (str, int)):
        return str(value)
    return "-" if value != value else f"{value:.4g}"


# ---- the feature cache -----------------------------------------------------------------------------------
@writes_under("cache", when=lambda d, sample=False, clear=False: clear)
def feature_cache(directory, sample=False, clear=False):
    """Show (or with ``clear`` empty) the frozen-feature cache of ``directory``; returns its files."""
    from dl1.train.cachedir import cache_files

    folder = Results(data_root(directory, sample), create=False).cache_dir
    files = cache_files(folder)
    total = sum(size for _, size, _ in files)
    if clear:
        for path, _, _ in files:
            os.remove(path)
        print(f"Removed {len(files)} feature file(s) ({total / 2**20:.0f} MB) from {folder}")
    else:
        print(f"{folder}: {len(files)} feature file(s), {total / 2**20:.0f} MB (--clear removes them; "
              "they are recomputed when needed)")
    return files


# ---- submit ----------------------------------------------------------------------------------------------
def clip_value(value, results):
    """A clip value from ``'auto'`` (best on the validation set), ``'none'`` or a number in [0.5, 1]."""
    text = str(value)
    if text == "auto":
        labels, probs = results.load([Results.VALID_LABELS, Results.VALID_PREDS], "dl1 predict DIR")
        mx, _ = best_clip(labels, probs)
        print(f"Clip chosen on the validation set: {mx}")
        return mx
    if value is None or text.lower() == "none":
        return None
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"--clip must be a number, 'auto' or 'none', not {text!r}") from None
    if not 0.5 <= number <= 1.0:
        raise ConfigError(f"--clip must be between 0.5 and 1 (probabilities go to [1-clip, clip]), not {number}")
    return number


@writes_under("submit")
def submit(directory, clip="0.95", output=None, positive=None, upload=False, message=None, competition=None,
           sample=False):
    """``results/submission.csv`` from the test predictions, validated against ``test/``; with ``upload``
    also sent to Kaggle (the competition of ``directory``). ``sample``: the predictions of the model
    trained with ``--sample`` (``DIR/sample/results``). Returns the file's path."""
    if upload:  # before anything is read or written: a refused upload leaves no file behind
        competition = upload_check(directory, message, competition)
    root = data_root(directory, sample)
    results = Results(root, create=False)
    record = results.read_model([os.path.join(root, "train"), os.path.join(root, "valid")])
    preds, filenames = results.load([Results.TEST_PREDS, Results.TEST_FILENAMES], "dl1 predict DIR")
    classes = record.classes
    clip = clip_value(clip, results)
    out = output or results.file(Results.SUBMISSION)
    test = test_folder(directory, sample)
    if len(classes) == 2:
        positive = positive or classes[1]
        if positive not in classes:
            raise ConfigError(f"--positive {positive} is not one of the classes {classes}")
        df = binary_submission(preds, filenames, clip=clip, column=classes.index(positive))
        what = f"label = P({positive})"
    else:
        df = multiclass_submission(preds, filenames, classes, clip=clip, expected=test)
        what = "one column per class"
    write_submission(df, out, expected=test)
    print(f"Wrote {out}: {len(df)} rows, {what}, valid for {test}")
    if upload:
        print(kaggle_submit(out, message, competition).strip())
    return out


def upload_check(directory, message, competition=None):
    """Whether ``submit --upload`` can upload, asked before anything is written: a message (a usage error
    without one), the kaggle command and credentials (``KaggleError``). Returns the competition."""
    if not message:
        raise ConfigError("--upload needs a message: -m 'what you changed'")
    kaggle_command()
    if not find_credentials():
        raise KaggleError(credentials_help())
    return resolve_competition(directory, competition)


def validate(file, test=None):
    """``(ok, message)`` for a submission file, checked against the images of ``test`` when given."""
    try:
        df = validate_submission(file, expected=test)
    except SubmissionError as e:
        return False, f"INVALID: {e}"
    checked = f" against {test}" if test else ""
    return True, f"OK: {file} has {len(df)} rows, columns {', '.join(map(str, df.columns))}{checked}"


@writes_under("kaggle download")
def kaggle_download(directory, competition=None, force=False):
    """A competition's files into ``directory`` through the official ``kaggle`` command."""
    files = download(directory, competition, force=force)
    print(f"In {directory}: {', '.join(files)}. Next: dl1 prepare {directory}")
    return files
