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
    dl1 demo                              # all of the above on the built-in sample

Errors caused by input (missing folders, unreadable files, missing weights or credentials) are printed
as one line; ``DL1_DEBUG=1`` shows the traceback of anything else.
"""

import argparse
import os
import sys

from dl1.data import datasets
from dl1.data.sample import write_sample
from dl1.io.errors import DL1Error
from dl1.workflow import steps
from dl1.workflow.demo import demo

# the --arch names (dl1.models.backbones.ARCHITECTURES; spelled here so that --help needs no Keras import)
ARCH_NAMES = ["vgg16", "vgg16bn", "resnet50", "efficientnetv2b0", "efficientnetv2s", "convnext_tiny"]


# ---- subcommands: parse, then call the library -----------------------------------------------------
def _positive_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


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
    from dl1.train.features import cache_files, default_cache_dir  # imports Keras

    folder = default_cache_dir(os.path.join(args.dir, "train"))
    files = cache_files(folder)
    total = sum(size for _, size, _ in files)
    if args.clear:
        for path, _, _ in files:
            os.remove(path)
        print(f"Removed {len(files)} feature file(s) ({total / 2**20:.0f} MB) from {folder}")
    else:
        print(f"{folder}: {len(files)} feature file(s), {total / 2**20:.0f} MB (--clear removes them; "
              "they are recomputed when needed)")
    return 0


def cmd_download(args):
    counts = datasets.get(args.dataset).download(args.dir, verbose=not args.quiet)
    _print_counts(args.dir, counts, unit="")
    return 0


def cmd_prepare(args):
    steps.prepare(args.dir, valid=args.valid, sample_train=args.sample_train, sample_valid=args.sample_valid,
                  seed=args.seed, label_regex=args.label_regex, plural=not args.no_plural,
                  check_images=not args.no_check, group_file=args.group_file, group_column=args.group_column,
                  group_image_column=args.group_image_column)
    return 0


def cmd_finetune(args):
    steps.finetune(args.dir, sample=args.sample, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   weights=args.weights, size=args.size, seed=args.seed, cache=not args.no_cache,
                   checkpoint_every=args.checkpoint_every, restart=args.restart,
                   mixed_precision=args.mixed_precision, jit=args.jit, verbose=args.verbose, keep=args.keep,
                   one_cycle=args.one_cycle, unfreeze=args.unfreeze, freeze_epochs=args.freeze_epochs,
                   arch=args.arch)
    return 0


def cmd_lr_find(args):
    steps.lr_find(args.dir, sample=args.sample, batch_size=args.batch_size, weights=args.weights, size=args.size,
                  seed=args.seed, cache=not args.no_cache, mixed_precision=args.mixed_precision, jit=args.jit,
                  verbose=args.verbose, unfreeze=args.unfreeze, start_lr=args.start_lr, end_lr=args.end_lr,
                  num_steps=args.num_steps, arch=args.arch)
    return 0


def cmd_export(args):
    steps.export(args.dir, sample=args.sample, weights=args.weights, output=args.output)
    return 0


def cmd_predict(args):
    steps.predict(args.dir, sample=args.sample, weights=args.weights, batch_size=args.batch_size,
                  valid=not args.no_valid, tta=args.tta)
    return 0


def cmd_inspect(args):
    steps.inspect(args.dir, sample=args.sample, n_view=args.n_view, seed=args.seed)
    return 0


def cmd_submit(args):
    steps.submit(args.dir, clip=args.clip, output=args.output, positive=args.positive, upload=args.upload,
                 message=args.message, competition=args.competition)
    return 0


def cmd_validate(args):
    ok, message = steps.validate(args.file, test=args.test)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_kaggle_download(args):
    steps.kaggle_download(args.dir, args.competition, force=args.force)
    return 0


def cmd_demo(args):
    demo(args.dir, n=args.n, epochs=args.epochs, batch_size=args.batch_size, size=args.size, seed=args.seed,
         stand_in=args.stand_in)
    return 0


# ---- argument parsing ----------------------------------------------------------------------------------
def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def _copy_options(source, target, skip):
    """Give ``target`` the options of subcommand parser ``source`` (but ``skip``): ``lr-find`` takes those
    of ``finetune``, whatever options ``finetune`` gains."""
    for action in source._actions:
        if action.dest in skip or not action.option_strings:
            continue
        target._add_action(action)


def _trained_model_options(s):
    """``DIR``, ``--sample`` and ``--weights``: which fine-tuned model a command uses (predict, export)."""
    s.add_argument("dir")
    s.add_argument("--sample", action="store_true", help="use the model trained with --sample")
    s.add_argument("--weights", default=None, help="weights file (default: the last epoch's)")


def build_parser():
    p = argparse.ArgumentParser(prog="dl1", description="The fast.ai 2017 part 1 toolkit: the main job, "
                                "step by step (each subcommand has --help).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("sample", help="write a small synthetic data set (cats/dogs, or --dataset NAME)",
                       description="Write a synthetic data set in the published format, deterministic from "
                                   "--seed: cats/dogs images by default, or a stand-in for another data set "
                                   f"of the course (--dataset: {', '.join(['dogscats'] + datasets.names())}).")
    s.add_argument("dir", help="folder to write into")
    s.add_argument("--dataset", default="dogscats", choices=["dogscats"] + datasets.names(),
                   help="which data set to imitate (default dogscats)")
    s.add_argument("--n", type=int, default=None,
                   help="size: labelled images for dogscats (default 200, half cats half dogs); for the "
                        "other data sets their main count (ratings, reviews, characters, images)")
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
    s.add_argument("dir", help="folder holding train/ and test/ (or train.zip, test.zip; also Fisheries' "
                              "test_stg1/ and State Farm's imgs/train, imgs/test, or the competition zips)")
    s.add_argument("--valid", type=_positive_int, default=None, help="images moved to valid/ (default 2000, or a fifth of a smaller set)")
    s.add_argument("--sample-train", type=_positive_int, default=200, help="copied to sample/train (200)")
    s.add_argument("--sample-valid", type=_positive_int, default=50, help="copied to sample/valid (50)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    s.add_argument("--label-regex", default=r"^([A-Za-z]+)[._-]",
                   help="regular expression whose first group is the class in a file name "
                        "(default: the leading letters, cat.1.jpg -> cat)")
    s.add_argument("--no-plural", action="store_true", help="class folders named cat/dog, not cats/dogs")
    s.add_argument("--no-check", action="store_true", help="skip the check that each image can be opened")
    s.add_argument("--group-file", default=None, metavar="CSV",
                   help="split the validation set by group: a CSV (relative to DIR) naming each image's group, "
                        "e.g. State Farm's driver_imgs_list.csv; whole groups go to valid/, so none is in both "
                        "(--valid is then the least number of validation images)")
    s.add_argument("--group-column", default=None, metavar="NAME",
                   help="the CSV column holding the group, e.g. subject (the driver)")
    s.add_argument("--group-image-column", default="img", metavar="NAME",
                   help="the CSV column holding the image file name (default img)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("finetune", help="the 7-line recipe on DIR/train and DIR/valid",
                       description="Fine-tune VGG16 on DIR/train, validating on DIR/valid; weights are "
                                   "saved per epoch as DIR/results/ftN.h5. Killed or interrupted, the same "
                                   "command resumes from DIR/results/checkpoint.npz.")
    s.add_argument("dir")
    s.add_argument("--arch", default="vgg16", choices=ARCH_NAMES,
                   help="network: " + ", ".join(ARCH_NAMES) + " (default vgg16; recorded in "
                        "results/dl1-model.json for predict, inspect and submit). Several GPUs: "
                        "torchrun --nproc-per-node N -m dl1 finetune DIR ...")
    s.add_argument("--sample", action="store_true", help="use DIR/sample/train and DIR/sample/valid")
    s.add_argument("--epochs", type=int, default=1, help="epochs in all (default 1)")
    s.add_argument("--batch-size", type=int, default=64,
                   help="batch size (default 64; under torchrun the global batch, shared by the processes)")
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
    s.add_argument("--keep", type=_positive_int, default=2, metavar="N",
                   help="keep the N newest per-epoch weight files ftN.h5 (default 2; 0 keeps all)")
    s.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity (default 1)")
    s.add_argument("--one-cycle", action="store_true",
                   help="one-cycle schedule: the rate warms up to --lr (the maximum), then anneals (cosine)")
    s.add_argument("--unfreeze", action="store_true",
                   help="fine_tune: --freeze-epochs head epochs, then --epochs with every layer training, "
                        "lower rates for earlier blocks (--lr is the base rate)")
    s.add_argument("--freeze-epochs", type=_positive_int, default=1, metavar="N",
                   help="with --unfreeze: head-only epochs first (default 1)")
    s.set_defaults(func=cmd_finetune)
    finetune_parser = s

    s = sub.add_parser("lr-find", help="learning-rate range test: results/lr_find.png and a suggested rate",
                       description="Train briefly with a learning rate growing exponentially, stop when the "
                                   "loss diverges, put the weights back; plot loss against rate (log scale) "
                                   "to DIR/results/lr_find.png and print a suggested --lr for finetune. The "
                                   "head alone runs on cached frozen-layer features (seconds).")
    s.add_argument("dir")
    _copy_options(finetune_parser, s, skip={"help", "epochs", "lr", "checkpoint_every", "restart", "keep",
                                            "one_cycle", "freeze_epochs", "unfreeze"})
    s.add_argument("--unfreeze", action="store_true", help="test with every layer training (slower: no cache)")
    s.add_argument("--start-lr", type=_positive_float, default=1e-7, help="first rate (default 1e-7)")
    s.add_argument("--end-lr", type=_positive_float, default=10.0, help="last rate (default 10)")
    s.add_argument("--num-steps", type=int, default=100, help="most steps (batches) to run (default 100)")
    s.set_defaults(func=cmd_lr_find)

    s = sub.add_parser("predict", help="probabilities for DIR/test (and DIR/valid) under DIR/results",
                       description="Predict DIR/test with the last fine-tuned weights; saves "
                                   "results/test_preds.dat, results/filenames.dat and the same for valid/.")
    _trained_model_options(s)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--no-valid", action="store_true", help="skip the validation predictions")
    s.add_argument("--tta", type=int, default=1, metavar="N",
                   help="test-time augmentation: mean over the original and N-1 flipped/shifted copies "
                        "(default 1: none)")
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

    s = sub.add_parser("cache", help="show or clear the frozen-feature cache of a data folder",
                       description="The frozen layers' outputs are cached in DIR/.dl1-cache (beside DIR's "
                                   "train/, or $DL1_CACHE_DIR), bounded by DL1_CACHE_MAX_GB (20) and "
                                   "DL1_CACHE_MAX_FILES (24), least recently used files going first.")
    s.add_argument("dir", help="the data folder (the one holding train/ and valid/)")
    s.add_argument("--clear", action="store_true", help="delete the cached features")
    s.set_defaults(func=cmd_cache)

    s = sub.add_parser("export", help="one .keras file of the trained model that plain Keras loads",
                       description="Write the last fine-tuned model as DIR/results/model.keras (or -o FILE): "
                                   "plain Keras layers only, preprocessing inside (raw RGB images in), class "
                                   "names in FILE.classes.json; keras.saving.load_model loads it without dl1.")
    _trained_model_options(s)
    s.add_argument("-o", "--output", default=None, help="file to write (default DIR/results/model.keras)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("download", help="download one of the course's public data sets into DIR",
                       description="Download a public data set of the course from where it is published "
                                   "today, resumable and checksummed, and unpack it into DIR. Kaggle "
                                   "competitions: 'dl1 kaggle download'.")
    s.add_argument("dataset", choices=datasets.names(), help="which data set")
    s.add_argument("dir", help="folder to put it in")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_download)

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
