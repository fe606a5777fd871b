"""Shape a Kaggle-style image set for Keras: class folders, a validation split, a sample, results/.

From the raw competition layout (``train/cat.N.jpg``, ``train/dog.N.jpg``, ``test/N.jpg``, or the
downloaded zip files) to::

    train/{cats,dogs}/   valid/{cats,dogs}/   (``valid`` images moved out of train)
    sample/train/{cats,dogs}/   sample/valid/{cats,dogs}/   (copies)
    test/unknown/   results/   sample/results/

It never loses or duplicates an image: the destination of every image is a function of the set of
image names, the seed and the sizes alone, so a run killed half way and started again computes the
same plan and finishes it; moves are renames within the folder, copies go through a temporary name;
counts are checked before and after; a folder prepared with other options is refused, not reshuffled.
It works for other data sets with the label in the file name (``--label-regex``) and for data that
already has class folders: the Fisheries competition (``train/<class>/``, ``test_stg1/``) and State Farm
(``imgs/train/c0..c9/``, ``imgs/test/``), whose validation set is split by driver (``group_file``,
``group_column``: no group in both train and valid).
"""

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field

import numpy as np

from dl1.data.images import header_problem, is_hidden_or_junk, is_image_name, natural_key
from dl1.io.atomic import atomic_path, remove_stale_temps, write_text
from dl1.io.errors import DataError
from dl1.io.log import examples, note, warn, warn_files
from dl1.io.pools import bounded_map
from dl1.io.unpack import check_limits

RECORD = ".dl1-prepare.json"
DEFAULT_LABEL_REGEX = r"^([A-Za-z]+)[._-]"
COURSE_VALID = 2000  # the course's validation set for Dogs vs Cats (of 25,000 training images)


@dataclass
class PrepareReport:
    """What ``prepare_data`` found and did, with the final count of images per folder."""

    path: str
    counts: dict = field(default_factory=dict)
    moved: int = 0
    copied: int = 0
    extracted: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    already_done: bool = False

    def summary(self):
        lines = [f"{folder}: {n}" for folder, n in sorted(self.counts.items())]
        what = "already prepared" if self.already_done else \
            f"moved {self.moved}, copied {self.copied} images"
        return f"{self.path}: {what}\n  " + "\n  ".join(lines)


# ---- zip files ---------------------------------------------------------------------------------------
def _safe_members(zf, dest):
    root = os.path.realpath(dest)
    for info in zf.infolist():
        target = os.path.realpath(os.path.join(dest, info.filename))
        if not (target == root or target.startswith(root + os.sep)):
            raise DataError(f"{zf.filename}: refusing to extract {info.filename!r} outside {dest}")
    return zf.infolist()


def _check_limits(zip_path, infos, dest):
    """Refuse, in ``dl1.io.unpack``'s one line, members over its limits (file count, unpacked size and ratio,
    ``DL1_UNPACK_MAX_*``) or larger than the free space at ``dest``, before anything is extracted."""
    check_limits(zip_path, {i.filename: i.file_size for i in infos if not i.is_dir()}, dest)


def _open_zip(path):
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is damaged or incomplete ({e}); download it again "
                        "(dl1 kaggle download DIR)") from None


def _extract_folder(zip_path, folder_name, dest_root, progress):
    """Extract ``zip_path`` (holding ``folder_name/...`` or loose files) to ``dest_root/folder_name``
    via a temporary folder renamed at the end, so a killed extraction is simply redone."""
    from dl1.io.console import tqdm

    final = os.path.join(dest_root, folder_name)
    tmp = os.path.join(dest_root, f".dl1-extract-{folder_name}")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed run: the zip is still there
    with _open_zip(zip_path) as zf:
        members = _safe_members(zf, tmp)
        _check_limits(zip_path, members, dest_root)
        try:
            for info in tqdm(members, desc=f"Extracting {os.path.basename(zip_path)}", unit="file",
                             disable=not progress):
                zf.extract(info, tmp)
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{zip_path} is damaged or incomplete ({e}); download it again") from None
    inner = os.path.join(tmp, folder_name)
    source = inner if os.path.isdir(inner) else tmp
    os.replace(source, final)
    shutil.rmtree(tmp, ignore_errors=True)


