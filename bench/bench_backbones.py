"""Frozen-feature throughput (images/s) of each backbone: our pipeline against plain keras.applications.

Ours: ``make_model(arch)`` (``dl1.models.backbones``: the architecture table's entry), ``get_batches`` on a
folder of JPEGs and the frozen-feature cache (``FeatureCache``: parallel decode, prefetch, the base in
inference mode, blosc2 write), timed from a fresh cache folder. Baseline, in the same run:
``keras.applications.<App>(include_top=False, pooling='avg')`` + the application's preprocessing +
``model.predict(x, batch_size=32)`` on the same images decoded up front with Pillow (decode included in its
time). A third figure runs ours with Keras' own Conv2D (``fast_convs=False``, VGG16 included):
``<arch>_fastconv_vs_keras_conv`` says whether dl1's copy-free torch convolutions (``dl1.nn.layers``)
matter for that network; the count of convolutions they cover is printed. Random weights (no ImageNet
file offline): throughput does not depend on the values.

    python bench/bench_backbones.py            # CPU: 64 px, 96 images, every architecture but vgg16bn
    python bench/bench_backbones.py --quick    # tests: 32 px, 16 images, resnet50 and efficientnetv2b0
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401
from dl1.models import archs as table  # noqa: E402  (the architecture table: no Keras)

ALL = [name for name in table.names() if name != "vgg16bn"]  # vgg16bn's features are vgg16's
# keras.applications' own function and preprocessing module for each (the plain-Keras baseline)
PLAIN = {"vgg16": ("VGG16", "vgg16"), "resnet50": ("ResNet50", "resnet50"),
         "efficientnetv2b0": ("EfficientNetV2B0", "efficientnet_v2"),
         "efficientnetv2s": ("EfficientNetV2S", "efficientnet_v2"), "convnext_tiny": ("ConvNeXtTiny", "convnext"),
         "densenet121": ("DenseNet121", "densenet")}


def _ours(arch, folder, size, fast, cache_dir):
    from dl1.models.backbones import make_model
    from dl1.train.features import FeatureCache
    from dl1.train.fit import cache_plan

    model = make_model(arch, weights=None, size=size, verbose=False, fast_convs=fast)
    batches = model.get_batches(folder, shuffle=False, batch_size=32, verbose=False)
    model.ft(batches.num_classes)
    prefix = cache_plan(model.model, [batches])
    t0 = time.perf_counter()
    x, _ = FeatureCache(prefix, batch_size=32, verbose=False, folder=cache_dir).features(batches)
    return len(x) / (time.perf_counter() - t0), model


def _plain(arch, folder, size):
    import keras
    from PIL import Image

    app, pre = PLAIN[arch]
    model = getattr(keras.applications, app)(include_top=False, weights=None, pooling="avg",
                                             input_shape=(size, size, 3))
    preprocess = getattr(keras.applications, pre).preprocess_input
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".jpg"))
    model.predict(np.zeros((2, size, size, 3), "float32"), verbose=0)  # warm-up, as ours builds first
    t0 = time.perf_counter()
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size)), dtype="float32") for f in files])
    model.predict(preprocess(x), batch_size=32, verbose=0)
    return len(files) / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", "--tiny", action="store_true", help="32 px, 16 images, two backbones")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--arch", nargs="*", default=None, choices=ALL)
    args = p.parse_args(argv)
    size = args.size or (32 if args.quick else 64)
    n = args.n or (16 if args.quick else 96)
    archs = args.arch or (["resnet50", "efficientnetv2b0"] if args.quick else ALL)
    C.machine_info("bench_backbones: frozen features, ours vs keras.applications + predict")
    from dl1.nn.frozen import count_fast_convs

    rows = []
    with C.workdir(prefix="dl1-bench-bb-") as tmp:
        folder = os.path.join(C.make_images(os.path.join(tmp, "data"), n, 200), "train")
        for arch in archs:
            ours, model = _ours(arch, folder, size, True, os.path.join(tmp, f"c-{arch}-1"))
            ours = max(ours, _ours(arch, folder, size, True, os.path.join(tmp, f"c-{arch}-2"))[0])
            # the same pipeline with Keras' own Conv2D layers: measured for every network, VGG16 included
            plainconv = max(_ours(arch, folder, size, False, os.path.join(tmp, f"c-{arch}-{i}"))[0]
                            for i in (3, 4))
            base = max(_plain(arch, folder, size) for _ in range(2))
            fast, total = count_fast_convs(model.model)
            C.say(f"{arch:17s} {size}px: ours {ours:7.1f} img/s (Keras Conv2D: {plainconv:7.1f}), plain "
                  f"keras.applications + predict {base:7.1f} img/s; copy-free convs cover {fast}/{total}")
            rows.append((arch, ours, base, plainconv))
    for arch, ours, base, plainconv in rows:
        C.result(f"{arch}_features_vs_keras_predict", ours, base)
        C.result(f"{arch}_fastconv_vs_keras_conv", ours, plainconv)


if __name__ == "__main__":
    main()
