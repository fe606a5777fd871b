"""Bounding boxes for lesson 7: the course's annotation files, scaled to the resized image.

The annotations (``annos/<class>_labels.json``) are a JSON list of images, each
``{"filename": ..., "annotations": [{"class": "rect", "x", "y", "width", "height"}, ...]}`` in the original
image's pixels. ``load_annotations`` keeps the largest box of each image (as the course did), keyed by
the bare file name; ``convert_bb`` rescales one to the size the model sees; ``bbox_array`` makes the
``(N, 4)`` target array in the order of a batches object's ``filenames``. Bad input (a file naming
images that are not in the data, boxes outside their image, entries without a usable box, unreadable JSON)
is reported in one line per kind naming the file and the lines of the entries, and the run goes on with the
rest. Box numbers must be finite; width and height above 0.
"""

import json
import os

import numpy as np

from dl1.io.checks import number, whole
from dl1.io.errors import DataError
from dl1.io.log import examples, note, warn

BB_PARAMS = ["height", "width", "x", "y"]  # the course's order of the four numbers
empty_bbox = {"height": 0.0, "width": 0.0, "x": 0.0, "y": 0.0}


def _area(box):
    return float(box["height"]) * float(box["width"])


def _short(items):
    return examples(items)


def _json_items(path):
    """``[(line, item)]`` of the JSON list in ``path``: each entry with the line it starts on."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    i = len(text) - len(text.lstrip(ws))
    if not text.startswith("[", i):
        json.loads(text)  # a JSON error, or valid JSON that is not a list
        raise ValueError("not a list of images")
    i += 1
    items = []
    while True:
        while i < len(text) and text[i] in ws:
            i += 1
        if text.startswith("]", i):
            break
        item, end = decoder.raw_decode(text, i)
        items.append((text.count("\n", 0, i) + 1, item))
        i = end
        while i < len(text) and text[i] in ws:
            i += 1
        if text.startswith(",", i):
            i += 1
        elif not text.startswith("]", i):
            raise ValueError(f"expected ',' or ']' on line {text.count(chr(10), 0, i) + 1}")
    if text[i + 1:].strip(ws):
        raise ValueError(f"text after the list on line {text.count(chr(10), 0, i) + 1}")
    return items


def image_sizes(paths):
    """``(width, height)`` of each image file, read from the headers (PIL's ``Image.size`` order)."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.size)
    return out


def _valid_box(box):
    try:
        if any(isinstance(box[k], bool) for k in BB_PARAMS):
            return None
        vals = [float(box[k]) for k in BB_PARAMS]
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not all(np.isfinite(vals)) or vals[0] <= 0 or vals[1] <= 0:
        return None
    return dict(zip(BB_PARAMS, vals, strict=True), **{"class": box.get("class", "rect")})


def load_annotations(anno_dir, sizes=None, classes=None, tolerance=2.0):
    """``{filename: largest box}`` from every ``*_labels.json`` in ``anno_dir`` (or only ``classes``,
    e.g. ``['alb', 'bet', ...]``).

    ``sizes``: ``{filename: (width, height)}`` of the images in the data set. With it, entries naming an
    image that is not there are dropped, and boxes reaching more than ``tolerance`` pixels outside their
    image are clipped to it (a box entirely outside is dropped); each kind of problem is one line naming
    the annotation file. Without ``anno_dir`` (None or missing) returns ``{}`` with a note.
    """
    tolerance = number("tolerance", tolerance, 0)
    if not anno_dir or not os.path.isdir(anno_dir):
        note("no annotation folder %s: no bounding boxes", anno_dir)
        return {}
    files = sorted(f for f in os.listdir(anno_dir) if f.endswith("_labels.json"))
    if classes is not None:
        files = [f"{c}_labels.json" for c in classes if f"{c}_labels.json" in files]
    bb_json = {}
    for fname in files:
        path = os.path.join(anno_dir, fname)
        try:
            items = _json_items(path)
        except (OSError, ValueError) as e:
            warn(f"{path}: cannot read the annotations ({str(e).splitlines()[0][:120]}); skipped")
            continue
        missing, outside, clipped, malformed = [], [], [], []
        for line, item in items:
            if not isinstance(item, dict) or not isinstance(item.get("filename"), str) or not item["filename"]:
                malformed.append(f"line {line}")
                continue
            name = os.path.basename(item["filename"].replace("\\", "/"))
            annotations = item.get("annotations") or []
            if not isinstance(annotations, list):
                annotations = [annotations]
            boxes = [b for b in (_valid_box(a) for a in annotations if isinstance(a, dict)) if b]
            if len(boxes) != len(annotations):
                malformed.append(f"{name} (line {line})")
            if not boxes:
                continue
            if sizes is not None:
                if name not in sizes:
                    missing.append(f"{name} (line {line})")
                    continue
                w, h = sizes[name]
                kept = []
                for b in boxes:
                    x0, y0, x1, y1 = b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]
                    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                        outside.append(f"{name} (line {line})")
                        continue
                    if x0 < -tolerance or y0 < -tolerance or x1 > w + tolerance or y1 > h + tolerance:
                        clipped.append(f"{name} (line {line})")
                    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
                    kept.append(dict(b, x=x0, y=y0, width=x1 - x0, height=y1 - y0))
                boxes = kept
            if boxes:
                best = max(boxes, key=_area)
                if name not in bb_json or _area(best) > _area(bb_json[name]):
                    bb_json[name] = best
        if missing:
            warn(f"{path}: {len(missing)} image(s) not in the data set, ignored: {_short(missing)}")
        if outside:
            warn(f"{path}: {len(outside)} box(es) entirely outside their image, dropped: {_short(outside)}")
        if clipped:
            warn(f"{path}: {len(clipped)} box(es) reach outside their image, clipped to it: {_short(clipped)}")
        if malformed:
            warn(f"{path}: {len(malformed)} entr(y/ies) without a usable box (need x, y, width, height > 0): "
                 f"{_short(malformed)}")
    return bb_json