# Zips Kaggle ships inside a competition's bundle zip (or beside it), and the folder each one unpacks to.
FOLDER_ZIPS = {"train.zip": "train", "test.zip": "test", "test_stg1.zip": "test_stg1", "imgs.zip": "imgs"}
LOOSE_FILES = ("sample_submission.csv", "sample_submission_stg1.csv", "driver_imgs_list.csv")
_BUNDLE_FOLDERS = ("train", "test", "test_stg1", "imgs", "annos")


def _copy_member(zf, name, target):
    with zf.open(name) as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _extract_bundle_folder(zip_path, folder, members, dest_root, progress):
    """Extract the ``folder/...`` members of a bundle zip via a temporary folder renamed at the end."""
    from dl1.io.console import tqdm

    tmp = os.path.join(dest_root, f".dl1-extract-{folder}")
    shutil.rmtree(tmp, ignore_errors=True)
    with _open_zip(zip_path) as zf:
        _safe_members(zf, tmp)
        _check_limits(zip_path, members, dest_root)
        try:
            for info in tqdm(members, desc=f"Extracting {folder}/ from {os.path.basename(zip_path)}",
                             unit="file", disable=not progress):
                zf.extract(info, tmp)
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{zip_path} is damaged or incomplete ({e}); download it again") from None
    os.replace(os.path.join(tmp, folder), os.path.join(dest_root, folder))
    shutil.rmtree(tmp, ignore_errors=True)


def extract_zips(path, progress=True):
    """Unpack what Kaggle ships into ``path``: a competition's bundle zip (holding ``train.zip``,
    ``test.zip``, ``test_stg1.zip``, ``imgs.zip``, ``*.csv(.zip)`` or the ``train/``, ``imgs/``... folders
    themselves), then each folder zip whose folder is not there yet. Zips are kept; every file reaches its
    real name only once complete, so a killed run is simply redone. Returns the names extracted."""
    done = []
    inner_zips = set(FOLDER_ZIPS) | {f + ".zip" for f in LOOSE_FILES}
    for z in sorted(os.listdir(path)):
        full = os.path.join(path, z)
        if not z.lower().endswith(".zip") or z.lower() in inner_zips or not os.path.isfile(full):
            continue
        with _open_zip(full) as zf:  # a bundle such as dogs-vs-cats-redux-kernels-edition.zip
            infos = zf.infolist()
            for info in infos:
                base = os.path.basename(info.filename)
                if base.lower() in inner_zips | set(LOOSE_FILES) and info.filename.count("/") == 0 \
                        and not os.path.exists(os.path.join(path, base)):
                    _check_limits(full, [info], path)
                    _copy_member(zf, info.filename, os.path.join(path, base))
                    done.append(base)
        for folder in _BUNDLE_FOLDERS:
            members = [i for i in infos if i.filename.startswith(folder + "/")]
            if members and not os.path.isdir(os.path.join(path, folder)) and \
                    not (folder in ("train", "test") and os.path.isdir(os.path.join(path, "imgs"))):
                _extract_bundle_folder(full, folder, members, path, progress)
                done.append(f"{folder}/")
    for zname, folder in FOLDER_ZIPS.items():
        zpath = os.path.join(path, zname)
        if os.path.isfile(zpath) and not os.path.isdir(os.path.join(path, folder)) and \
                not (folder == "imgs" and os.path.isdir(os.path.join(path, "train"))) and \
                not (folder == "test_stg1" and os.path.isdir(os.path.join(path, "test"))):
            _extract_folder(zpath, folder, path, progress)
            done.append(zname)
    for name in LOOSE_FILES:  # driver_imgs_list.csv.zip -> driver_imgs_list.csv
        zpath, target = os.path.join(path, name + ".zip"), os.path.join(path, name)
        if os.path.isfile(zpath) and not os.path.exists(target):
            with _open_zip(zpath) as zf:
                member = next((n for n in zf.namelist() if os.path.basename(n) == name), None)
                if member is None:
                    raise DataError(f"{zpath} does not hold {name}")
                _check_limits(zpath, [zf.getinfo(member)], path)
                _copy_member(zf, member, target)
            done.append(name + ".zip")
    return done


