"""``dl1``: the course's main job from the command line, one subcommand per step.

    dl1 sample data/redux                 # a synthetic set in the raw Kaggle layout (or --layout course)
    dl1 kaggle download data/redux        # or the real competition files (needs Kaggle credentials)
    dl1 prepare data/redux                # class folders, valid split, sample, test/unknown, results/
    dl1 finetune data/redux               # the 7-line recipe; weights per epoch under results/
    dl1 predict data/redux                # probabilities for test/ (and valid/) under results/
    dl1 inspect data/redux                # PNGs of right and wrong answers, confusion matrix
    dl1 submit data/redux                 # results/submission.csv, validated; --upload -m MSG sends it
    dl1 validate FILE --test DIR/test     # check a submission file
    dl1 demo                              # all of the above on the built-in sample

Errors caused by input (missing folders, unreadable files, missing weights or credentials) are printed
as one line; ``DL1_DEBUG=1`` shows the traceback of anything else.
"""

import argparse
import json
import os
import sys
import time

from .errors import DL1Error

MODEL_FILE = "dl1-model.json"


# ---- helpers ---------------------------------------------------------------------------------------
def _root(args):
    """The data folder the step works on: DIR, or DIR/sample with --sample."""
    return os.path.join(args.dir, "sample") if getattr(args, "sample", False) else args.dir


def _results(root):
    path = os.path.join(root, "results")
    os.makedirs(path, exist_ok=True)
    return path


def _need_dir(path, hint):
    if not os.path.isdir(path):
        raise DL1Error(f"folder not found: {path} ({hint})")


