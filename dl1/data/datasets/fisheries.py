"""Kaggle's "The Nature Conservancy Fisheries Monitoring" (lesson 7), and a synthetic stand-in.

The real data is a Kaggle competition (``the-nature-conservancy-fisheries-monitoring``: ``train.zip`` with
``train/<ALB|BET|DOL|LAG|NoF|OTHER|SHARK|YFT>/img_NNNNN.jpg``, ``test_stg1.zip``); it needs the official
``kaggle`` command and the competition's rules accepted: ``dl1 kaggle download DIR --competition
the-nature-conservancy-fisheries-monitoring``. The bounding boxes the course used (a Kaggle user's
``<class>_labels.json`` files, one per fish class but OTHER) were forum attachments whose URLs are dead; put
copies in ``DIR/annos/`` if you have them.

The stand-in has the same layout: photos of a boat deck in a handful of camera sizes (the real set has 10,
one per boat, which lesson 7's image-size input exploits), eight classes with a fish-like shape of a
class-specific form and colour (NoF: none), and ``annos/<class>_labels.json`` in the course's format (a list
of images, each with its ``filename`` and ``annotations``: ``{"class": "rect", "x", "y", "width",
"height"}``, the box around the fish, in the file's pixels), sometimes with a second, smaller box.
"""

import colorsys
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from dl1.data.datasets import Dataset, kaggle_only, register
from dl1.io.atomic import atomic_path, write_text
from dl1.io.errors import DataError

COMPETITION = "the-nature-conservancy-fisheries-monitoring"
CLASSES = ("ALB", "BET", "DOL", "LAG", "NoF", "OTHER", "SHARK", "YFT")
ANNO_CLASSES = ("alb", "bet", "dol", "lag", "shark", "yft")  # no file for OTHER, and NoF has no fish
# camera sizes (width, height) in proportion to the real boats' 1280x720, 1280x750, 1280x974, 1276x718
SIZES = ((256, 144), (256, 150), (256, 195), (255, 143), (238, 134))
# per class: hue of the body, body length/height ratio, tail size
_FISH = {"ALB": (0.60, 3.2, 0.35), "BET": (0.68, 2.4, 0.30), "DOL": (0.30, 2.8, 0.45),
         "LAG": (0.02, 1.8, 0.30), "OTHER": (0.85, 2.0, 0.25), "SHARK": (0.55, 4.2, 0.50),
         "YFT": (0.14, 3.0, 0.40)}