def normalise_layout(path):
    """Bring other competitions' layouts to ``train/`` + ``test/``: State Farm's ``imgs/train`` and
    ``imgs/test`` are renamed up one level, Fisheries' ``test_stg1/`` becomes ``test/``. A rename is atomic,
    so this is safe to repeat. Returns what was renamed."""
    renamed = []
    for src, dst in ((os.path.join("imgs", "train"), "train"), (os.path.join("imgs", "test"), "test"),
                     ("test_stg1", "test")):
        a, b = os.path.join(path, src), os.path.join(path, dst)
        if os.path.isdir(a) and not os.path.islink(a):
            if os.path.exists(b):
                warn("%s and %s both exist; using %s and leaving %s alone", a, b, b, a)
                continue
            os.rename(a, b)
            renamed.append(f"{src} -> {dst}")
    imgs = os.path.join(path, "imgs")
    if os.path.isdir(imgs) and not os.listdir(imgs):
        os.rmdir(imgs)
    return renamed


# ---- finding the images ------------------------------------------------------------------------------
def _images_in(folder):
    if not os.path.isdir(folder):
        return []
    return sorted((n for n in os.listdir(folder)
                   if is_image_name(n) and os.path.isfile(os.path.join(folder, n))), key=natural_key)


def _subfolders(folder):
    """Class folders in ``folder``. Symbolic links are left alone (with a warning): moving images out of
    a linked folder would move files that live elsewhere, and a link can loop back to its parent."""
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder)
             if not is_hidden_or_junk(n) and os.path.isdir(os.path.join(folder, n))]
    links = [n for n in names if os.path.islink(os.path.join(folder, n))]
    if links:
        warn("ignoring linked folder(s) in %s: %s (copy the images in if they belong to the data)", folder,
             ", ".join(sorted(links)))
    return sorted((n for n in names if n not in links), key=natural_key)


class _Inventory:
    """Where each labelled image is now: name -> list of relative paths (more than one is an error)."""

    def __init__(self, path, labels_from_name):
        self.path = path
        self.where = {}
        self.class_of = {}
        self.loose = _images_in(os.path.join(path, "train"))
        for name in self.loose:
            self._add(name, os.path.join("train", name), labels_from_name(name))
        for split in ("train", "valid", os.path.join("unreadable", "train")):
            for cls in _subfolders(os.path.join(path, split)):
                for name in _images_in(os.path.join(path, split, cls)):
                    self._add(name, os.path.join(split, cls, name), cls)

    def _add(self, name, rel, cls):
        self.where.setdefault(name, []).append(rel)
        self.class_of.setdefault(name, cls)

    def check_classes(self):
        """A class with a single image is almost always a stray or misnamed file."""
        counts = {}
        for name, cls in self.class_of.items():
            counts.setdefault(cls, []).append(name)
        lonely = {cls: names for cls, names in counts.items() if len(names) < 2}
        if lonely and len(counts) > 1:
            cls, names = next(iter(lonely.items()))
            where = os.path.join(self.path, self.where[names[0]][0])
            raise DataError(f"class '{cls}' would hold a single image ({where}); a misnamed or stray file? "
                            "Move it out of train/, or give --label-regex")

    def check_unique(self):
        dupes = {n: p for n, p in self.where.items() if len(p) > 1}
        if dupes:
            name, places = next(iter(dupes.items()))
            raise DataError(f"{len(dupes)} image name(s) appear more than once, e.g. {name} in "
                            f"{', '.join(os.path.join(self.path, p) for p in places)}; "
                            "remove the extra copies, then run again")


