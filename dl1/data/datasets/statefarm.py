"""Kaggle's "State Farm Distracted Driver Detection" (the State Farm notebooks), and a synthetic stand-in.

The real data is a Kaggle competition (``state-farm-distracted-driver-detection``: ``imgs/train/c0..c9/
img_N.jpg``, ``imgs/test/img_N.jpg`` and ``driver_imgs_list.csv`` with columns ``subject,classname,img``); it
needs the official ``kaggle`` command and the competition's rules accepted: ``dl1 kaggle download DIR
--competition state-farm-distracted-driver-detection``. Then ``dl1 prepare DIR --group-file
driver_imgs_list.csv --group-column subject`` sets aside whole drivers as the validation set.

The stand-in has the same layout and columns: dashboard-camera pictures (4:3) of a driver in one of ten
poses (c0 safe driving, c1/c2 texting/phoning with the right hand, c3/c4 with the left, c5 radio,
c6 drinking, c7 reaching behind, c8 hair and make-up, c9 talking to the passenger). Each driver has a look
of his own (shirt, skin, seat position), so a validation set that shares drivers with training looks
better than it is, as in the real competition.
"""

import colorsys
import csv
import os

import numpy as np
from PIL import Image, ImageDraw

from dl1.data.datasets import Dataset, kaggle_only, register
from dl1.io.atomic import atomic_path
from dl1.io.errors import DataError

COMPETITION = "state-farm-distracted-driver-detection"
CLASSES = tuple(f"c{i}" for i in range(10))
# where the hands are for each pose, as fractions of (width, height): (left hand, right hand)
_HANDS = {"c0": ((0.38, 0.62), (0.62, 0.62)), "c1": ((0.38, 0.62), (0.72, 0.45)),
          "c2": ((0.38, 0.62), (0.60, 0.28)), "c3": ((0.28, 0.45), (0.62, 0.62)),
          "c4": ((0.40, 0.28), (0.62, 0.62)), "c5": ((0.38, 0.62), (0.88, 0.70)),
          "c6": ((0.38, 0.62), (0.55, 0.33)), "c7": ((0.38, 0.62), (0.90, 0.15)),
          "c8": ((0.40, 0.20), (0.60, 0.20)), "c9": ((0.38, 0.62), (0.62, 0.62))}
_OBJECT = {"c1": (20, 20, 30), "c2": (20, 20, 30), "c3": (20, 20, 30), "c4": (20, 20, 30),
           "c6": (230, 230, 240), "c8": (200, 60, 120)}


def _rgb(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def driver_look(seed, driver):
    """A driver's own shirt colour, skin tone and seat offset (deterministic)."""
    rng = np.random.default_rng([int(seed), 4242, int(driver)])
    return {"shirt": _rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)),
            "skin": _rgb(rng.uniform(0.03, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.95)),
            "dx": rng.uniform(-0.06, 0.06), "dy": rng.uniform(-0.04, 0.04), "scale": rng.uniform(0.9, 1.1)}