def _rgb(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def make_fish_image(seed, label, index, size_scale=1.0):
    """``(PIL image, boxes)`` for one synthetic photo; ``boxes`` lists ``(x, y, width, height)`` in pixels
    around each fish (largest first); NoF has none. Deterministic in its arguments."""
    rng = np.random.default_rng([int(seed), CLASSES.index(label), int(index)])
    boat = int(rng.integers(len(SIZES)))
    w, h = (max(32, int(round(s * size_scale))) for s in SIZES[boat])
    deck = np.array(_rgb(0.55 + 0.05 * boat, 0.08, 0.35 + 0.08 * boat), np.float32)  # each boat its own deck
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = deck + (gx / w * 25 - gy / h * 15)[..., None] + rng.normal(0, 6, (h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):  # grey gear and ropes, low saturation like the deck
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        g = int(rng.integers(60, 200))
        draw.line([x0, y0, x0 + rng.uniform(-w / 3, w / 3), y0 + rng.uniform(-h / 3, h / 3)], fill=(g, g, g),
                  width=int(rng.integers(1, 4)))
    boxes = []
    if label != "NoF":
        for k in range(1 if rng.random() < 0.7 else 2):
            boxes.append(_draw_fish(draw, rng, label, w, h, scale=1.0 if k == 0 else 0.55))
    return img, boxes


def _draw_fish(draw, rng, label, w, h, scale):
    hue, ratio, tail = _FISH[label]
    length = rng.uniform(0.3, 0.45) * w * scale
    height = length / ratio
    tail_len = length * tail
    total = length + tail_len
    x0 = rng.uniform(0.02 * w, w - total - 0.02 * w)
    y0 = rng.uniform(0.05 * h, h - max(height, tail_len * 0.9) - 0.05 * h)
    color = _rgb(hue + rng.uniform(-0.02, 0.02), rng.uniform(0.75, 1.0), rng.uniform(0.6, 0.95))
    flip = rng.random() < 0.5  # head to the left or to the right
    cy = y0 + max(height, tail_len * 0.9) / 2
    if not flip:
        body = [x0 + tail_len, cy - height / 2, x0 + total, cy + height / 2]
        fin = [(x0 + tail_len + 1, cy), (x0, cy - tail_len * 0.45), (x0, cy + tail_len * 0.45)]
    else:
        body = [x0, cy - height / 2, x0 + length, cy + height / 2]
        fin = [(x0 + length - 1, cy), (x0 + total, cy - tail_len * 0.45), (x0 + total, cy + tail_len * 0.45)]
    draw.ellipse(body, fill=color)
    draw.polygon(fin, fill=color)
    top = min(body[1], cy - tail_len * 0.45)
    bottom = max(body[3], cy + tail_len * 0.45)
    x = max(0.0, x0)
    return (round(x, 2), round(top, 2), round(min(x0 + total, w) - x, 2), round(bottom - top, 2))


def _write_jpg(path, img, quality=90):
    with atomic_path(path, suffix=".jpg") as tmp:
        img.save(tmp, "JPEG", quality=quality)


def synthesize(dest, seed=0, n=160, n_test=None, size_scale=1.0, force=False, progress=False):
    """Write the stand-in into ``dest`` in Kaggle's layout: ``train/<class>/img_NNNNN.jpg`` (``n`` images,
    spread over the eight classes), ``test_stg1/img_NNNNN.jpg`` (``n_test``, default n/4) and
    ``annos/<class>_labels.json``. Returns {folder: count}."""
    from dl1.io.pools import bounded_map

    dest = os.fspath(dest)
    n = int(n)
    if n < 2 * len(CLASSES):
        raise DataError(f"the fisheries stand-in needs at least {2 * len(CLASSES)} images (two per class), "
                        f"not {n}")
    for folder in ("train", "test_stg1"):
        full = os.path.join(dest, folder)
        if os.path.isdir(full) and os.listdir(full) and not force:
            raise DataError(f"{full} already exists and is not empty; choose another folder or use --force")
    n_test = max(1, n // 4) if n_test is None else int(n_test)
    rng = np.random.default_rng([int(seed), 7])
    ids = rng.permutation(np.arange(10000, 10000 + 3 * (n + n_test)))[:n + n_test]
    jobs = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        jobs.append((os.path.join("train", label, f"img_{ids[i]:05d}.jpg"), label, i))
    test_labels = rng.integers(0, len(CLASSES), n_test)
    for j in range(n_test):
        jobs.append((os.path.join("test_stg1", f"img_{ids[n + j]:05d}.jpg"), CLASSES[test_labels[j]], 50000 + j))
    for folder in {os.path.dirname(p) for p, _, _ in jobs}:
        os.makedirs(os.path.join(dest, folder), exist_ok=True)

    def run(job):
        rel, label, index = job
        img, boxes = make_fish_image(seed, label, index, size_scale)
        _write_jpg(os.path.join(dest, rel), img)
        return rel, label, boxes

    annos = {c: [] for c in ANNO_CLASSES}
    counts = {}
    for rel, label, boxes in bounded_map(run, jobs):
        counts[os.path.dirname(rel)] = counts.get(os.path.dirname(rel), 0) + 1
        if rel.startswith("train") and label.lower() in annos:
            annos[label.lower()].append({
                "filename": os.path.basename(rel), "class": label.lower(),
                "annotations": [{"class": "rect", "x": x, "y": y, "width": bw, "height": bh}
                                for x, y, bw, bh in boxes]})
    os.makedirs(os.path.join(dest, "annos"), exist_ok=True)
    for cls, items in annos.items():
        write_text(os.path.join(dest, "annos", f"{cls}_labels.json"), json.dumps(items, indent=1))
    counts["annos"] = len(annos)
    return counts


download = kaggle_only("fisheries", COMPETITION, "fisheries")


register(Dataset("fisheries", "The Nature Conservancy Fisheries Monitoring (lesson 7): 8 fish classes, boxes",
                 "train/<ALB|BET|DOL|LAG|NoF|OTHER|SHARK|YFT>/*.jpg, test_stg1/*.jpg, annos/<class>_labels.json",
                 download=download, synthesize=synthesize,
                 sources=[f"https://www.kaggle.com/c/{COMPETITION}"]))