def _label_function(regex, plural):
    pattern = re.compile(regex)

    def label(name):
        m = pattern.search(name)
        if not m:
            raise DataError(f"cannot tell the class of train/{name} from its name (rule {regex!r}); "
                            "move it out of train/ or give --label-regex")
        cls = m.group(1) if m.groups() else m.group(0)
        return cls + "s" if plural and not cls.endswith("s") else cls
    return label


# ---- the plan ----------------------------------------------------------------------------------------
def _choose(names, k, seed, salt):
    rng = np.random.default_rng([int(seed), salt])
    return set(np.array(names, dtype=object)[rng.permutation(len(names))[:k]]) if k else set()


def read_groups(csv_path, group_column, image_column="img", class_column="classname", inventory=None):
    """``{image name: group}`` from a CSV such as State Farm's ``driver_imgs_list.csv``
    (``subject,classname,img``). Rows without an image name or a group, with more fields than the header,
    or listing an image a second time, are named by line number in one warning each and ignored (an image
    listed twice keeps its first group). With the ``inventory`` of train images, rows that name classes
    with no folder or images that are not there, and images that the file does not list, are each reported
    in one line naming the file; such rows are ignored (unlisted images stay in train)."""
    import csv

    if not os.path.isfile(csv_path):
        raise DataError(f"group file not found: {csv_path}")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path} is not a readable CSV file ({e})") from None
    for col in (group_column, image_column):
        if col not in columns:
            raise DataError(f"{csv_path} has no column {col!r} (columns: {', '.join(columns) or 'none'}); "
                            "give --group-column / --group-image-column")
    groups, unknown_class, missing, wrong_class = {}, [], [], []
    incomplete, extra, again = [], [], []
    classes = set(inventory.class_of.values()) if inventory is not None else None
    for line, row in rows:
        if row.get(None):
            extra.append(str(line))
            continue
        name = os.path.basename((row.get(image_column) or "").strip().replace("\\", "/"))
        group = (row.get(group_column) or "").strip()
        if not name or not group:
            if any((v or "").strip() for v in row.values()):
                incomplete.append(str(line))
            continue
        if name in groups:
            if groups[name] != group:
                again.append(f"{name} (line {line})")
            continue
        cls = (row.get(class_column) or "").strip() if class_column in columns else None
        if classes is not None and cls and cls not in classes:
            unknown_class.append(f"{name} ({cls})")
            continue
        if inventory is not None:
            if name not in inventory.where:
                missing.append(name)
                continue
            if cls and inventory.class_of[name] != cls:
                wrong_class.append(f"{name} ({cls}, found in {inventory.class_of[name]}/)")
        groups[name] = group
    if incomplete:
        warn(f"{csv_path}: {len(incomplete)} row(s) without an image name or a {group_column}, ignored: "
             f"line {_short(incomplete)}")
    if extra:
        warn(f"{csv_path}: {len(extra)} row(s) with more fields than the header, ignored: line {_short(extra)}")
    if again:
        warn(f"{csv_path}: {len(again)} image(s) listed again with another {group_column}, the first kept: "
             f"{_short(again)}")
    if unknown_class:
        warn(f"{csv_path}: {len(unknown_class)} row(s) name classes with no folder in train/, ignored: "
             f"{_short(unknown_class)}")
    if missing:
        warn(f"{csv_path}: {len(missing)} listed image(s) are not in train/, ignored: {_short(missing)}")
    if wrong_class:
        warn(f"{csv_path}: {len(wrong_class)} image(s) are in another class folder than the file says "
             f"(the folder wins): {_short(wrong_class)}")
    if inventory is not None:
        unlisted = sorted((n for n in inventory.where if n not in groups), key=natural_key)
        if unlisted:
            warn(f"{csv_path} does not list {len(unlisted)} image(s) of train/; they stay in train: "
                 f"{_short(unlisted)}")
    if not groups:
        raise DataError(f"{csv_path} names none of the images in train/; is it the right file?")
    return groups


def _short(items):
    return examples(items)


