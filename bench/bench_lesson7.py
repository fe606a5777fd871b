"""Lesson 7's precomputed-feature head against recomputing the convolutional features every epoch.

Ours, as the lesson does: run VGG16-BN's convolutional part once over the train and valid images
(``conv_model.predict``), then train the batch-normalised dense head (MaxPooling, BN, Dropout, two
Dense(512)+BN+Dropout, Dense(8, softmax)) on the stored features for E epochs. Baseline: the same frozen
convolutional layers with the same head on top, trained on the images for E epochs, i.e. the features
recomputed every epoch (what a learner gets by stacking the head on the frozen network). Same data (the
fisheries stand-in, 8 classes), weights (random, seeded), optimizer and batch size; the time includes the
feature pass on our side.

    python bench/bench_lesson7.py            # CPU: 64 px, 160 images, 5 epochs
    python bench/bench_lesson7.py --full     # GPU box: 224 px, 800 images, 10 epochs
    python bench/bench_lesson7.py --quick    # the test's tiny run
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)


def bn_head(input_shape, p=0.6, n_classes=8):
    from keras import layers as L

    from dl1.nn.model import Sequential

    return Sequential([L.Input(input_shape), L.MaxPooling2D(), L.BatchNormalization(), L.Dropout(p / 4),
                       L.Flatten(), L.Dense(512, activation="relu"), L.BatchNormalization(), L.Dropout(p),
                       L.Dense(512, activation="relu"), L.BatchNormalization(), L.Dropout(p / 2),
                       L.Dense(n_classes, activation="softmax")])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--quick", "--tiny", dest="quick", action="store_true")
    args = ap.parse_args(argv)
    if args.full:
        args.size, args.n, args.epochs = 224, 800, 10
    if args.quick:
        args.size, args.n, args.epochs, args.batch_size = 32, 32, 2, 16
    import keras

    from dl1.data.batches import get_data, onehot
    from dl1.data.datasets import fisheries
    from dl1.data.prepare import prepare_data
    from dl1.models.surgery import split_at
    from dl1.models.vgg16 import Vgg16BN
    from dl1.nn.layers import Conv2D
    from dl1.nn.model import Sequential

    C.machine_info("lesson 7: precomputed conv features + BN head vs recomputing them each epoch")
    with C.workdir(prefix="dl1-bench-l7-") as tmp:
        fisheries.synthesize(os.path.join(tmp, "fish"), seed=0, n=args.n, n_test=1)
        path = os.path.join(tmp, "fish")
        prepare_data(path, valid=max(8, args.n // 5), sample_train=1, sample_valid=1, progress=False)
        size = (args.size, args.size)
        trn, val = get_data(os.path.join(path, "train"), size), get_data(os.path.join(path, "valid"), size)
        from dl1.data.batches import get_batches

        trn_y = onehot(get_batches(os.path.join(path, "train"), shuffle=False, target_size=size,
                                   verbose=False).classes, 8)
        val_y = onehot(get_batches(os.path.join(path, "valid"), shuffle=False, target_size=size,
                                   verbose=False).classes, 8)
        keras.utils.set_random_seed(0)
        vgg = Vgg16BN(size=size, weights=None, verbose=False)
        conv_layers, _ = split_at(vgg.model, Conv2D)
        conv_model = Sequential([keras.Input((*size, 3))] + conv_layers)
        for layer in conv_model.layers:
            layer.trainable = False
        C.say(f"{len(trn)} train + {len(val)} valid images at {args.size} px, {args.epochs} epochs, "
              f"batch {args.batch_size}")

        keras.utils.set_random_seed(1)
        t0 = time.perf_counter()
        feat = conv_model.predict(trn, batch_size=args.batch_size, verbose=0)
        val_feat = conv_model.predict(val, batch_size=args.batch_size, verbose=0)
        t_feat = time.perf_counter() - t0
        head = bn_head(feat.shape[1:])
        head.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
        h = head.fit(feat, trn_y, batch_size=args.batch_size, epochs=args.epochs,
                     validation_data=(val_feat, val_y), verbose=0)
        ours = time.perf_counter() - t0
        ours_acc = h.history["val_accuracy"][-1]

        keras.utils.set_random_seed(1)
        full = Sequential([keras.Input((*size, 3))] + conv_layers + bn_head(feat.shape[1:]).layers)
        full.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
        t0 = time.perf_counter()
        hb = full.fit(trn, trn_y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(val, val_y),
                      verbose=0)
        base = time.perf_counter() - t0
        base_acc = hb.history["val_accuracy"][-1]
        C.say(f"ours: features {t_feat:.2f} s + head {ours - t_feat:.2f} s; baseline {base:.2f} s")
        C.say(f"load average at the end: {C.load_average()}")
        C.result(f"bn_head_{args.epochs}epoch_vs_recompute_features", ours, base, lower_is_better=True)
        C.result("bn_head_val_accuracy_vs_recompute_features", ours_acc, base_acc)


if __name__ == "__main__":
    main()
