"""``dl1``: the course's main job from the command line, one subcommand per step.

    dl1 sample data/redux                 # a synthetic set in the raw Kaggle layout (or --layout course)
    dl1 kaggle download data/redux        # or the real competition files (needs Kaggle credentials)
    dl1 prepare data/redux                # class folders, valid split, sample, test/unknown, results/
    dl1 finetune data/redux               # the 7-line recipe; weights per epoch under results/
    dl1 lr-find data/redux                # learning-rate range test: results/lr_find.png, a suggested rate
    dl1 predict data/redux                # probabilities for test/ (and valid/) under results/
    dl1 inspect data/redux                # PNGs of right and wrong answers, confusion matrix
    dl1 submit data/redux                 # results/submission.csv, validated; --upload -m MSG sends it
    dl1 validate FILE --test DIR/test     # check a submission file
    dl1 export data/redux                 # results/model.keras: loads with plain Keras, no dl1 needed
    dl1 export data/redux --format onnx   # results/model.onnx: runs with ONNX Runtime alone
    dl1 classify data/redux photo.jpg     # class probabilities for any image files or folders (--csv FILE)
    dl1 app data/redux                    # a web app on 127.0.0.1:7860: upload a photo, see the classes
    dl1 demo                              # all of the above on the built-in sample

Each option is declared once: ``finetune`` and ``lr-find`` take the fields of ``dl1.models.config.
RunConfig`` (generated from their declarations), the other subcommands declare theirs below. Every number is
checked when the arguments are read (a ``ConfigError``: one line naming the option and the value, nothing
written). Errors caused by input (missing folders, unreadable files, missing weights or credentials) are
printed as one line; ``DL1_DEBUG=1`` shows the traceback of anything else. The exit code says which kind of
failure it was, the same in every subcommand (``EXIT_CODES``): 1 data or environment, 2 usage, 3 internal
error, 130 interrupted.
"""

import argparse
import inspect
import os
import sys

from dl1.data import datasets
from dl1.data.prepare import prepare_data
from dl1.data.sample import write_sample
from dl1.io import pools
from dl1.io.errors import DL1Error
from dl1.models import archs
from dl1.models.config import (
    FINETUNE,
    LR_FIND,
    ConfigError,
    RunConfig,
    at_least,
    checked,
    declared_options,
    flag_of,
)
from dl1.workflow import steps
from dl1.workflow.demo import MIN_IMAGES, demo

ARCH_NAMES = archs.names()  # the --arch choices: the architecture table (no Keras import for --help)
PREPARE_DEFAULTS = {name: p.default for name, p in inspect.signature(prepare_data).parameters.items()}


# ---- subcommands: parse, then call the library -----------------------------------------------------
def _print_counts(directory, counts, unit="images"):
    for name, n in sorted(counts.items()):
        print(f"  {os.path.join(directory, name)}: {n} {unit}")


def cmd_sample(args):
    if args.dataset != "dogscats":
        options = {"n": args.n} if args.n is not None else {}
        counts = datasets.get(args.dataset).synthesize(args.dir, seed=args.seed, **options)
        _print_counts(args.dir, counts, unit="")
        return 0
    counts = write_sample(args.dir, n=200 if args.n is None else args.n, n_test=args.n_test, seed=args.seed,
                          layout=args.layout, max_side=args.max_size, force=args.force)
    _print_counts(args.dir, counts)
    return 0


def cmd_cache(args):
    steps.feature_cache(args.dir, **_given(args, steps.feature_cache))
    return 0


def cmd_download(args):
    counts = datasets.get(args.dataset).download(args.dir, verbose=not args.quiet, urls=args.url)
    _print_counts(args.dir, counts, unit="")
    return 0


def cmd_prepare(args):
    options = {name: getattr(args, name) for name in PREPARE_DEFAULTS if hasattr(args, name)}
    steps.prepare(args.dir, **options)
    return 0


def cmd_finetune(args):
    steps.finetune(args.dir, RunConfig.from_namespace(args))
    return 0