def _choose_by_group(good, groups, valid, seed):
    """Whole groups (drivers), in a seeded random order, until they hold at least ``valid`` images."""
    members = {}
    for n in good:
        if n in groups:
            members.setdefault(groups[n], []).append(n)
    order = sorted(members, key=natural_key)
    rng = np.random.default_rng([int(seed), 1])
    chosen = set()
    for i in rng.permutation(len(order)):
        if len(chosen) >= valid:
            break
        chosen.update(members[order[i]])
    if len(chosen) >= len(good) or len(chosen) == sum(len(m) for m in members.values()):
        raise DataError(f"asked for {valid} validation images, but whole groups that hold that many leave "
                        "no group for training; use a smaller --valid")
    return chosen


def _plan(inv, valid, sample_train, sample_valid, seed, unreadable, groups=None):
    names = sorted(inv.where, key=natural_key)
    good = [n for n in names if n not in unreadable]
    if valid >= len(good):
        raise DataError(f"asked for {valid} validation images but train has only {len(good)} readable "
                        "images; use a smaller --valid")
    valid_set = _choose_by_group(good, groups, valid, seed) if groups else _choose(good, valid, seed, 1)
    train_left = [n for n in good if n not in valid_set]
    valid_list = [n for n in good if n in valid_set]
    if sample_train > len(train_left) or sample_valid > len(valid_list):
        raise DataError(f"asked for a sample of {sample_train} train / {sample_valid} valid images but "
                        f"there are {len(train_left)} / {len(valid_list)}; use smaller --sample-train/"
                        "--sample-valid")
    moves = {}
    for n in names:
        split = "unreadable/train" if n in unreadable else ("valid" if n in valid_set else "train")
        moves[n] = os.path.join(split, inv.class_of[n], n)
    copies = {}
    for n in _choose(train_left, sample_train, seed, 2):
        copies[os.path.join("sample", "train", inv.class_of[n], n)] = moves[n]
    for n in _choose(valid_list, sample_valid, seed, 3):
        copies[os.path.join("sample", "valid", inv.class_of[n], n)] = moves[n]
    return moves, copies


def _same_content(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def _count_images(path):
    counts = {}
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not is_hidden_or_junk(d)]
        n = sum(1 for f in files if is_image_name(f))
        rel = os.path.relpath(root, path)
        if n and rel != ".":
            counts[rel] = n
    return counts


def _check_record(path, options, total):
    record_path = os.path.join(path, RECORD)
    if not os.path.exists(record_path):
        return None
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if record.get("options") != options:
        was = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in record.get("options", {}).items())
        raise DataError(f"{path} was prepared with other options ({was}); refusing to reshuffle it. "
                        "Use those options, or start again from the original files in another folder")
    if record.get("total") != total:
        raise DataError(f"{path} was prepared with {record.get('total')} labelled images but now holds "
                        f"{total}; add new images to train/ or valid/ class folders by hand, or prepare "
                        "a fresh copy")
    return record


