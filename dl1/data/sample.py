"""A small synthetic cats-vs-dogs image set, so that every command runs on a fresh machine offline.

Images vary in size and aspect like photos (JPEGs of random width, height and quality). The classes are
learnable but not trivial: a "cat" is a warm-coloured round body with pointed ears, a "dog" a
cool-coloured long body with floppy ears, on cluttered backgrounds of any colour, in any position and
scale. Every image depends only on (seed, class, index), so the same seed always gives the same files.
"""

import colorsys
import csv
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dl1.io.atomic import atomic_path
from dl1.io.errors import DataError

CLASSES = ("cat", "dog")  # Kaggle file-name prefixes; course folders are the plurals


def _color(rng, hue_range, sat=(0.45, 1.0), val=(0.45, 1.0)):
    h = rng.uniform(*hue_range) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng, w, h):
    base = np.array(_color(rng, (0, 1), sat=(0.0, 0.35), val=(0.3, 0.95)), dtype=np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = rng.uniform(-40, 40, size=2)
    grad = (gx / max(w, 1)) * slope[0] + (gy / max(h, 1)) * slope[1]
    noise = rng.normal(0, 12, size=(h, w, 3))
    arr = np.clip(base + grad[..., None] + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):  # clutter common to both classes
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.05, 0.25) * min(w, h)
        box = [x0, y0, x0 + s * rng.uniform(0.5, 2), y0 + s * rng.uniform(0.5, 2)]
        fill = _color(rng, (0, 1), sat=(0.0, 0.3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=fill)
    return img


def _animal(draw, rng, label, w, h):
    scale = rng.uniform(0.3, 0.6) * min(w, h)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.35, 0.7) * h
    if label == "cat":
        body = _color(rng, (-0.05, 0.12))
        rx, ry = scale * rng.uniform(0.45, 0.6), scale * rng.uniform(0.4, 0.55)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=body)
        for side in (-1, 1):  # pointed ears
            ex = cx + side * rx * 0.55
            draw.polygon([(ex - rx * 0.3, cy - ry * 0.7), (ex + rx * 0.3, cy - ry * 0.7),
                          (ex + side * rx * 0.15, cy - ry * 1.45)], fill=body)
    else:
        body = _color(rng, (0.5, 0.72))
        rx, ry = scale * rng.uniform(0.6, 0.8), scale * rng.uniform(0.3, 0.42)
        draw.rounded_rectangle([cx - rx, cy - ry, cx + rx, cy + ry], radius=ry * 0.6, fill=body)
        for side in (-1, 1):  # floppy ears
            ex = cx + side * rx * 0.75
            draw.ellipse([ex - rx * 0.18, cy - ry * 0.9, ex + rx * 0.18, cy + ry * 0.6],
                         fill=tuple(int(c * 0.7) for c in body))
    eye = (20, 20, 20)
    for side in (-1, 1):
        ex, ey = cx + side * rx * 0.3, cy - ry * 0.2
        r = max(1.0, scale * 0.04)
        draw.ellipse([ex - r, ey - r, ex + r, ey + r], fill=eye)


def make_image(seed, label, index, max_side=400):
    """One synthetic photo of class ``label`` ('cat' or 'dog'), deterministic in its arguments."""
    rng = np.random.default_rng([int(seed), CLASSES.index(label), int(index)])
    w = int(rng.integers(max(32, int(max_side * 0.55)), max_side + 1))
    aspect = rng.uniform(0.65, 1.5)
    h = int(np.clip(round(w / aspect), 32, max_side))
    img = _background(rng, w, h)
    _animal(ImageDraw.Draw(img), rng, label, w, h)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return img, int(rng.integers(70, 96))


def _write(path, img, quality):
    with atomic_path(path, suffix=".jpg") as tmp:
        img.save(tmp, "JPEG", quality=quality)


def _check_target(folders, force):
    for folder in folders:
        if os.path.isdir(folder) and any(not n.startswith(".") for n in os.listdir(folder)) and not force:
            raise DataError(f"{folder} already exists and is not empty; choose another folder or use --force")


def write_sample(directory, n=200, n_test=None, seed=0, layout="kaggle", valid_fraction=0.2,
                 max_side=400, force=False, progress=True):
    """Write the synthetic set into ``directory``; returns a dict of counts per folder.

    ``n`` labelled images (half cats, half dogs) and ``n_test`` unlabelled ones (default n // 4).
    layout 'kaggle': ``train/cat.N.jpg``, ``train/dog.N.jpg``, ``test/N.jpg`` (the competition's zip);
    layout 'course': ``train/{cats,dogs}``, ``valid/{cats,dogs}`` (``valid_fraction`` of n) and
    ``test/unknown/``. The true classes of the test images go to ``test_truth.csv`` (id, label 1=dog)
    so results on the synthetic test set can be scored.
    """
    from dl1.io.console import tqdm
    from dl1.io.pools import bounded_map

    if layout not in ("kaggle", "course"):
        raise DataError(f"layout must be 'kaggle' or 'course', not {layout!r}")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise DataError(f"{directory} exists and is not a folder")
    if n < 2:
        raise DataError(f"--n must be at least 2 (one image per class), not {n}")
    n_test = max(1, n // 4) if n_test is None else int(n_test)
    per_class = [n // 2 + (1 if c == 0 and n % 2 else 0) for c in range(2)]
    jobs = []  # (path, label, index)
    if layout == "kaggle":
        train = os.path.join(directory, "train")
        test = os.path.join(directory, "test")
        _check_target([train, test], force)
        for c, label in enumerate(CLASSES):
            jobs += [(os.path.join(train, f"{label}.{i}.jpg"), label, i) for i in range(per_class[c])]
    else:
        test = os.path.join(directory, "test", "unknown")
        _check_target([os.path.join(directory, d) for d in ("train", "valid", "test")], force)
        for c, label in enumerate(CLASSES):
            n_valid = int(round(per_class[c] * valid_fraction)) if per_class[c] > 1 else 0
            for i in range(per_class[c]):
                split = "valid" if i >= per_class[c] - n_valid else "train"
                jobs.append((os.path.join(directory, split, label + "s", f"{label}.{i}.jpg"), label, i))
    rng = np.random.default_rng([int(seed), 99])
    test_labels = rng.integers(0, 2, n_test)
    jobs += [(os.path.join(test, f"{j + 1}.jpg"), CLASSES[test_labels[j]], 100000 + j) for j in range(n_test)]
    for folder in {os.path.dirname(p) for p, _, _ in jobs}:
        os.makedirs(folder, exist_ok=True)

    def run(job):
        path, label, index = job
        img, quality = make_image(seed, label, index, max_side)
        _write(path, img, quality)

    for _ in tqdm(bounded_map(run, jobs), total=len(jobs), desc=f"Writing sample to {directory}",
                  unit="img", disable=not progress):
        pass
    with atomic_path(os.path.join(directory, "test_truth.csv")) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows((j + 1, int(test_labels[j])) for j in range(n_test))
    counts = {}
    for path, _, _ in jobs:
        rel = os.path.relpath(os.path.dirname(path), directory)
        counts[rel] = counts.get(rel, 0) + 1
    return counts