def convert_bb(bb, size, target=(224, 224)):
    """The box ``bb`` (a dict in pixels of an image of ``size`` = (width, height)) scaled to an image
    resized to ``target`` = (rows, cols): ``[height, width, x, y]`` (the course's order), x and y >= 0."""
    w, h = (number("size", v, 0, low_open=True) for v in size)
    rows, cols = (whole("target", v) for v in target)
    conv_x = cols / w
    conv_y = rows / h
    return [float(bb["height"]) * conv_y, float(bb["width"]) * conv_x,
            max(float(bb["x"]) * conv_x, 0.0), max(float(bb["y"]) * conv_y, 0.0)]


def bbox_array(filenames, bb_json, sizes, target=(224, 224)):
    """``(N, 4)`` float32 boxes (``convert_bb``) for ``filenames`` (e.g. ``batches.filenames``, with their
    class folder), zeros where an image has no box; ``sizes`` gives each file's (width, height), as a
    list in the same order or a dict by bare name."""
    out = np.zeros((len(filenames), 4), dtype=np.float32)
    for i, f in enumerate(filenames):
        name = os.path.basename(f)
        try:
            size = sizes[name] if isinstance(sizes, dict) else sizes[i]
        except (KeyError, IndexError):
            raise DataError(f"no image size for {f} (sizes lists {len(sizes)} images)") from None
        out[i] = convert_bb(bb_json.get(name, empty_bbox), size, target)
    return out


def check_boxes(boxes, target=(224, 224)):
    """Raise DataError if an ``(N, 4)`` array of converted boxes is not inside a ``target`` image."""
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"boxes must be an (N, 4) array [height, width, x, y], not {boxes.shape}")
    rows, cols = target
    bad = (boxes[:, 2] + boxes[:, 1] > cols + 1e-3) | (boxes[:, 3] + boxes[:, 0] > rows + 1e-3) | (boxes < 0).any(1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} box(es) reach outside the {cols}x{rows} image, e.g. row "
                        f"{int(np.flatnonzero(bad)[0])}")
    return boxes