# ---- the whole job -------------------------------------------------------------------------------------
def prepare_data(path, valid=None, sample_train=200, sample_valid=50, seed=0,
                 label_regex=DEFAULT_LABEL_REGEX, plural=True, check_images=True, progress=True,
                 group_file=None, group_column=None, group_image_column="img"):
    """Prepare ``path`` (see the module docstring); returns a PrepareReport. Safe to run again.

    ``valid=None`` (not given) is the course's 2000 validation images, scaled down with the sample sizes
    when the set is smaller (``scaled_sizes``, with a note); a ``valid`` given and too large is an error.

    ``group_file`` (a CSV, relative to ``path`` or absolute) and ``group_column`` split the validation set
    by group: whole groups move to ``valid/``, so no group is in both (State Farm: ``driver_imgs_list.csv``,
    column ``subject``, the driver; ``group_image_column`` names the image column, ``img``). ``valid`` is
    then the least number of validation images.
    """
    from dl1.io.console import tqdm

    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"folder not found: {path}")
    report = PrepareReport(path)
    remove_stale_temps(path)  # a killed run's half-written copies (never under a real name)
    report.extracted = extract_zips(path, progress)
    report.extracted += normalise_layout(path)
    if not os.path.isdir(os.path.join(path, "train")):
        raise DataError(f"no train/ folder (or train.zip) in {path}; download the data first "
                        "(dl1 kaggle download DIR) or give the folder that holds train/ and test/")
    inv = _Inventory(path, _label_function(label_regex, plural))
    inv.check_unique()
    inv.check_classes()
    if not inv.where:
        raise DataError(f"no images found in {os.path.join(path, 'train')}")
    total = len(inv.where)
    if valid is None:
        sizes = _scaled_sizes_noted(path, total, COURSE_VALID, sample_train, sample_valid)
        valid, sample_train, sample_valid = sizes["valid"], sizes["sample_train"], sizes["sample_valid"]
    options = {"valid": valid, "sample_train": sample_train, "sample_valid": sample_valid, "seed": seed,
               "label_regex": label_regex, "plural": plural}
    groups = None
    if group_file or group_column:
        if not (group_file and group_column):
            raise DataError("a validation split by group needs both a group file and a group column "
                            "(--group-file FILE --group-column NAME)")
        options.update(group_file=os.fspath(group_file), group_column=group_column)
        csv_path = group_file if os.path.isabs(group_file) else os.path.join(path, group_file)
        groups = read_groups(csv_path, group_column, group_image_column, inventory=inv)
    record = _check_record(path, options, total)

    unreadable = set()
    if check_images:
        pending = [(n, os.path.join(path, inv.where[n][0])) for n in inv.where
                   if not inv.where[n][0].startswith("unreadable")]
        problems = list(tqdm(bounded_map(lambda p: header_problem(p[1]), pending), total=len(pending),
                             desc="Checking images", unit="img", disable=not progress))
        unreadable = {n for (n, _), r in zip(pending, problems, strict=True) if r}
        unreadable |= {n for n, p in inv.where.items() if p[0].startswith("unreadable")}
        report.unreadable = sorted(os.path.join(path, inv.where[n][0]) for n in unreadable)
    moves, copies = _plan(inv, valid, sample_train, sample_valid, seed, unreadable, groups)

    if record is None:  # write the options first, so an interrupted run is only resumed with the same ones
        write_text(os.path.join(path, RECORD), json.dumps({"options": options, "total": total,
                                                           "status": "started"}, indent=1))
    before = total
    todo = [(n, dst) for n, dst in moves.items() if inv.where[n][0] != dst]
    for n, dst in tqdm(todo, desc="Moving images", unit="img", disable=not progress or not todo):
        src = os.path.join(path, inv.where[n][0])
        target = os.path.join(path, dst)
        if os.path.exists(target):
            raise DataError(f"refusing to overwrite {target} with {src}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(src, target)
        report.moved += 1

    copy_todo = []
    for dst, src in copies.items():
        target = os.path.join(path, dst)
        if os.path.exists(target):
            if not _same_content(target, os.path.join(path, src)):
                raise DataError(f"refusing to overwrite {target}: it differs from {os.path.join(path, src)}")
            continue
        copy_todo.append((os.path.join(path, src), target))
    for src, target in tqdm(copy_todo, desc="Copying sample", unit="img", disable=not progress or not copy_todo):
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        report.copied += 1

    _move_test_images(path, report, progress)
    if check_images:
        check_test_sizes(path, progress)
    for folder in ("results", os.path.join("sample", "results")):
        os.makedirs(os.path.join(path, folder), exist_ok=True)

    after = _Inventory(path, _label_function(label_regex, plural))
    after.check_unique()
    if len(after.where) != before or after.loose:
        raise DataError(f"count check failed in {path}: {before} labelled images before, "
                        f"{len(after.where)} after ({len(after.loose)} still loose in train/)")
    report.counts = _count_images(path)
    report.already_done = not (report.moved or report.copied or report.extracted)
    write_text(os.path.join(path, RECORD), json.dumps({"options": options, "total": total, "status": "done",
                                                       "counts": report.counts}, indent=1))
    return report


def _move_test_images(path, report, progress):
    from dl1.io.console import tqdm

    test = os.path.join(path, "test")
    if not os.path.isdir(test):
        return
    loose = _images_in(test)
    unknown = os.path.join(test, "unknown")
    os.makedirs(unknown, exist_ok=True)
    for name in tqdm(loose, desc="Moving test images", unit="img", disable=not progress or not loose):
        target = os.path.join(unknown, name)
        if os.path.exists(target):
            raise DataError(f"refusing to overwrite {target} with {os.path.join(test, name)}")
        os.rename(os.path.join(test, name), target)
        report.moved += 1


def scaled_sizes(total, valid=COURSE_VALID, sample_train=200, sample_valid=50):
    """The split sizes for ``total`` labelled images: the ones asked for when the set is big enough, else (a
    sample, a synthetic stand-in) a fifth of the images for validation and a sample of at most a third of the
    training images. The same total always gives the same sizes, so a re-run is accepted."""
    asked = {"valid": valid, "sample_train": sample_train, "sample_valid": sample_valid}
    if total == 0 or (valid <= total // 2 and sample_train <= total - valid and sample_valid <= valid):
        return asked
    n_valid = max(1, total // 5)
    return {"valid": n_valid, "sample_train": min(sample_train, max(1, (total - n_valid) // 3)),
            "sample_valid": min(sample_valid, max(1, n_valid // 2))}


def _scaled_sizes_noted(path, total, valid, sample_train, sample_valid):
    asked = {"valid": valid, "sample_train": sample_train, "sample_valid": sample_valid}
    sizes = scaled_sizes(total, valid, sample_train, sample_valid)
    if sizes != asked:
        note("%s has %d labelled images, fewer than the split asks for (%s): using %s", path, total,
             ", ".join(f"{k}={v}" for k, v in asked.items()), ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return sizes


def split_sizes(path, valid=COURSE_VALID, sample_train=200, sample_valid=50, label_regex=DEFAULT_LABEL_REGEX,
                plural=True):
    """The split sizes to give ``prepare_data`` for the labelled images in ``path`` (``scaled_sizes``), with
    a note when they are smaller than asked; the same before and after preparation."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"folder not found: {path}")
    extract_zips(path, progress=False)
    normalise_layout(path)
    total = len(_Inventory(path, _label_function(label_regex, plural)).where)
    return _scaled_sizes_noted(path, total, valid, sample_train, sample_valid)


def _sizes(paths, progress, what):
    from PIL import Image

    from dl1.io.console import tqdm

    def size(p):
        try:
            with Image.open(p) as im:
                return im.size
        except (OSError, ValueError, SyntaxError, EOFError):
            return None
    return list(tqdm(bounded_map(size, paths), total=len(paths), desc=what, unit="img",
                     disable=not progress))


def check_test_sizes(path, progress=False, limit=3):
    """The test images whose size (width x height) no training image has, in one warning line: their
    count and the first ``limit``. They are resized like the others, but the model never saw such images
    (a different camera, or a mix-up of folders). Returns the list of (file, size)."""
    train_paths = [os.path.join(root, f) for split in ("train", "valid")
                   for root, _, files in os.walk(os.path.join(path, split)) for f in files if is_image_name(f)]
    test_paths = [os.path.join(root, f) for root, _, files in os.walk(os.path.join(path, "test"))
                  for f in files if is_image_name(f)]
    if not train_paths or not test_paths:
        return []
    known = {s for s in _sizes(train_paths, progress, "Reading train sizes") if s}
    odd = [(p, s) for p, s in zip(test_paths, _sizes(test_paths, progress, "Reading test sizes"), strict=True)
           if s and s not in known]
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(known)[:4]) + (" ..." if len(known) > 4 else "")
    warn_files(f"{{count}} test image(s) in {os.path.join(path, 'test')} of a size which no training image has "
               f"({shown}), resized like the others", [f"{p} ({w}x{h})" for p, (w, h) in sorted(odd)], limit)
    return odd
