"""The Dogs-vs-Cats main job, one function per step: what ``dl1 prepare|finetune|predict|inspect|submit``
run and what the Redux notebook calls. Each prints the lines a user reads and returns what it made.

    prepare(DIR)  ->  finetune(DIR)  ->  predict(DIR)  ->  inspect(DIR)  ->  submit(DIR)
"""

import os
import time

from dl1.data.prepare import prepare_data
from dl1.inspect.losses import Interpretation, format_most_confused, write_most_confused
from dl1.inspect.predictions import plot_log_loss, save_inspection
from dl1.io.errors import DL1Error, SubmissionError
from dl1.io.log import note
from dl1.kaggle.cli import download, resolve_competition
from dl1.kaggle.cli import submit as kaggle_submit
from dl1.kaggle.submission import (
    best_clip,
    binary_submission,
    log_loss_score,
    multiclass_submission,
    validate_submission,
    write_submission,
)
from dl1.workflow.results import Results

# Keras (and PyTorch) are imported only inside the steps that run a model, so that ``dl1 prepare``,
# ``dl1 submit`` and ``dl1 validate`` start in a fraction of a second.

DEFAULT_LABEL_REGEX = r"^([A-Za-z]+)[._-]"


def data_root(directory, sample=False):
    """The folder a step works on: ``directory``, or ``directory/sample`` with ``sample``."""
    return os.path.join(directory, "sample") if sample else os.fspath(directory)


def _need_dir(path, hint):
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


def _mixed(value):
    return {"on": True, "off": False, "auto": "auto"}.get(value, value)


# ---- prepare ---------------------------------------------------------------------------------------------
def prepare(directory, valid=2000, sample_train=200, sample_valid=50, seed=0, label_regex=DEFAULT_LABEL_REGEX,
            plural=True, check_images=True, group_file=None, group_column=None, group_image_column="img"):
    """Raw Kaggle data (folders or zips) into the course layout; safe to re-run. Returns the report."""
    report = prepare_data(directory, valid=valid, sample_train=sample_train, sample_valid=sample_valid,
                          seed=seed, label_regex=label_regex, plural=plural, check_images=check_images,
                          group_file=group_file, group_column=group_column,
                          group_image_column=group_image_column)
    if report.unreadable:
        print(f"Set aside {len(report.unreadable)} unreadable image(s) under "
              f"{os.path.join(directory, 'unreadable')}: {', '.join(report.unreadable[:5])}")
    print(report.summary())
    return report


# ---- finetune --------------------------------------------------------------------------------------------
def _epoch_weights_saver(vgg, results, info, keep, offset=0):
    """A Keras callback that saves ``ft<epoch>.h5`` (1-based) and the model record after each epoch, and
    keeps only the ``keep`` newest such files."""
    import keras

    class SaveEpochWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            name = results.epoch_weights_name(offset + epoch + 1)
            vgg.model.save_weights(results.file(name))
            info.update(weights=name, epochs_done=offset + epoch + 1, val_accuracy=(logs or {}).get("val_accuracy"))
            results.write_model(info)
            for path in results.prune_epoch_weights(keep, protect=[results.file(name)]):
                note("removed %s (--keep %d)", os.path.basename(path), keep)

    return SaveEpochWeights()