def cmd_lr_find(args):
    found = steps.lr_find(args.dir, RunConfig.from_namespace(args))
    return EXIT_OK if found.fell else EXIT_ERROR  # "loss never fell": no rate to suggest


def cmd_export(args):
    steps.export(args.dir, **_given(args, steps.export))
    return 0


def cmd_classify(args):
    steps.classify(args.dir, args.images, **_given(args, steps.classify))
    return 0


def cmd_app(args):
    steps.app(args.dir, **_given(args, steps.app))
    return 0


def cmd_predict(args):
    steps.predict(args.dir, **_given(args, steps.predict))
    return 0


def cmd_inspect(args):
    steps.inspect(args.dir, **_given(args, steps.inspect))
    return 0


def cmd_submit(args):
    steps.submit(args.dir, **_given(args, steps.submit))
    return 0


def cmd_validate(args):
    ok, message = steps.validate(args.file, test=args.test)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_kaggle_download(args):
    steps.kaggle_download(args.dir, args.competition, force=args.force)
    return 0


def cmd_demo(args):
    demo(args.dir, **_given(args, demo))
    return 0


# ---- declaring the options, each once --------------------------------------------------------------------
def defaults(fn):
    """The defaults of ``fn``'s keyword parameters: a library function's signature is where a subcommand's
    defaults live (its options default to ``argparse.SUPPRESS`` and say the signature's value in --help)."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def _given(args, fn):
    """The options given on the command line that ``fn`` takes (the others keep ``fn``'s defaults)."""
    return {name: getattr(args, name) for name in inspect.signature(fn).parameters
            if name not in ("directory", "paths") and hasattr(args, name)}


def _number(s, flag, check, **kwargs):
    """An option whose value ``check`` (``dl1.models.config``) tests once the arguments are read."""
    action = s.add_argument(flag, **kwargs)
    s.get_default("checks").append((action.dest, flag, check))
    return action


def _subcommand(sub, name, func, **kwargs):
    s = sub.add_parser(name, **kwargs)
    s.set_defaults(func=func, checks=[])
    return s


def _run_options(s, command):
    """The ``RunConfig`` settings ``command`` takes, as options generated from their declarations."""
    for name, meta, default in declared_options(command):
        flag = meta["flag"] or flag_of(name)
        text = meta["help"][command] if isinstance(meta["help"], dict) else meta["help"]
        if isinstance(default, bool) or meta.get("both"):
            action = argparse.BooleanOptionalAction if meta.get("both") else \
                "store_false" if meta["negate"] else "store_true"
            s.add_argument(flag, dest=name, action=action, default=argparse.SUPPRESS, help=text)
            continue
        kind = type(meta["choices"][0]) if meta["choices"] else float if isinstance(default, float) else \
            int if default is None or isinstance(default, int) else str
        s.add_argument(flag, dest=name, type=kind, choices=meta["choices"], metavar=meta["metavar"],
                       default=argparse.SUPPRESS, help=text)


def _data_folder(s, weights=False, what="use the model trained with --sample (DIR/sample/results)"):
    """``DIR`` and ``--sample`` (every subcommand that takes a data folder), and ``--weights`` for those
    that load the trained model."""
    s.add_argument("dir", help="the data folder (the one holding train/, valid/, test/ and results/)")
    s.add_argument("--sample", action="store_true", default=argparse.SUPPRESS, help=what)
    if weights:
        s.add_argument("--weights", default=argparse.SUPPRESS, help="weights file (default: the last epoch's)")


def check_arguments(args):
    """The numbers of the subcommand's options (``_number``), each checked: a ConfigError naming the
    option and the value, before anything is read or written. (``finetune`` and ``lr-find`` check theirs
    when their ``RunConfig`` is made.)"""
    for dest, flag, check in getattr(args, "checks", []):
        value = getattr(args, dest, None)
        if value is not None:
            checked(flag, value, check)


def build_parser():
    p = argparse.ArgumentParser(prog="dl1", description="The fast.ai 2017 part 1 toolkit: the main job, "
                                "step by step (each subcommand has --help).")
    p.add_argument("--version", action="version", version=f"dl1 {version()}", help="print 'dl1 VERSION' and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = _subcommand(sub, "sample", cmd_sample,
                    help="write a small synthetic data set (cats/dogs, or --dataset NAME)",
                    description="Write a synthetic data set in the published format, deterministic from "
                                "--seed: cats/dogs images by default, or a stand-in for another data set "
                                f"of the course (--dataset: {', '.join(['dogscats'] + datasets.names())}).")
    s.add_argument("dir", help="folder to write into")
    s.add_argument("--dataset", default="dogscats", choices=["dogscats"] + datasets.names(),
                   help="which data set to imitate (default dogscats)")
    _number(s, "--n", at_least(1), type=int, default=None,
            help="size: labelled images for dogscats (default 200, half cats half dogs); for the "
                 "other data sets their main count (ratings, reviews, characters, images)")
    _number(s, "--n-test", at_least(0), type=int, default=None, help="unlabelled test images (default n/4)")
    _number(s, "--seed", at_least(0), type=int, default=0, help="random seed (default 0)")
    s.add_argument("--layout", choices=["kaggle", "course"], default="kaggle",
                   help="kaggle: train/cat.N.jpg, test/N.jpg (default); course: train|valid/{cats,dogs}, "
                        "test/unknown")
    _number(s, "--max-size", at_least(8), type=int, default=400, help="largest image side in pixels (default 400)")
    s.add_argument("--force", action="store_true", help="write even if the folders are not empty")

    d = PREPARE_DEFAULTS  # prepare's defaults are dl1.data.prepare.prepare_data's
    s = _subcommand(sub, "prepare", cmd_prepare, help="class folders, validation split, sample, test/unknown, "
                    "results/", description="Shape raw Kaggle data (folders or zips) for Keras; safe to re-run.")
    s.add_argument("dir", help="folder holding train/ and test/ (or train.zip, test.zip; also Fisheries' "
                              "test_stg1/ and State Farm's imgs/train, imgs/test, or the competition zips)")
    _number(s, "--valid", at_least(0), type=int, default=argparse.SUPPRESS,
            help="images moved to valid/ (default the course's 2000, or a fifth of a smaller set, with a note)")
    _number(s, "--sample-train", at_least(0), type=int, default=argparse.SUPPRESS,
            help=f"copied to sample/train ({d['sample_train']})")
    _number(s, "--sample-valid", at_least(0), type=int, default=argparse.SUPPRESS,
            help=f"copied to sample/valid ({d['sample_valid']})")
    _number(s, "--seed", at_least(0), type=int, default=argparse.SUPPRESS,
            help=f"random seed of the split (default {d['seed']})")
    s.add_argument("--label-regex", default=argparse.SUPPRESS,
                   help="regular expression whose first group is the class in a file name "
                        f"(default {d['label_regex']}: the leading letters, cat.1.jpg -> cat)")
    s.add_argument("--no-plural", dest="plural", action="store_false", default=argparse.SUPPRESS,
                   help="class folders named cat/dog, not cats/dogs")
    s.add_argument("--no-check", dest="check_images", action="store_false", default=argparse.SUPPRESS,
                   help="skip the check that each image can be opened")
    s.add_argument("--group-file", default=argparse.SUPPRESS, metavar="CSV",
                   help="split the validation set by group: a CSV (relative to DIR) naming each image's group, "
                        "e.g. State Farm's driver_imgs_list.csv; whole groups go to valid/, so none is in both "
                        "(--valid is then the least number of validation images)")
    s.add_argument("--group-column", default=argparse.SUPPRESS, metavar="NAME",
                   help="the CSV column holding the group, e.g. subject (the driver)")
    s.add_argument("--group-image-column", default=argparse.SUPPRESS, metavar="NAME",
                   help=f"the CSV column holding the image file name (default {d['group_image_column']})")

    s = _subcommand(sub, FINETUNE, cmd_finetune, help="the 7-line recipe on DIR/train and DIR/valid",
                    description="Fine-tune VGG16 (or --arch) on DIR/train, validating on DIR/valid; weights "
                                "are saved per epoch as DIR/results/ftN.h5 and the run's settings in "
                                "DIR/results/dl1-model.json. Killed or interrupted, the same command resumes "
                                "from DIR/results/checkpoint.npz.")
    s.add_argument("dir")
    _run_options(s, FINETUNE)

    s = _subcommand(sub, LR_FIND, cmd_lr_find,
                    help="learning-rate range test: results/lr_find.png and a suggested rate",
                    description="Train briefly with a learning rate growing exponentially, stop when the "
                                "loss diverges, put the weights back; plot loss against rate (log scale) "
                                "to DIR/results/lr_find.png and print a suggested --lr for finetune "
                                "(--suggest: fastai's valley rule, or minimum/10); no suggestion and exit 1 "
                                "when the loss never fell. The head alone runs on cached frozen-layer "
                                "features (seconds).")
    s.add_argument("dir")
    _run_options(s, LR_FIND)

    d = defaults(steps.predict)
    s = _subcommand(sub, "predict", cmd_predict, help="probabilities for DIR/test (and DIR/valid) under "
                    "DIR/results", description="Predict DIR/test with the last fine-tuned weights; saves "
                    "results/test_preds.dat, results/filenames.dat and the same for valid/.")
    _data_folder(s, weights=True)
    _number(s, "--batch-size", at_least(1), type=int, default=argparse.SUPPRESS,
            help=f"batch size (default {d['batch_size']})")
    s.add_argument("--no-valid", dest="valid", action="store_false", default=argparse.SUPPRESS,
                   help="skip the validation predictions")
    _number(s, "--tta", at_least(1), type=int, default=argparse.SUPPRESS, metavar="N",
            help="test-time augmentation: mean over the original and N-1 flipped/shifted copies "
                 f"(default {d['tta']}: none)")

    d = defaults(steps.classify)
    s = _subcommand(sub, "classify", cmd_classify, help="class probabilities for any image files or folders",
                    description="Classify image files and folders (searched recursively) with the model "
                                "trained in DIR (its results/dl1-model.json): a table on the terminal, "
                                "--csv FILE for a file (the image's path, then one column per class). Files "
                                "that are not readable images are named and skipped.")
    _data_folder(s, weights=True)
    s.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and folders")
    _number(s, "--tta", at_least(1), type=int, default=argparse.SUPPRESS, metavar="N",
            help="test-time augmentation: mean over the original and N-1 flipped/shifted copies "
                 f"(default {d['tta']}: none)")
    _number(s, "--batch-size", at_least(1), type=int, default=argparse.SUPPRESS,
            help=f"images per batch (default {d['batch_size']})")
    s.add_argument("--csv", default=argparse.SUPPRESS, metavar="FILE", help="also write the probabilities to FILE")

    d = defaults(steps.app)
    s = _subcommand(sub, "app", cmd_app, help="a web app on this machine: upload a photo, see the classes",
                    description="Serve the model trained in DIR as a web app (Gradio: pip install "
                                "'dl1[app]'): upload or drop a photo, or pick a validation image, and see "
                                "the predicted class, the top probabilities and the image as the model saw "
                                "it. Serves DIR/results/model.onnx with ONNX Runtime when it is there and "
                                "up to date ('dl1 export DIR --format onnx'), else the Keras model. Listens "
                                f"on {d['host']} (this machine only) unless --host says otherwise; no "
                                "public link is ever made.")
    _data_folder(s, weights=True)
    _number(s, "--port", steps.port_number, type=int, default=argparse.SUPPRESS,
            help=f"port to listen on (default {d['port']})")
    s.add_argument("--host", default=argparse.SUPPRESS, metavar="ADDRESS",
                   help=f"address to listen on (default {d['host']}); 0.0.0.0 lets other machines in, with "
                        "a warning")
    s.add_argument("--engine", choices=steps.APP_ENGINES, default=argparse.SUPPRESS,
                   help=f"what runs the model (default {d['engine']}: the ONNX file when it is up to date)")

    d = defaults(steps.inspect)
    s = _subcommand(sub, "inspect", cmd_inspect,
                    help="PNGs of right/wrong/uncertain predictions and the confusion matrix",
                    description="Save inspection plots of the validation predictions under DIR/results.")
    _data_folder(s)
    _number(s, "--n-view", at_least(1), type=int, default=argparse.SUPPRESS,
            help=f"images per plot (default {d['n_view']})")
    _number(s, "--seed", at_least(0), type=int, default=argparse.SUPPRESS,
            help=f"random seed of the images shown (default {d['seed']})")

    d = defaults(steps.submit)
    s = _subcommand(sub, "submit", cmd_submit, help="write and validate DIR/results/submission.csv; --upload "
                    "sends it", description="Turn test predictions into a Kaggle CSV, validate it, optionally "
                    "upload.")
    _data_folder(s, what="use the predictions of the model trained with --sample (DIR/sample/results)")
    s.add_argument("--clip", default=argparse.SUPPRESS,
                   help=f"clip probabilities to [1-C, C] (default {d['clip']}); 'auto' picks C on the validation "
                        "set; 'none' keeps them")
    s.add_argument("--positive", default=argparse.SUPPRESS, help="two classes: whose probability is 'label' "
                                                                 "(default the second, dogs)")
    s.add_argument("--output", default=argparse.SUPPRESS, help="file to write (default DIR/results/submission.csv)")
    s.add_argument("--upload", action="store_true", default=argparse.SUPPRESS, help="submit to Kaggle after writing")
    s.add_argument("-m", "--message", default=argparse.SUPPRESS, help="submission message (needed with --upload)")
    s.add_argument("--competition", default=argparse.SUPPRESS, help="competition slug (default: the one "
                   "downloaded into DIR, else dogs-vs-cats-redux-kernels-edition)")

    s = _subcommand(sub, "validate", cmd_validate, help="check a submission file (exit 1 and a reason when "
                    "invalid)", description="Check a submission CSV: columns, NaN, range, duplicate and "
                    "missing ids.")
    s.add_argument("file")
    s.add_argument("--test", default=None, help="test folder whose images must each have one row")

    s = _subcommand(sub, "cache", cmd_cache, help="show or clear the frozen-feature cache of a data folder",
                    description="The frozen layers' outputs are cached in DIR/.dl1-cache (or $DL1_CACHE_DIR), "
                                "bounded by DL1_CACHE_MAX_GB (20) and DL1_CACHE_MAX_FILES (24), least recently "
                                "used files going first.")
    _data_folder(s, what="the cache of DIR/sample (DIR/sample/.dl1-cache)")
    s.add_argument("--clear", action="store_true", default=argparse.SUPPRESS, help="delete the cached features")

    s = _subcommand(sub, "export", cmd_export, help="one .keras (or .onnx) file of the trained model that plain "
                    "Keras (or ONNX Runtime) loads", description="Write the last fine-tuned model as "
                    "DIR/results/model.keras (or -o FILE): plain Keras layers only, preprocessing inside (raw "
                    "RGB images in), class names in FILE.classes.json; keras.saving.load_model loads it "
                    "without dl1. --format onnx writes DIR/results/model.onnx instead: ONNX Runtime runs it "
                    "without dl1, Keras or PyTorch (raw 0-255 RGB in, (batch, height, width, 3) float32; "
                    "class probabilities out; class names in its metadata, dl1.classes).")
    _data_folder(s, weights=True)
    s.add_argument("--format", choices=list(steps.EXPORT_FORMATS), default=argparse.SUPPRESS,
                   help="keras (default) or onnx")
    s.add_argument("-o", "--output", default=argparse.SUPPRESS, help="file to write (default "
                   "DIR/results/model.keras, or model.onnx)")

    s = _subcommand(sub, "download", cmd_download, help="download one of the course's public data sets into "
                    "DIR", description="Download a public data set of the course from where it is published "
                    "today, resumable and checksummed, and unpack it into DIR. Kaggle competitions: "
                    "'dl1 kaggle download'.")
    s.add_argument("dataset", choices=datasets.names(), help="which data set")
    s.add_argument("dir", help="folder to put it in")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--url", action="append", default=None, metavar="URL",
                   help="download from URL instead (repeat to try several in turn; URL#sha256=HEX verifies "
                        "another file than the published one); mirrors for every file: DL1_DOWNLOAD_MIRROR")

    k = sub.add_parser("kaggle", help="Kaggle downloads (official kaggle CLI)",
                       description="Kaggle data through the official kaggle command.")
    ksub = k.add_subparsers(dest="kaggle_command", metavar="ACTION", required=True)
    s = _subcommand(ksub, "download", cmd_kaggle_download, help="download a competition's files into DIR",
                    description="Download a competition's files into DIR (default competition: "
                                "dogs-vs-cats-redux-kernels-edition); remembered for 'dl1 submit'.")
    s.add_argument("dir")
    s.add_argument("--competition", default=None, help="competition slug from its URL")
    s.add_argument("--force", action="store_true", help="download again even if the files are there")

    d = defaults(demo)
    s = _subcommand(sub, "demo", cmd_demo, help="the whole job on the built-in synthetic sample",
                    description="sample -> prepare -> finetune -> predict -> inspect -> submit, on a "
                                "synthetic set: works offline on any machine in a few minutes.")
    s.add_argument("dir", nargs="?", default=d["directory"], help=f"folder to use (default {d['directory']})")
    _number(s, "--n", at_least(MIN_IMAGES), type=int, default=argparse.SUPPRESS,
            help=f"labelled images (default {d['n']})")
    _number(s, "--epochs", at_least(1), type=int, default=argparse.SUPPRESS, help=f"epochs (default {d['epochs']})")
    _number(s, "--batch-size", at_least(1), type=int, default=argparse.SUPPRESS,
            help=f"batch size (default {d['batch_size']})")
    _number(s, "--size", at_least(1), type=int, default=argparse.SUPPRESS,
            help=f"image side without ImageNet weights (default {d['size']})")
    _number(s, "--seed", at_least(0), type=int, default=argparse.SUPPRESS, help=f"random seed (default {d['seed']})")
    s.add_argument("--stand-in", action="store_true", default=argparse.SUPPRESS,
                   help="use stand-in weights even if ImageNet's are here")
    return p