def _read_model(results, classes_from=None):
    """What ``dl1 finetune`` recorded in ``results``; without that file (a model trained in a notebook)
    the class names can come from the class folders of ``classes_from`` (train/ or valid/)."""
    path = os.path.join(results, MODEL_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        for folder in classes_from or []:
            if os.path.isdir(folder):
                names = sorted(n for n in os.listdir(folder)
                               if os.path.isdir(os.path.join(folder, n)) and not n.startswith("."))
                if names:
                    return {"classes": names}
        raise DL1Error(f"no trained model in {results}: run 'dl1 finetune' first") from None
    except ValueError as e:
        raise DL1Error(f"{path} is damaged ({e}); run 'dl1 finetune' again") from None


def _write_model(results, info):
    from .atomic import write_text

    write_text(os.path.join(results, MODEL_FILE), json.dumps(info, indent=1))


def _weights_arg(value):
    if value is None or value.lower() in ("none", "random"):
        return None
    if value.lower() == "imagenet":
        return "imagenet"
    if not os.path.isfile(value):
        raise DL1Error(f"weights file not found: {value} (use imagenet, none or a file)")
    return value


def _mixed(args):
    value = getattr(args, "mixed_precision", "off")
    return {"on": True, "off": False, "auto": "auto"}.get(value, value)


def _positive_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


# ---- subcommands -----------------------------------------------------------------------------------
def cmd_sample(args):
    from .sample import write_sample

    counts = write_sample(args.dir, n=args.n, n_test=args.n_test, seed=args.seed, layout=args.layout,
                          max_side=args.max_size, force=args.force)
    for folder, n in sorted(counts.items()):
        print(f"  {os.path.join(args.dir, folder)}: {n} images")
    return 0


def cmd_prepare(args):
    from .prepare import prepare_data

    report = prepare_data(args.dir, valid=args.valid, sample_train=args.sample_train,
                          sample_valid=args.sample_valid, seed=args.seed, label_regex=args.label_regex,
                          plural=not args.no_plural, check_images=not args.no_check)
    if report.unreadable:
        print(f"Set aside {len(report.unreadable)} unreadable image(s) under "
              f"{os.path.join(args.dir, 'unreadable')}: {', '.join(report.unreadable[:5])}")
    print(report.summary())
    return 0


def _epoch_weights_saver(vgg, results, info):
    """A Keras callback that saves ``ft<epoch>.h5`` (1-based) and the model info after each epoch."""
    import keras

    class SaveEpochWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            name = f"ft{epoch + 1}.h5"
            vgg.model.save_weights(os.path.join(results, name))
            info.update(weights=name, epochs_done=epoch + 1, val_accuracy=(logs or {}).get("val_accuracy"))
            _write_model(results, info)

    return SaveEpochWeights()


def cmd_finetune(args):
    from vgg16 import Vgg16

    root = _root(args)
    for split in ("train", "valid"):
        _need_dir(os.path.join(root, split), "run 'dl1 prepare DIR' first")
    results = _results(root)
    weights = _weights_arg(args.weights)
    vgg = Vgg16(weights=weights, size=args.size, mixed_precision=_mixed(args),
                jit_compile=True if args.jit else "auto")
    batches = vgg.get_batches(os.path.join(root, "train"), batch_size=args.batch_size, seed=args.seed)
    val_batches = vgg.get_batches(os.path.join(root, "valid"), batch_size=args.batch_size * 2,
                                  shuffle=False)
    vgg.finetune(batches)
    vgg.compile(lr=args.lr)
    checkpoint = os.path.join(results, "checkpoint.npz")
    if args.restart and os.path.exists(checkpoint):
        os.remove(checkpoint)
    info = {"classes": vgg.classes, "size": list(vgg.size), "base_weights": args.weights,
            "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "policy": vgg.policy}
    previous = os.path.join(results, MODEL_FILE)
    if os.path.exists(previous) and not args.restart:
        try:
            with open(previous, encoding="utf-8") as f:
                old = json.load(f)
            if old.get("classes") == info["classes"] and old.get("size") == info["size"]:
                info.update({k: old[k] for k in ("weights", "epochs_done", "val_accuracy") if k in old})
        except (OSError, ValueError):
            pass
    start = time.time()
    history = vgg.fit(batches, val_batches, nb_epoch=args.epochs, cache=not args.no_cache,
                      checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                      callbacks=[_epoch_weights_saver(vgg, results, info)], verbose=args.verbose)
    _write_model(results, info)
    acc = history.history.get("val_accuracy") or [info.get("val_accuracy")]
    print(f"Fine-tuned {info.get('epochs_done', 0)} epoch(s) in {time.time() - start:.0f}s; "
          f"validation accuracy {acc[-1] if acc[-1] is not None else float('nan'):.3f}; "
          f"weights {os.path.join(results, info.get('weights', '?'))}")
    return 0


def _load_trained(root, weights_file=None):
    from vgg16 import Vgg16

    results = _results(root)
    info = _read_model(results)
    path = weights_file or os.path.join(results, info.get("weights") or "")
    if not os.path.isfile(path):
        raise DL1Error(f"weights file not found: {path}; run 'dl1 finetune' (or give --weights)")
    vgg = Vgg16(weights=None, size=tuple(info["size"]), verbose=False,
                mixed_precision=info.get("policy") or False)
    vgg.ft(len(info["classes"]))
    vgg.model.load_weights(path)
    vgg.classes = list(info["classes"])
    return vgg, results, info


def cmd_predict(args):
    from .arrays import save_array
    from .training import predict_batches

    root = _root(args)
    test = os.path.join(root, "test")
    if not os.path.isdir(test) and args.sample:
        test = os.path.join(args.dir, "test")  # the sample has no test set of its own
    _need_dir(test, "run 'dl1 prepare DIR' first")
    vgg, results, _ = _load_trained(root, args.weights)
    batches, preds = vgg.test(test, batch_size=args.batch_size)
    save_array(os.path.join(results, "test_preds.dat"), preds)
    save_array(os.path.join(results, "filenames.dat"), batches.filenames)
    print(f"Predicted {len(preds)} test images -> {os.path.join(results, 'test_preds.dat')}")
    valid = os.path.join(root, "valid")
    if os.path.isdir(valid) and not args.no_valid:
        vb = vgg.get_batches(valid, shuffle=False, batch_size=args.batch_size)
        vp = predict_batches(vgg.model, vb)
        save_array(os.path.join(results, "valid_preds.dat"), vp)
        save_array(os.path.join(results, "valid_filenames.dat"), vb.filenames)
        save_array(os.path.join(results, "valid_labels.dat"), vb.classes)
        acc = float((vp.argmax(1) == vb.classes).mean())
        print(f"Predicted {len(vp)} validation images (accuracy {acc:.3f}) -> "
              f"{os.path.join(results, 'valid_preds.dat')}")
    return 0


def _load_results(results, names, step):
    from .arrays import load_array

    out = []
    for name in names:
        path = os.path.join(results, name)
        if not os.path.exists(path):
            raise DL1Error(f"{path} not found: run '{step}' first")
        out.append(load_array(path))
    return out


def cmd_inspect(args):
    from .inspection import plot_log_loss, save_inspection
    from .submission import best_clip, log_loss_score

    root = _root(args)
    results = _results(root)
    info = _read_model(results)
    probs, filenames, labels = _load_results(
        results, ["valid_preds.dat", "valid_filenames.dat", "valid_labels.dat"], "dl1 predict DIR")
    classes = info["classes"]
    sel, _, written = save_inspection(os.path.join(root, "valid"), list(filenames), probs, labels, classes,
                                       results, n_view=args.n_view, seed=args.seed)
    plot_log_loss(os.path.join(results, "log_loss.png"))
    written.append(os.path.join(results, "log_loss.png"))
    print(f"Found {sel['n_correct']} correct labels and {sel['n_incorrect']} incorrect labels")
    print("(confusion matrix above: rows are the true classes, columns the predicted ones: "
          + ", ".join(classes) + ")")
    mx, scores = best_clip(labels, probs)
    print(f"Validation log loss: {log_loss_score(labels, probs):.4f} unclipped, "
          f"{scores[mx]:.4f} clipped at {mx} (best clip)")
    print("Wrote " + ", ".join(os.path.basename(w) for w in written) + f" in {results}")
    return 0


def _clip_value(text, results):
    if text == "auto":
        from .arrays import load_array
        from .submission import best_clip

        labels = load_array(os.path.join(results, "valid_labels.dat"))
        probs = load_array(os.path.join(results, "valid_preds.dat"))
        mx, _ = best_clip(labels, probs)
        print(f"Clip chosen on the validation set: {mx}")
        return mx
    if text.lower() == "none":
        return None
    value = float(text)
    if not 0.5 <= value <= 1.0:
        raise DL1Error(f"--clip must be between 0.5 and 1 (probabilities go to [1-clip, clip]), not {value}")
    return value


def cmd_submit(args):
    from .submission import binary_submission, multiclass_submission, write_submission

    root = args.dir
    results = _results(root)
    info = _read_model(results, [os.path.join(root, "train"), os.path.join(root, "valid")])
    preds, filenames = _load_results(results, ["test_preds.dat", "filenames.dat"], "dl1 predict DIR")
    classes = info["classes"]
    clip = _clip_value(args.clip, results)
    out = args.output or os.path.join(results, "submission.csv")
    if len(classes) == 2:
        positive = args.positive or classes[1]
        if positive not in classes:
            raise DL1Error(f"--positive {positive} is not one of the classes {classes}")
        df = binary_submission(preds, filenames, clip=clip, column=classes.index(positive))
        what = f"label = P({positive})"
    else:
        df = multiclass_submission(preds, filenames, classes, clip=clip)
        what = "one column per class"
    write_submission(df, out, expected=os.path.join(root, "test"))
    print(f"Wrote {out}: {len(df)} rows, {what}, valid for {os.path.join(root, 'test')}")
    if args.upload:
        from .kaggle_cli import resolve_competition, submit

        if not args.message:
            raise DL1Error("--upload needs a message: -m 'what you changed'")
        competition = resolve_competition(root, args.competition)
        print(submit(out, args.message, competition).strip())
    return 0


def cmd_validate(args):
    from .errors import SubmissionError
    from .submission import validate_submission

    try:
        df = validate_submission(args.file, expected=args.test)
    except SubmissionError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return 1
    checked = f" against {args.test}" if args.test else ""
    print(f"OK: {args.file} has {len(df)} rows, columns {', '.join(map(str, df.columns))}{checked}")
    return 0


def cmd_kaggle_download(args):
    from .kaggle_cli import download

    files = download(args.dir, args.competition, force=args.force)
    print(f"In {args.dir}: {', '.join(files)}. Next: dl1 prepare {args.dir}")
    return 0


def cmd_demo(args):
    from .sample import write_sample
    from .weights import have_imagenet_weights

    directory = args.dir
    print(f"== 1/6 A synthetic Kaggle-style data set in {directory}")
    if os.path.isdir(os.path.join(directory, "train")):
        print(f"   (reusing the one already there; delete {directory} to start afresh)")
    else:
        write_sample(directory, n=args.n, seed=args.seed)
    print("== 2/6 Preparing it (class folders, validation split, sample)")
    ns = argparse.Namespace(dir=directory, valid=max(2, args.n // 5), sample_train=min(40, args.n // 3),
                            sample_valid=min(10, args.n // 10), seed=args.seed,
                            label_regex=r"^([A-Za-z]+)[._-]", no_plural=False, no_check=False)
    cmd_prepare(ns)
    results = _results(directory)
    if have_imagenet_weights() and not args.stand_in:
        weights, size = "imagenet", 224
        print("== 3/6 ImageNet weights found: fine-tuning VGG16 at 224px")
    else:
        from .standin import make_standin_weights

        size = args.size
        weights = os.path.join(results, f"standin-vgg16-{size}px.h5")
        print("== 3/6 Notice: no ImageNet weights on this machine (offline?), so the demo uses stand-in "
              "weights (random VGG16 scaled to the data, see utils/standin.py); expect lower accuracy")
        if not os.path.exists(weights):
            make_standin_weights(weights, os.path.join(directory, "train"), size=size, seed=args.seed)
    ft = argparse.Namespace(dir=directory, sample=False, weights=weights, size=size, epochs=args.epochs,
                            batch_size=args.batch_size, lr=0.001, seed=args.seed, no_cache=False,
                            checkpoint_every=None, restart=False, verbose=2, mixed_precision="auto",
                            jit=False)
    cmd_finetune(ft)
    print("== 4/6 Predicting the test set")
    cmd_predict(argparse.Namespace(dir=directory, sample=False, weights=None, batch_size=args.batch_size,
                                   no_valid=False))
    print("== 5/6 Inspecting the validation results")
    cmd_inspect(argparse.Namespace(dir=directory, sample=False, n_view=4, seed=args.seed))
    print("== 6/6 Writing the Kaggle submission")
    cmd_submit(argparse.Namespace(dir=directory, clip="0.95", output=None, positive=None, upload=False,
                                  message=None, competition=None))
    _demo_picture(directory, results)
    return 0


def _demo_picture(directory, results):
    """A PNG of test images with their predicted class, and the score against the synthetic truth."""
    import numpy as np

    from .arrays import load_array
    from .inspection import plots_idx
    from .submission import parse_id

    info = _read_model(results)
    preds, filenames = load_array(os.path.join(results, "test_preds.dat")), load_array(
        os.path.join(results, "filenames.dat"))
    idx = np.arange(min(8, len(filenames)))
    titles = [f"{info['classes'][int(preds[i].argmax())]} {preds[i].max():.2f}" for i in idx]
    target = os.path.join(results, "demo_predictions.png")
    plots_idx(idx, list(filenames), os.path.join(directory, "test"), titles=titles, fname=target,
              figsize=(16, 5))
    truth = os.path.join(directory, "test_truth.csv")
    score = ""
    if os.path.exists(truth):
        import pandas as pd

        t = pd.read_csv(truth).set_index("id")["label"]
        pred = {parse_id(f): int(p.argmax()) for f, p in zip(filenames, preds, strict=True)}
        acc = np.mean([pred[i] == t[i] for i in t.index if i in pred])
        score = f"; accuracy on the synthetic test set {acc:.3f}"
    print(f"Done{score}. Results in {results}: submission.csv, demo_predictions.png, inspect_*.png, "
          "confusion_matrix.png")


# ---- argument parsing ----------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog="dl1", description="The fast.ai 2017 part 1 toolkit: the main job, "
                                "step by step (each subcommand has --help).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("sample", help="write a small synthetic cats/dogs image set",
                       description="Write a synthetic two-class image set, deterministic from --seed.")
    s.add_argument("dir", help="folder to write into")
    s.add_argument("--n", type=int, default=200, help="labelled images, half cats half dogs (default 200)")
    s.add_argument("--n-test", type=int, default=None, help="unlabelled test images (default n/4)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--layout", choices=["kaggle", "course"], default="kaggle",
                   help="kaggle: train/cat.N.jpg, test/N.jpg (default); course: train|valid/{cats,dogs}, "
                        "test/unknown")
    s.add_argument("--max-size", type=int, default=400, help="largest image side in pixels (default 400)")
    s.add_argument("--force", action="store_true", help="write even if the folders are not empty")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("prepare", help="class folders, validation split, sample, test/unknown, results/",
                       description="Shape raw Kaggle data (folders or zips) for Keras; safe to re-run.")
    s.add_argument("dir", help="folder holding train/ and test/ (or train.zip, test.zip)")
    s.add_argument("--valid", type=_positive_int, default=2000, help="images moved to valid/ (default 2000)")
    s.add_argument("--sample-train", type=_positive_int, default=200, help="copied to sample/train (200)")
    s.add_argument("--sample-valid", type=_positive_int, default=50, help="copied to sample/valid (50)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    s.add_argument("--label-regex", default=r"^([A-Za-z]+)[._-]",
                   help="regular expression whose first group is the class in a file name "
                        "(default: the leading letters, cat.1.jpg -> cat)")
    s.add_argument("--no-plural", action="store_true", help="class folders named cat/dog, not cats/dogs")
    s.add_argument("--no-check", action="store_true", help="skip the check that each image can be opened")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("finetune", help="the 7-line recipe on DIR/train and DIR/valid",
                       description="Fine-tune VGG16 on DIR/train, validating on DIR/valid; weights are "
                                   "saved per epoch as DIR/results/ftN.h5. Killed or interrupted, the same "
                                   "command resumes from DIR/results/checkpoint.npz.")
    s.add_argument("dir")
    s.add_argument("--sample", action="store_true", help="use DIR/sample/train and DIR/sample/valid")
    s.add_argument("--epochs", type=int, default=1, help="epochs in all (default 1)")
    s.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    s.add_argument("--lr", type=float, default=0.001, help="learning rate (default 0.001)")
    s.add_argument("--weights", default="imagenet", help="imagenet (default), none (random) or a file")
    s.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    s.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    s.add_argument("--no-cache", action="store_true", help="do not cache the frozen layers' outputs")
    s.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="also save a checkpoint every N batches")
    s.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    s.add_argument("--mixed-precision", choices=["auto", "on", "off"], default="auto",
                   help="bfloat16/float16 compute: auto = on when a CUDA GPU is present (default)")
    s.add_argument("--jit", action="store_true", help="compile the model with the backend's compiler")
    s.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity (default 1)")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("predict", help="probabilities for DIR/test (and DIR/valid) under DIR/results",
                       description="Predict DIR/test with the last fine-tuned weights; saves "
                                   "results/test_preds.dat, results/filenames.dat and the same for valid/.")
    s.add_argument("dir")
    s.add_argument("--sample", action="store_true", help="use the model trained with --sample")
    s.add_argument("--weights", default=None, help="weights file (default: the last epoch's)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--no-valid", action="store_true", help="skip the validation predictions")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("inspect", help="PNGs of right/wrong/uncertain predictions and the confusion matrix",
                       description="Save inspection plots of the validation predictions under DIR/results.")
    s.add_argument("dir")
    s.add_argument("--sample", action="store_true")
    s.add_argument("--n-view", type=int, default=4, help="images per plot (default 4)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("submit", help="write and validate DIR/results/submission.csv; --upload sends it",
                       description="Turn test predictions into a Kaggle CSV, validate it, optionally upload.")
    s.add_argument("dir")
    s.add_argument("--clip", default="0.95",
                   help="clip probabilities to [1-C, C] (default 0.95); 'auto' picks C on the validation "
                        "set; 'none' keeps them")
    s.add_argument("--positive", default=None, help="two classes: whose probability is 'label' (default "
                                                    "the second, dogs)")
    s.add_argument("--output", default=None, help="file to write (default DIR/results/submission.csv)")
    s.add_argument("--upload", action="store_true", help="submit to Kaggle after writing")
    s.add_argument("-m", "--message", default=None, help="submission message (needed with --upload)")
    s.add_argument("--competition", default=None, help="competition slug (default: the one downloaded "
                                                       "into DIR, else dogs-vs-cats-redux-kernels-edition)")
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser("validate", help="check a submission file (exit 1 and a reason when invalid)",
                       description="Check a submission CSV: columns, NaN, range, duplicate and missing ids.")
    s.add_argument("file")
    s.add_argument("--test", default=None, help="test folder whose images must each have one row")
    s.set_defaults(func=cmd_validate)

    k = sub.add_parser("kaggle", help="Kaggle downloads (official kaggle CLI)",
                       description="Kaggle data through the official kaggle command.")
    ksub = k.add_subparsers(dest="kaggle_command", metavar="ACTION", required=True)
    s = ksub.add_parser("download", help="download a competition's files into DIR",
                        description="Download a competition's files into DIR (default competition: "
                                    "dogs-vs-cats-redux-kernels-edition); remembered for 'dl1 submit'.")
    s.add_argument("dir")
    s.add_argument("--competition", default=None, help="competition slug from its URL")
    s.add_argument("--force", action="store_true", help="download again even if the files are there")
    s.set_defaults(func=cmd_kaggle_download)

    s = sub.add_parser("demo", help="the whole job on the built-in synthetic sample",
                       description="sample -> prepare -> finetune -> predict -> inspect -> submit, on a "
                                   "synthetic set: works offline on any machine in a few minutes.")
    s.add_argument("dir", nargs="?", default=os.path.join("data", "demo"))
    s.add_argument("--n", type=int, default=300, help="labelled images (default 300)")
    s.add_argument("--epochs", type=int, default=5)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--size", type=int, default=64, help="image side without ImageNet weights (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--stand-in", action="store_true", help="use stand-in weights even if ImageNet's are here")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DL1Error as e:
        print(f"dl1: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        detail = f": {e}" if str(e) else ""
        print(f"\ndl1: interrupted{detail}", file=sys.stderr)
        return 130
    except OSError as e:
        if os.environ.get("DL1_DEBUG"):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"dl1: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug rather than bad input: one line, the traceback on request
        if os.environ.get("DL1_DEBUG"):
            raise
        print(f"dl1: internal error: {type(e).__name__}: {e} (run with DL1_DEBUG=1 for the traceback, "
              "and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