def finetune(directory, sample=False, epochs=1, batch_size=64, lr=0.001, weights="imagenet", size=224, seed=0,
             cache=True, checkpoint_every=None, restart=False, mixed_precision="auto", jit=False, verbose=1,
             keep=2, one_cycle=False, unfreeze=False, freeze_epochs=1, arch="vgg16"):
    """The 7-line recipe on ``directory/train`` and ``directory/valid`` with the architecture ``arch``
    (``dl1.models.backbones.ARCHITECTURES``): ``ft<N>.h5`` after each epoch (the ``keep`` newest kept),
    ``dl1-model.json`` (which records ``arch``), and a checkpoint that a re-run resumes from.
    ``one_cycle``: a one-cycle schedule peaking at ``lr``; ``unfreeze``: ``fine_tune`` (``freeze_epochs``
    head epochs, then ``epochs`` with every layer training at discriminative rates, ``lr`` the base rate).
    Under ``torchrun`` every process trains its share of each batch (``batch_size`` is the global batch)
    and only rank 0 writes files and prints."""
    import keras

    from dl1.train import distributed

    root = data_root(directory, sample)
    for split in ("train", "valid"):
        _need_dir(os.path.join(root, split), "run 'dl1 prepare DIR' first")
    cls = _architecture(arch)
    main = distributed.is_main()
    distributed.pin_device()
    results = Results(root)
    base = weights
    keras.utils.set_random_seed(seed)  # random weights (weights=none, new heads) repeat from run to run
    vgg = cls(weights=weights_arg(weights), size=size, mixed_precision=_mixed(mixed_precision),
              jit_compile=True if jit else "auto", verbose=main)
    batches = vgg.get_batches(os.path.join(root, "train"), batch_size=batch_size, seed=seed)
    val_batches = vgg.get_batches(os.path.join(root, "valid"), batch_size=batch_size * 2, shuffle=False)
    vgg.finetune(batches)
    vgg.compile(lr=lr)
    checkpoint = results.file(Results.CHECKPOINT)
    if restart and main:
        stale = [checkpoint] + [checkpoint[:-len(".npz")] + f"-{phase}.npz" for phase in ("head", "unfrozen")]
        for path in stale:
            if os.path.exists(path):
                os.remove(path)
    distributed.barrier()
    info = {"arch": cls.arch if getattr(cls, "arch", None) else arch.lower(), "classes": vgg.classes,
            "size": list(vgg.size), "base_weights": base, "lr": lr,
            "batch_size": batch_size, "epochs": epochs, "policy": vgg.policy}
    old = None if restart else results.read_model(required=False)
    if old and old.get("classes") == info["classes"] and old.get("size") == info["size"] \
            and old.get("arch", "vgg16") == info["arch"]:
        info.update({k: old[k] for k in ("weights", "epochs_done", "val_accuracy") if k in old})
    start = time.time()
    common = {"cache": cache, "checkpoint": checkpoint, "checkpoint_every": checkpoint_every, "verbose": verbose}
    if unfreeze:
        info.update(schedule="fine_tune", freeze_epochs=freeze_epochs)
        history = _fine_tune(vgg, batches, val_batches, epochs, freeze_epochs, lr, results, info, keep, common)
    elif one_cycle:
        info.update(schedule="one_cycle")
        history = vgg.fit_one_cycle(batches, val_batches, epochs, max_lr=lr,
                                    callbacks=[_epoch_weights_saver(vgg, results, info, keep)], **common)
    else:
        history = vgg.fit(batches, val_batches, nb_epoch=epochs,
                          callbacks=[_epoch_weights_saver(vgg, results, info, keep)], **common)
    if not main:
        return info
    results.write_model(info)
    acc = history.history.get("val_accuracy") or [info.get("val_accuracy")]
    print(f"Fine-tuned {info.get('epochs_done', 0)} epoch(s) in {time.time() - start:.0f}s; "
          f"validation accuracy {acc[-1] if acc[-1] is not None else float('nan'):.3f}; "
          f"weights {results.file(info.get('weights', '?'))}")
    return info


def _architecture(arch):
    """The model class for ``arch`` (a name of ``dl1.models.backbones.ARCHITECTURES``), or one line."""
    from dl1.models.backbones import architecture

    try:
        return architecture(arch)
    except ValueError as e:
        raise DL1Error(str(e)) from None