# ---- exit codes: the same for the same kind of failure in every subcommand ---------------------------------
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "bad data or environment: a missing folder or file, unreadable images, no weights or "
                "credentials, an invalid submission ('dl1 validate')",
    EXIT_USAGE: "usage: an unknown option, or a value out of range (checked before anything is read or written)",
    EXIT_INTERNAL: "internal error: a bug in dl1 (one line; DL1_DEBUG=1 shows the traceback; please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a training run saved its checkpoint and resumes",
}


def version():
    """The installed distribution's version (``importlib.metadata``), else the package's own."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("dl1")
    except PackageNotFoundError:
        from dl1 import __version__

        return __version__


def run(args):
    """Run the parsed subcommand; returns its exit code (``EXIT_CODES``), printing one line on failure."""
    try:
        check_arguments(args)
        return args.func(args)
    except ConfigError as e:  # a usage error: the option and the value
        print(f"dl1: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DL1Error as e:
        print(f"dl1: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as e:
        pools.cancel_pending()  # queued image work would otherwise run to the end before the process exits
        detail = f": {e}" if str(e) else ""
        print(f"\ndl1: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if os.environ.get("DL1_DEBUG"):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"dl1: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug rather than bad input: one line, the traceback on request
        if os.environ.get("DL1_DEBUG"):
            raise
        print(f"dl1: internal error: {type(e).__name__}: {e} (run with DL1_DEBUG=1 for the traceback, "
              "and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def main(argv=None):
    """``dl1 ARGS``: argparse's usage errors exit 2 (``SystemExit``), the rest returns ``run``'s code."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("\ndl1: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
