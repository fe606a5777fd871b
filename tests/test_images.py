"""Decoding: every colour mode to RGB, EXIF orientation, draft-mode speed-up, readable failures.

This is the 'bad inputs' corpus for single files, generated here (no binaries in the repository).
"""

import io
import os

import numpy as np
import pytest
from PIL import Image

from dl1.data.images import UnreadableImage, header_problem, list_images, load_resized, open_image


def _save(path, img, fmt=None, **kw):
    img.save(path, fmt, **kw)
    return str(path)


def test_grayscale_palette_alpha_cmyk_16bit_all_become_rgb(tmp_path):
    red = Image.new("RGB", (20, 10), (255, 0, 0))
    files = {
        "gray.jpg": _save(tmp_path / "gray.jpg", Image.new("L", (20, 10), 128)),
        "palette.png": _save(tmp_path / "palette.png", red.convert("P")),
        "alpha.png": _save(tmp_path / "alpha.png", Image.new("RGBA", (20, 10), (255, 0, 0, 0))),
        "cmyk.jpg": _save(tmp_path / "cmyk.jpg", red.convert("CMYK")),
        "sixteen.png": _save(tmp_path / "sixteen.png", Image.fromarray(
            np.full((10, 20), 65535, dtype=np.uint16))),
    }
    arrays = {name: load_resized(p, (10, 20)) for name, p in files.items()}
    for name, arr in arrays.items():
        assert arr.shape == (10, 20, 3), name
    assert abs(arrays["gray.jpg"].mean() - 128) < 3
    assert arrays["palette.png"][..., 0].mean() > 240 and arrays["palette.png"][..., 1].mean() < 15
    assert arrays["alpha.png"].min() == 255  # fully transparent: composited on white
    assert arrays["cmyk.jpg"][..., 0].mean() > 200 and arrays["cmyk.jpg"][..., 2].mean() < 60
    assert arrays["sixteen.png"].min() == 255  # 16-bit white stays white (not clipped garbage)


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(tmp_path / "rot.jpg", img, exif=exif, quality=95)
    upright = open_image(path)
    assert upright.size == (20, 40)
    arr = np.asarray(upright, dtype=np.float32)
    assert arr[:15, :, 0].mean() > 200 and arr[25:, :, 2].mean() > 200  # red on top after rotation
    assert load_resized(path, (40, 20)).shape == (40, 20, 3)


def test_draft_mode_decodes_big_jpegs_at_reduced_scale(tmp_path):
    path = _save(tmp_path / "big.jpg", Image.new("RGB", (1600, 1200), (10, 200, 10)), quality=90)
    img = open_image(path, target_size=(100, 100))
    assert 100 <= min(img.size) <= 300  # decoded at 1/8 scale (200x150), still >= the target
    arr = load_resized(path, (100, 100))
    assert arr.shape == (100, 100, 3) and arr[..., 1].mean() > 190


def test_tiny_and_very_large_images(tmp_path):
    one = _save(tmp_path / "one.png", Image.new("RGB", (1, 1), (5, 6, 7)))
    assert load_resized(one, (8, 8))[..., 2].mean() == 7
    big = _save(tmp_path / "big.png", Image.new("RGB", (6000, 4000), (1, 2, 3)), compress_level=1)
    assert load_resized(big, (32, 32)).shape == (32, 32, 3)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"just some text pretending to be a JPEG", "not an image"),
])
def test_unreadable_files_name_the_file_and_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    assert reason in header_problem(str(path))
    with pytest.raises(UnreadableImage) as e:
        load_resized(str(path), (8, 8))
    assert str(path) in str(e.value) and reason in str(e.value)


def test_truncated_jpeg_is_unreadable_with_a_reason(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=95)
    path = tmp_path / "half.jpg"
    path.write_bytes(buf.getvalue()[:3000])
    assert header_problem(str(path)) is None  # the header alone looks fine
    with pytest.raises(UnreadableImage, match="truncated"):
        load_resized(str(path), (8, 8))


def test_listing_skips_hidden_and_junk_and_reports_others(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b 2.jpg", "é.png", "a10.jpg", "a2.jpg", ".DS_Store", "Thumbs.db", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub" / "c.jpeg").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "loop")  # a symlink loop must not hang the walk
    images, skipped = list_images(str(tmp_path))
    assert images == ["a2.jpg", "a10.jpg", "b 2.jpg", "é.png", os.path.join("sub", "c.jpeg")]
    assert "notes.txt" in skipped and "loop" in skipped
    images_followed, _ = list_images(str(tmp_path), follow_links=True)
    assert len(images_followed) >= 5


def test_a_decompression_bomb_is_a_bad_file_like_any_other(tmp_path, monkeypatch):
    """Pillow refuses an image of more than twice ``MAX_IMAGE_PIXELS`` with ``DecompressionBombError`` (not an
    ``OSError``): the header check names it like any other unreadable file instead of crashing."""
    path = _save(tmp_path / "bomb.png", Image.new("RGB", (64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4,096 pixels: more than twice the limit
    assert header_problem(str(path)) == ("image too large to decode safely (Image size (4096 pixels) exceeds limit "
                                         "of 2000 pixels, could be decompression bomb DOS attack.)")
    with pytest.raises(UnreadableImage, match="image too large to decode safely"):
        load_resized(str(path), (8, 8))