def _fine_tune(vgg, batches, val_batches, epochs, freeze_epochs, lr, results, info, keep, common):
    """``vgg.fine_tune`` with per-epoch weight files numbered across both phases."""
    import keras

    savers = [_epoch_weights_saver(vgg, results, info, keep), _epoch_weights_saver(vgg, results, info, keep,
                                                                                   offset=freeze_epochs)]

    class PhaseSaver(keras.callbacks.Callback):  # head epochs (some layers frozen), then the unfrozen ones
        def on_epoch_end(self, epoch, logs=None):
            unfrozen = all(layer.trainable for layer in vgg.model.layers)
            savers[1 if unfrozen else 0].on_epoch_end(epoch, logs)

    return vgg.fine_tune(batches, val_batches, epochs=epochs, freeze_epochs=freeze_epochs, base_lr=lr,
                         callbacks=[PhaseSaver()], **common)


def lr_find(directory, sample=False, batch_size=64, weights="imagenet", size=224, seed=0, cache=True,
            mixed_precision="auto", jit=False, verbose=1, unfreeze=False, start_lr=1e-7, end_lr=10.0,
            num_steps=100, arch="vgg16"):
    """The learning-rate range test on ``directory/train`` after ``finetune`` (the head alone, on cached
    features; ``unfreeze``: every layer); writes ``results/lr_find.png``. Returns the ``LRFinder``."""
    root = data_root(directory, sample)
    _need_dir(os.path.join(root, "train"), "run 'dl1 prepare DIR' first")
    results = Results(root)
    vgg = _architecture(arch)(weights=weights_arg(weights), size=size, mixed_precision=_mixed(mixed_precision),
                jit_compile=True if jit else "auto")
    batches = vgg.get_batches(os.path.join(root, "train"), batch_size=batch_size, seed=seed)
    vgg.finetune(batches)
    if unfreeze:
        for layer in vgg.model.layers:
            layer.trainable = True
    vgg.compile()
    return vgg.lr_find(batches, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                       fname=results.file(Results.LR_FIND_PNG), cache="auto" if cache else False,
                       verbose=verbose)


def export(directory, sample=False, weights=None, output=None):
    """The trained model as one ``.keras`` file (``results/model.keras`` or ``output``) that plain Keras
    loads without dl1; the class names beside it. Returns the path."""
    root = data_root(directory, sample)
    vgg, results, _ = load_trained(root, weights)
    out = output or results.file(Results.EXPORT)
    if not str(out).endswith(".keras"):
        raise DL1Error(f"-o {out}: the file name must end in .keras")
    return vgg.export(out)


def load_trained(root, weights_file=None):
    """``(vgg, results, info)``: the model ``finetune`` trained in ``root`` (architecture ``info['arch']``,
    VGG16 for records written before it was recorded), with its class names."""
    from dl1.models.backbones import architecture

    results = Results(root)
    info = results.read_model()
    path = weights_file or results.file(info.get("weights") or "")
    if not os.path.isfile(path):
        raise DL1Error(f"weights file not found: {path}; run 'dl1 finetune' (or give --weights)")
    try:
        cls = architecture(info.get("arch"))
    except ValueError as e:
        raise DL1Error(f"{results.model_file}: {e}") from None
    vgg = cls(weights=None, size=tuple(info["size"]), verbose=False,
              mixed_precision=info.get("policy") or False)
    vgg.ft(len(info["classes"]))
    vgg.model.load_weights(path)
    vgg.classes = list(info["classes"])
    return vgg, results, info