def make_driver_image(seed, label, driver, index, size=(128, 96)):
    """One synthetic dashboard-camera picture of ``driver`` in pose ``label`` (c0..c9)."""
    rng = np.random.default_rng([int(seed), CLASSES.index(label), int(driver), int(index)])
    w, h = size
    look = driver_look(seed, driver)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    cabin = 40 + 30 * gy / h + 20 * gx / w
    arr = np.stack([cabin, cabin * 0.95, cabin * 1.05], -1) + rng.normal(0, 5, (h, w, 3))
    arr[:, int(w * 0.8):] += 60  # the window behind the passenger seat
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    ox, oy, s = look["dx"] + rng.normal(0, 0.01), look["dy"] + rng.normal(0, 0.01), look["scale"]

    def p(fx, fy):
        return (w * (fx + ox + rng.normal(0, 0.008)), h * (fy + oy + rng.normal(0, 0.008)))

    d.ellipse([w * 0.25, h * 0.55, w * 0.55, h * 0.95], outline=(15, 15, 15), width=max(2, w // 40))  # wheel
    torso = [p(0.35, 0.45), p(0.68, 1.0)]
    d.rectangle([torso[0], torso[1]], fill=look["shirt"])
    head_c = p(0.5, 0.3)
    r = 0.09 * w * s
    d.ellipse([head_c[0] - r, head_c[1] - r, head_c[0] + r, head_c[1] + r], fill=look["skin"])
    turn = 0.6 if label == "c9" else (-0.3 if label == "c7" else 0.0)  # looking at the passenger / behind
    for side in (-1, 1):
        ex = head_c[0] + (side * 0.35 + turn) * r
        d.ellipse([ex - r * 0.12, head_c[1] - r * 0.2, ex + r * 0.12, head_c[1] + r * 0.04], fill=(20, 20, 20))
    shoulders = (p(0.38, 0.5), p(0.65, 0.5))
    for shoulder, hand_f in zip(shoulders, _HANDS[label], strict=True):
        hand = p(*hand_f)
        d.line([shoulder, hand], fill=look["shirt"], width=max(3, w // 22))
        d.ellipse([hand[0] - r * 0.3, hand[1] - r * 0.3, hand[0] + r * 0.3, hand[1] + r * 0.3], fill=look["skin"])
        if label in _OBJECT and hand_f != _HANDS["c0"][0] and hand_f != _HANDS["c0"][1]:
            d.rectangle([hand[0] - r * 0.25, hand[1] - r * 0.5, hand[0] + r * 0.25, hand[1] + r * 0.1],
                        fill=_OBJECT[label])
    if label == "c5":  # the radio lights up
        d.rectangle([w * 0.82, h * 0.62, w * 0.95, h * 0.75], fill=(60, 200, 90))
    return img


def synthesize(dest, seed=0, n=300, n_test=None, n_drivers=8, size=(128, 96), force=False, progress=False):
    """Write the stand-in into ``dest`` in Kaggle's layout: ``imgs/train/c0..c9/img_N.jpg`` (``n`` images from
    ``n_drivers`` drivers, every driver in every pose), ``imgs/test/img_N.jpg`` (``n_test``, default n/4,
    from other drivers) and ``driver_imgs_list.csv`` (subject,classname,img). Returns {folder: count}."""
    from dl1.io.pools import bounded_map

    dest = os.fspath(dest)
    n, n_drivers = int(n), int(n_drivers)
    if n_drivers < 2 or n < n_drivers * len(CLASSES) // 2:
        raise DataError(f"the statefarm stand-in needs at least 2 drivers and {n_drivers * 5} images, "
                        f"not {n_drivers} and {n}")
    train = os.path.join(dest, "imgs", "train")
    if os.path.isdir(train) and os.listdir(train) and not force:
        raise DataError(f"{train} already exists and is not empty; choose another folder or use --force")
    n_test = max(1, n // 4) if n_test is None else int(n_test)
    rng = np.random.default_rng([int(seed), 11])
    ids = rng.permutation(np.arange(1, 1 + 4 * (n + n_test)))[:n + n_test]
    drivers = sorted(rng.choice(np.arange(2, 100), n_drivers + 3, replace=False))
    train_drivers, test_drivers = drivers[:n_drivers], drivers[n_drivers:]
    jobs = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        driver = train_drivers[(i // len(CLASSES)) % n_drivers]
        jobs.append((os.path.join("imgs", "train", label, f"img_{ids[i]}.jpg"), label, int(driver), i))
    for j in range(n_test):
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        jobs.append((os.path.join("imgs", "test", f"img_{ids[n + j]}.jpg"), label,
                     int(test_drivers[j % len(test_drivers)]), 90000 + j))
    for folder in {os.path.dirname(p[0]) for p in jobs}:
        os.makedirs(os.path.join(dest, folder), exist_ok=True)

    def run(job):
        rel, label, driver, index = job
        img = make_driver_image(seed, label, driver, index, size)
        with atomic_path(os.path.join(dest, rel), suffix=".jpg") as tmp:
            img.save(tmp, "JPEG", quality=90)
        return job

    rows, counts = [], {}
    for rel, label, driver, _ in bounded_map(run, jobs):
        counts[os.path.dirname(rel)] = counts.get(os.path.dirname(rel), 0) + 1
        if rel.startswith(os.path.join("imgs", "train")):
            rows.append((f"p{driver:03d}", label, os.path.basename(rel)))
    with atomic_path(os.path.join(dest, "driver_imgs_list.csv"), suffix=".csv") as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["subject", "classname", "img"])
        writer.writerows(sorted(rows))
    counts["driver_imgs_list.csv"] = len(rows)
    return counts


download = kaggle_only("State Farm", COMPETITION, "statefarm",
                       " --group-file driver_imgs_list.csv --group-column subject")


register(Dataset("statefarm", "State Farm Distracted Driver Detection: 10 driver poses, a driver id per image",
                 "imgs/train/c0..c9/*.jpg, imgs/test/*.jpg, driver_imgs_list.csv (subject,classname,img)",
                 download=download, synthesize=synthesize,
                 sources=[f"https://www.kaggle.com/c/{COMPETITION}"]))