# ---- predict ---------------------------------------------------------------------------------------------
def predict(directory, sample=False, weights=None, batch_size=64, valid=True, tta=1):
    """Probabilities for ``test/`` (and ``valid/``) under ``results/``; returns the test predictions.
    ``tta=N``: each the mean over the original and N-1 flipped/shifted versions."""
    from dl1.train.fit import predict_batches

    root = data_root(directory, sample)
    test = os.path.join(root, "test")
    if not os.path.isdir(test) and sample:
        test = os.path.join(directory, "test")  # the sample has no test set of its own
    _need_dir(test, "run 'dl1 prepare DIR' first")
    vgg, results, _ = load_trained(root, weights)
    if tta < 1:
        raise DL1Error(f"--tta must be 1 or more (1: no augmentation), not {tta}")
    batches, preds = vgg.test(test, batch_size=batch_size, tta=tta)
    path = results.save(Results.TEST_PREDS, preds)
    results.save(Results.TEST_FILENAMES, batches.filenames)
    print(f"Predicted {len(preds)} test images{f' (TTA x{tta})' if tta > 1 else ''} -> {path}")
    valid_dir = os.path.join(root, "valid")
    if valid and os.path.isdir(valid_dir):
        vb = vgg.get_batches(valid_dir, shuffle=False, batch_size=batch_size)
        vp = vgg.predict_tta(vb, n=tta) if tta > 1 else predict_batches(vgg.model, vb)
        path = results.save(Results.VALID_PREDS, vp)
        results.save(Results.VALID_FILENAMES, vb.filenames)
        results.save(Results.VALID_LABELS, vb.classes)
        acc = float((vp.argmax(1) == vb.classes).mean())
        print(f"Predicted {len(vp)} validation images (accuracy {acc:.3f}) -> {path}")
    return preds


# ---- inspect ---------------------------------------------------------------------------------------------
def inspect(directory, sample=False, n_view=4, seed=0):
    """PNGs of right, wrong and uncertain validation predictions, the confusion matrix and the log-loss
    curve; prints the counts and the best clip value. Returns the files written."""
    root = data_root(directory, sample)
    results = Results(root)
    info = results.read_model()
    probs, filenames, labels = results.load(
        [Results.VALID_PREDS, Results.VALID_FILENAMES, Results.VALID_LABELS], "dl1 predict DIR")
    classes = info["classes"]
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
        raise DL1Error(f"--clip must be a number, 'auto' or 'none', not {text!r}") from None
    if not 0.5 <= number <= 1.0:
        raise DL1Error(f"--clip must be between 0.5 and 1 (probabilities go to [1-clip, clip]), not {number}")
    return number


def submit(directory, clip="0.95", output=None, positive=None, upload=False, message=None, competition=None):
    """``results/submission.csv`` from the test predictions, validated against ``test/``; with ``upload``
    also sent to Kaggle. Returns the file's path."""
    results = Results(directory)
    info = results.read_model([os.path.join(directory, "train"), os.path.join(directory, "valid")])
    preds, filenames = results.load([Results.TEST_PREDS, Results.TEST_FILENAMES], "dl1 predict DIR")
    classes = info["classes"]
    clip = clip_value(clip, results)
    out = output or results.file(Results.SUBMISSION)
    if len(classes) == 2:
        positive = positive or classes[1]
        if positive not in classes:
            raise DL1Error(f"--positive {positive} is not one of the classes {classes}")
        df = binary_submission(preds, filenames, clip=clip, column=classes.index(positive))
        what = f"label = P({positive})"
    else:
        df = multiclass_submission(preds, filenames, classes, clip=clip)
        what = "one column per class"
    test = os.path.join(directory, "test")
    write_submission(df, out, expected=test)
    print(f"Wrote {out}: {len(df)} rows, {what}, valid for {test}")
    if upload:
        if not message:
            raise DL1Error("--upload needs a message: -m 'what you changed'")
        print(kaggle_submit(out, message, resolve_competition(directory, competition)).strip())
    return out


def validate(file, test=None):
    """``(ok, message)`` for a submission file, checked against the images of ``test`` when given."""
    try:
        df = validate_submission(file, expected=test)
    except SubmissionError as e:
        return False, f"INVALID: {e}"
    checked = f" against {test}" if test else ""
    return True, f"OK: {file} has {len(df)} rows, columns {', '.join(map(str, df.columns))}{checked}"


def kaggle_download(directory, competition=None, force=False):
    """A competition's files into ``directory`` through the official ``kaggle`` command."""
    files = download(directory, competition, force=force)
    print(f"In {directory}: {', '.join(files)}. Next: dl1 prepare {directory}")
    return files
