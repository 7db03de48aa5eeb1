"""Tests for vizwidgets.data: bundled images, load_image and make_scene."""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image, ImageFile

from vizwidgets.data import (
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    Box,
    ImageTooLargeError,
    SampleImage,
    Scene,
    load_image,
    make_scene,
    sample_image_path,
    sample_images,
)

from _tools import load_tool

if TYPE_CHECKING:
    from vizwidgets.models import LoadedModel

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "vizwidgets" / "data" / "images"

EXPECTED_CLASSES = {
    "apple": (948, "Granny Smith"),
    "astronaut": (None, None),
    "baboon": (372, "baboon"),
    "butterfly": (323, "monarch"),
    "chelsea": (285, "Egyptian cat"),
    "chicky_512": (154, "Pekinese"),
    "coffee": (967, "espresso"),
    "grace_hopper": (652, "military uniform"),
    "orange": (950, "orange"),
    "rocket": (540, "drilling platform"),
    "squirrel_cls": (335, "fox squirrel"),
    "starry_night": (None, None),
}

# A small hand-built picture, 2 rows x 5 columns, every pixel different.
PIXELS = np.array(
    [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [0, 0, 0]],
        [[200, 100, 50], [255, 255, 255], [1, 2, 3], [128, 128, 128], [90, 0, 250]],
    ],
    dtype=np.uint8,
)
GRAY = np.array([[0, 1, 127, 128, 255], [10, 20, 30, 40, 50]], dtype=np.uint8)


def as_array(image: Image.Image) -> np.ndarray:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    return np.asarray(image)


def png_bytes(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (its data is far too short)."""
    real = png_bytes(Image.new("L", (1, 1)))
    assert real[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + real[24:29]
    crc = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return real[:12] + ihdr + crc + real[33:]


@pytest.fixture
def pixels_png(tmp_path: Path) -> Path:
    path = tmp_path / "pixels.png"
    Image.fromarray(PIXELS).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# The bundled images and their catalogue
# ---------------------------------------------------------------------------------------------


def test_catalogue_matches_files_and_expected_classes() -> None:
    samples = sample_images()
    names = [s.name for s in samples]
    assert names == sorted(EXPECTED_CLASSES)
    assert {s.filename for s in samples} == {p.name for p in IMAGES_DIR.glob("*.jpg")}
    for sample in samples:
        assert isinstance(sample, SampleImage)
        assert (sample.expected_class, sample.expected_label) == EXPECTED_CLASSES[sample.name]
        assert sample.path == sample_image_path(sample.name)
        assert sample.path.is_file()
        assert sample.description and sample.source and sample.licence
    with pytest.raises(dataclasses.FrozenInstanceError):
        samples[0].name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_every_bundled_image_loads_as_rgb_at_most_512(name: str) -> None:
    image = load_image(name)
    assert image.mode == "RGB"
    assert max(image.size) <= 512
    assert min(image.size) >= 200
    # and it is the bundled file's own pixels
    with Image.open(sample_image_path(name)) as reference:
        np.testing.assert_array_equal(as_array(image), np.asarray(reference.convert("RGB")))


def test_bundled_images_are_small_in_total() -> None:
    total = sum(p.stat().st_size for p in IMAGES_DIR.glob("*.jpg"))
    assert 0 < total < 1_500_000


def test_credits_list_every_bundled_file() -> None:
    credits = (IMAGES_DIR / "CREDITS.md").read_text(encoding="utf-8")
    assert "tools/bundle_images.py" in credits
    lines = credits.splitlines()
    table_rows = [line for line in lines if line.startswith("| ") and ".jpg |" in line]
    listed = {row.split("|")[1].strip() for row in table_rows}
    assert listed == {s.filename for s in sample_images()}
    for sample in sample_images():
        row = next(r for r in table_rows if r.split("|")[1].strip() == sample.filename)
        assert sample.licence in row
        assert sample.description in row


@pytest.mark.parametrize("name", ["chelsea", "chelsea.png", "chelsea.jpg", "chelsea.JPG"])
def test_sample_image_path_accepts_extensions(name: str) -> None:
    assert sample_image_path(name) == IMAGES_DIR / "chelsea.jpg"


def test_sample_image_path_unknown_name_lists_names() -> None:
    with pytest.raises(ValueError, match=r"no bundled image called 'cat'.*chelsea.*coffee"):
        sample_image_path("cat")
    with pytest.raises(TypeError, match="name must be a str"):
        sample_image_path(3)  # type: ignore[arg-type]


def test_import_does_not_import_torch() -> None:
    code = "import sys, vizwidgets.data; assert 'torch' not in sys.modules, 'torch imported'"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_bundle_script_downscales_and_drops_alpha(tmp_path: Path) -> None:
    module = load_tool("bundle_images")
    source = tmp_path / "wide.png"
    Image.new("RGBA", (1000, 500), (10, 200, 30, 255)).save(source)
    written = module.bundle_one(source, tmp_path)
    assert written == tmp_path / "wide.jpg"
    with Image.open(written) as copy:
        assert copy.format == "JPEG"
        assert copy.mode == "RGB"
        assert copy.size == (512, 256)
        assert np.abs(np.asarray(copy).astype(int) - [10, 200, 30]).max() <= 3


# ---------------------------------------------------------------------------------------------
# load_image: each kind of source
# ---------------------------------------------------------------------------------------------


def test_name_and_name_with_extension_give_the_same_image() -> None:
    plain = as_array(load_image("coffee"))
    assert np.array_equal(plain, as_array(load_image("coffee.png")))
    assert np.array_equal(plain, as_array(load_image("coffee.jpg")))


def test_existing_file_wins_over_bundled_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(PIXELS).save(tmp_path / "chelsea.png")
    np.testing.assert_array_equal(as_array(load_image("chelsea.png")), PIXELS)
    assert load_image("chelsea").size == (451, 300)  # no such file: the bundled cat


def test_path_and_str(pixels_png: Path) -> None:
    np.testing.assert_array_equal(as_array(load_image(pixels_png)), PIXELS)
    np.testing.assert_array_equal(as_array(load_image(str(pixels_png))), PIXELS)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_encoded_bytes(pixels_png: Path, wrap: type) -> None:
    data = wrap(pixels_png.read_bytes())
    np.testing.assert_array_equal(as_array(load_image(data)), PIXELS)


def test_file_objects_are_read_not_closed(pixels_png: Path) -> None:
    with open(pixels_png, "rb") as file:
        np.testing.assert_array_equal(as_array(load_image(file)), PIXELS)
        assert not file.closed
    buffer = io.BytesIO(pixels_png.read_bytes())
    np.testing.assert_array_equal(as_array(load_image(buffer)), PIXELS)
    assert not buffer.closed


def test_pil_image_is_copied_not_changed() -> None:
    original = Image.fromarray(PIXELS)
    before = original.tobytes()
    result = load_image(original)
    assert result is not original
    np.testing.assert_array_equal(as_array(result), PIXELS)
    result.putpixel((0, 0), (1, 1, 1))
    assert original.tobytes() == before
    assert original.mode == "RGB" and original.size == (5, 2)


def test_pil_image_in_another_mode_is_not_changed() -> None:
    original = Image.fromarray(GRAY)
    before = original.tobytes()
    result = load_image(original)
    assert original.mode == "L" and original.tobytes() == before
    np.testing.assert_array_equal(as_array(result), np.repeat(GRAY[:, :, None], 3, axis=2))


ARRAY_CASES = {
    "uint8 HWC": (PIXELS, PIXELS),
    "uint8 CHW": (np.moveaxis(PIXELS, -1, 0), PIXELS),
    "uint8 HW": (GRAY, np.repeat(GRAY[:, :, None], 3, axis=2)),
    "uint8 HW1": (GRAY[:, :, None], np.repeat(GRAY[:, :, None], 3, axis=2)),
    "uint8 1HW": (GRAY[None], np.repeat(GRAY[:, :, None], 3, axis=2)),
    "uint16 HWC": (PIXELS.astype(np.uint16) * 257, PIXELS),
    "uint16 CHW": (np.moveaxis(PIXELS, -1, 0).astype(np.uint16) * 257, PIXELS),
    "float32 HWC": ((PIXELS / 255.0).astype(np.float32), PIXELS),
    "float64 CHW": (np.moveaxis(PIXELS, -1, 0) / 255.0, PIXELS),
    "float16 HW": (
        np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float16),
        np.repeat(np.array([[0, 255], [128, 64]], dtype=np.uint8)[:, :, None], 3, axis=2),
    ),
    "int64 HWC": (PIXELS.astype(np.int64), PIXELS),
    "bool HW": (
        np.array([[True, False], [False, True]]),
        np.repeat(np.array([[255, 0], [0, 255]], dtype=np.uint8)[:, :, None], 3, axis=2),
    ),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_arrays(case: str) -> None:
    array, expected = ARRAY_CASES[case]
    before = array.copy()
    result = as_array(load_image(array))
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(array, before)
    assert array.dtype == before.dtype


def test_uint16_array_scaling() -> None:
    array = np.array([[0, 32896, 65535, 257, 128]], dtype=np.uint16)
    result = as_array(load_image(array))[0, :, 0]
    assert result.tolist() == [0, 128, 255, 1, 0]


def test_rgba_array_composited_over_white() -> None:
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128], [0, 0, 0, 255]]], np.uint8)
    result = as_array(load_image(rgba))
    assert result[0].tolist() == [[255, 0, 0], [255, 255, 255], [127, 127, 127], [0, 0, 0]]


def test_result_never_shares_memory_with_the_array() -> None:
    array = PIXELS.copy()
    result = load_image(array)
    result.putpixel((0, 0), (9, 9, 9))
    np.testing.assert_array_equal(array, PIXELS)
    assert not np.shares_memory(np.asarray(result), array)


def test_torch_tensor_is_detached_and_not_changed() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.tensor(np.moveaxis(PIXELS, -1, 0) / 255.0, dtype=torch.float32)
    tensor.requires_grad_(True)
    before = tensor.detach().clone()
    np.testing.assert_array_equal(as_array(load_image(tensor)), PIXELS)
    assert torch.equal(tensor.detach(), before) and tensor.requires_grad
    np.testing.assert_array_equal(
        as_array(load_image(torch.from_numpy(GRAY))), np.repeat(GRAY[:, :, None], 3, axis=2)
    )
    half = torch.tensor([[0.0, 1.0]], dtype=torch.bfloat16)
    assert as_array(load_image(half))[0, :, 0].tolist() == [0, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # 2 wide, 1 high: red left, blue right; orientation 6 means "turn 90 degrees clockwise"
    stored = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.png"
    stored.save(path, exif=exif)
    result = as_array(load_image(path))
    assert result.shape == (2, 1, 3)
    assert result[:, 0].tolist() == [[255, 0, 0], [0, 0, 255]]


# ---------------------------------------------------------------------------------------------
# load_image: PIL modes
# ---------------------------------------------------------------------------------------------


def test_mode_L() -> None:
    result = as_array(load_image(Image.fromarray(GRAY, mode="L")))
    np.testing.assert_array_equal(result, np.repeat(GRAY[:, :, None], 3, axis=2))


def test_mode_LA_over_white() -> None:
    image = Image.new("LA", (3, 1))
    image.putdata([(100, 255), (100, 0), (0, 128)])
    assert as_array(load_image(image))[0].tolist() == [[100] * 3, [255] * 3, [127] * 3]


def test_mode_1() -> None:
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    assert as_array(load_image(image))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def palette_image() -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 0, 255, 7, 8, 9] + [0, 0, 0] * 253)
    image.putdata([0, 1, 2])
    return image


def test_mode_P() -> None:
    expected = [[255, 0, 0], [0, 0, 255], [7, 8, 9]]
    assert as_array(load_image(palette_image()))[0].tolist() == expected


def test_mode_P_with_transparency_from_png() -> None:
    data = png_bytes(palette_image(), transparency=0)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "P" and check.info.get("transparency") == 0
    result = as_array(load_image(data))
    assert result[0].tolist() == [[255, 255, 255], [0, 0, 255], [7, 8, 9]]


def test_mode_P_with_alpha_palette() -> None:
    image = palette_image()
    image.info["transparency"] = bytes([255, 0, 255])  # per-entry alpha: index 1 transparent
    assert as_array(load_image(image))[0].tolist() == [[255, 0, 0], [255, 255, 255], [7, 8, 9]]


def test_mode_RGBA_over_white_exact() -> None:
    image = Image.new("RGBA", (4, 1))
    image.putdata([(255, 0, 0, 255), (0, 255, 0, 0), (0, 0, 0, 128), (0, 0, 255, 51)])
    # c * a / 255 + 255 * (1 - a / 255), rounded
    expected = [[255, 0, 0], [255, 255, 255], [127, 127, 127], [204, 204, 255]]
    assert as_array(load_image(image))[0].tolist() == expected


def test_mode_RGB_with_transparent_colour_from_png() -> None:
    data = png_bytes(Image.fromarray(PIXELS), transparency=(255, 0, 0))
    result = as_array(load_image(data))
    assert result[0, 0].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(result[:, 1:], PIXELS[:, 1:])


def test_mode_CMYK() -> None:
    image = Image.new("CMYK", (3, 1))
    image.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0)])
    assert as_array(load_image(image))[0].tolist() == [[255, 255, 255], [0, 0, 0], [0, 255, 255]]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        # premultiplied alpha stores c * a / 255, so over white: stored + 255 * (1 - a / 255)
        ("RGBa", (100, 50, 0, 128), (227, 177, 127)),
        ("La", (100, 128), (227, 227, 227)),
        ("PA", (0, 0), (255, 255, 255)),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
        ("HSV", (0, 0, 255), (255, 255, 255)),
    ],
)
def test_other_modes(mode: str, value: tuple[int, ...], expected: tuple[int, int, int]) -> None:
    image = Image.new(mode, (1, 1), value)
    assert tuple(as_array(load_image(image))[0, 0].tolist()) == expected


def test_mode_YCbCr() -> None:
    image = Image.new("YCbCr", (2, 1))
    image.putdata([(255, 128, 128), (0, 128, 128)])
    result = as_array(load_image(image)).astype(int)[0]
    assert np.abs(result - [[255] * 3, [0] * 3]).max() <= 1


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "png"])
def test_sixteen_bit_gray_is_scaled_not_clipped(mode: str) -> None:
    values = np.array([[0, 32896, 65535, 257]], dtype=np.uint16)
    if mode == "I;16":
        image = Image.fromarray(values)
    elif mode == "I;16B":
        image = Image.fromarray(values.astype(">u2"))
    elif mode == "I":
        image = Image.fromarray(values.astype(np.int32))
    else:
        image = Image.open(io.BytesIO(png_bytes(Image.fromarray(values))))
        assert image.mode.startswith("I")
    if mode != "png":
        assert image.mode == mode
    assert as_array(load_image(image))[0, :, 0].tolist() == [0, 128, 255, 1]


def test_mode_F_uses_pil_scale() -> None:
    image = Image.fromarray(np.array([[0.0, 127.6, 255.0, 300.0, -4.0]], dtype=np.float32))
    assert image.mode == "F"
    assert as_array(load_image(image))[0, :, 0].tolist() == [0, 128, 255, 255, 0]


# ---------------------------------------------------------------------------------------------
# load_image: errors
# ---------------------------------------------------------------------------------------------


def test_missing_file_lists_bundled_names(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError) as raised:
        load_image(missing)
    message = str(raised.value)
    assert str(missing) in message
    assert "chelsea" in message and "starry_night" in message
    with pytest.raises(FileNotFoundError, match="chelsea"):
        load_image("cheslea")  # a misspelt name


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(IsADirectoryError):
        load_image(str(tmp_path))


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n", encoding="utf-8")
    with pytest.raises(ValueError, match="could not be read as an image") as raised:
        load_image(path)
    assert "notes.png" in str(raised.value)
    assert "PNG" in str(raised.value) and "JPEG" in str(raised.value)
    assert "check the file" in str(raised.value)
    assert_short_format_message(str(raised.value))


# The formats load_image reads, in the words its messages use.
OUR_FORMATS = "JPEG, PNG, BMP, GIF, TIFF and WebP"


def assert_short_format_message(message: str) -> None:
    """A message about formats lists our short list only, in at most two lines."""
    assert OUR_FORMATS in message
    for other in ("DDS, ", "ICNS", "JPEG2000", "PSD", "SPIDER", "XVTHUMB"):
        assert other not in message, f"{other!r} listed in: {message}"
    assert message.count("\n") <= 1 and len(message) < 400


def dds_bytes() -> bytes:
    """A real DDS header (magic + 124 bytes + 4x4 pixels) with a pixel format PIL lacks."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + bytes(44)  # size, flags, h, w...
    pixel_format = struct.pack("<2I4s", 32, 0x4, b"ABCD") + bytes(20)  # FOURCC "ABCD"
    return b"DDS " + header + pixel_format + bytes(20) + bytes(16)


EPS_BYTES = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"


def test_the_dds_header_is_one_pil_fails_on_raw() -> None:
    # what the attack found: PIL's own reader raises NotImplementedError on this file
    with pytest.raises(NotImplementedError):
        Image.open(io.BytesIO(dds_bytes()))


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "file object", "stream"])
@pytest.mark.parametrize(
    ("name", "data"), [("DDS", dds_bytes()), ("EPS", EPS_BYTES)], ids=["DDS", "EPS"]
)
def test_formats_we_do_not_read_are_refused_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, name: str, data: bytes
) -> None:
    # The foreign reader must never be asked to open the file (EPS would run Ghostscript).
    def reader_must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the {name} reader was asked to open the file")

    Image.init()
    monkeypatch.setitem(Image.OPEN, name, (reader_must_not_run, Image.OPEN[name][1]))
    path = tmp_path / f"picture.{name.lower()}"
    path.write_bytes(data)
    with pytest.raises(ValueError) as raised:
        if kind == "path":
            load_image(path)
        elif kind == "str":
            load_image(str(path))
        elif kind == "bytes":
            load_image(data)
        elif kind == "file object":
            with open(path, "rb") as file:
                load_image(file)
        else:
            load_image(Stream(data))  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"is an image in {name} format" in message
    assert f"magick image.{name.lower()} image.png" in message  # the fix
    if kind in ("path", "str", "file object"):
        assert str(path) in message  # the file
    assert_short_format_message(message)


class Stream:
    """A binary stream that can only be read, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._buffer.read(size)


@pytest.mark.parametrize("format_name", IMAGE_FORMATS)
def test_every_documented_format_loads(format_name: str) -> None:
    buffer = io.BytesIO()
    params = {"lossless": True} if format_name == "WEBP" else {}
    Image.fromarray(PIXELS).save(buffer, format=format_name, **params)
    with Image.open(io.BytesIO(buffer.getvalue())) as check:
        assert check.format == format_name
    result = as_array(load_image(buffer.getvalue()))
    assert result.shape == PIXELS.shape
    if format_name != "JPEG":  # lossy
        np.testing.assert_array_equal(result, PIXELS)
    assert as_array(load_image(Stream(buffer.getvalue()))).shape == PIXELS.shape  # type: ignore[arg-type]


def test_documented_formats_and_suffixes_match() -> None:
    assert IMAGE_FORMATS == ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")
    Image.init()
    for suffix in IMAGE_SUFFIXES:
        assert Image.EXTENSION[suffix] in IMAGE_FORMATS, suffix
    assert {Image.EXTENSION[s] for s in IMAGE_SUFFIXES} == set(IMAGE_FORMATS)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlink_loop_is_reported_as_a_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    os.symlink(b, a)
    os.symlink(a, b)
    for source in (a, str(a)):
        with pytest.raises(OSError) as raised:
            load_image(source)
        assert not isinstance(raised.value, FileNotFoundError)
        assert raised.value.errno == errno.ELOOP
        message = str(raised.value)
        assert "loop of symbolic links" in message and str(a) in message
        assert "no such" not in message and "fix the links" in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_dangling_symlink_names_its_target(tmp_path: Path) -> None:
    link = tmp_path / "photo.jpg"
    os.symlink(tmp_path / "gone.jpg", link)
    with pytest.raises(FileNotFoundError, match="symbolic link to .*gone.jpg.*does not exist"):
        load_image(link)


def assert_permission_message(error: BaseException, path: Path) -> None:
    assert isinstance(error, PermissionError)
    message = str(error)
    assert message.startswith(f"cannot read {str(path)!r}: permission denied; ")
    assert "JPEG" not in message and "TIFF" not in message  # no list of formats
    assert "\n" not in message and len(message) < 250


def test_unreadable_file_gets_a_short_message(
    pixels_png: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, whom chmod does not stop: the loader's open() is made to refuse.
    import vizwidgets.data.loading as loading

    def refuse(file: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(loading, "open", refuse, raising=False)
    with pytest.raises(PermissionError) as raised:
        load_image(pixels_png)
    assert_permission_message(raised.value, pixels_png)


def test_unreadable_file_by_chmod(pixels_png: Path) -> None:
    pixels_png.chmod(0)
    try:
        if os.access(pixels_png, os.R_OK):
            pytest.skip("this user reads files whatever their permissions (root)")
        with pytest.raises(PermissionError) as raised:
            load_image(pixels_png)
        assert_permission_message(raised.value, pixels_png)
    finally:
        pixels_png.chmod(0o644)


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(0).bytes(2000)
    with pytest.raises(ValueError, match="could not be read as an image"):
        load_image(data)
    with pytest.raises(ValueError, match="could not be read as an image"):
        load_image(b"")


def test_text_mode_file_object(pixels_png: Path) -> None:
    with open(pixels_png, encoding="latin-1") as file, pytest.raises(TypeError, match="binary"):
        load_image(file)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_truncated_files(tmp_path: Path, kind: str) -> None:
    if kind == "jpeg":
        data = sample_image_path("chelsea").read_bytes()
    else:  # noise does not compress, so half the file is half the pixels
        noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        data = png_bytes(Image.fromarray(noise))
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ValueError, match="truncated or corrupt") as raised:
        load_image(path)
    assert "re-download" in str(raised.value) and "cut." in str(raised.value)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_image(path.read_bytes())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_too_large_with_a_small_limit(pixels_png: Path) -> None:
    with pytest.raises(ImageTooLargeError) as raised:
        load_image(pixels_png, max_pixels=9)
    message = str(raised.value)
    assert "5 x 2 = 10 pixels" in message and "limit of 9" in message
    assert "downscale" in message and "max_pixels=10" in message
    assert isinstance(raised.value, ValueError)
    assert load_image(pixels_png, max_pixels=10).size == (5, 2)


def test_too_large_is_decided_from_the_header() -> None:
    # 10000 x 6000 is over MAX_PIXELS but under PIL's own limit; the file holds no pixel data,
    # so decoding would fail as truncated: the size error shows the header was checked first.
    assert MAX_PIXELS < 10000 * 6000
    with pytest.raises(ImageTooLargeError, match="10000 x 6000"):
        load_image(png_claiming_size(10000, 6000))
    with pytest.raises(ValueError, match="truncated"):
        load_image(png_claiming_size(1000, 600))


@pytest.mark.parametrize(
    ("side", "words"),
    [(9500, "90,250,000 pixels.*max_pixels=90250000"), (100_000, "PIL.Image.MAX_IMAGE_PIXELS")],
)
def test_pil_decompression_bomb_checks_become_our_error(side: int, words: str) -> None:
    # 9500^2 trips PIL's warning, 100000^2 its error; both must come out as ImageTooLargeError
    assert Image.MAX_IMAGE_PIXELS is not None
    assert side * side > Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match=words):
            load_image(png_claiming_size(side, side))


def test_a_raised_max_pixels_overrules_pil_warning() -> None:
    # 9500^2 is over PIL's warning limit; with max_pixels above it the header passes, and the
    # (empty) pixel data is what fails, without a DecompressionBombWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="truncated") as raised:
            load_image(png_claiming_size(9500, 9500), max_pixels=100_000_000)
    assert not isinstance(raised.value, ImageTooLargeError)


def test_max_pixels_is_validated(pixels_png: Path) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(pixels_png, max_pixels=0)
    with pytest.raises(TypeError, match="max_pixels"):
        load_image(pixels_png, max_pixels=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", [42, 3.5, None, [[0, 1]], {"a": 1}])
def test_wrong_type_lists_accepted_types(source: object) -> None:
    with pytest.raises(TypeError, match=r"path.*bytes.*PIL\.Image\.Image.*numpy array.*torch"):
        load_image(source)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0), (3, 0, 4), (0,)])
def test_empty_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="empty"):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_empty_pil_image() -> None:
    with pytest.raises(ValueError, match="empty"):
        load_image(Image.new("RGB", (0, 3)))


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((10,), r"\(10,\)"),
        ((5, 6, 7), r"\(5, 6, 7\)"),
        ((5, 6, 2), r"\(5, 6, 2\)"),
        ((1, 3, 8, 8), r"\(1, 3, 8, 8\).*batch"),
        ((1, 1, 3, 8, 8), r"\(1, 1, 3, 8, 8\)"),
    ],
)
def test_bad_shapes_name_the_shape(shape: tuple[int, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_float_out_of_range_says_divide_by_255() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255"):
        load_image(PIXELS.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\].*-0.5"):
        load_image(np.full((2, 2), -0.5))
    with pytest.raises(ValueError, match="NaN"):
        load_image(np.full((2, 2), np.nan))


def test_integers_out_of_range_and_odd_dtypes() -> None:
    with pytest.raises(ValueError, match=r"0\.\.255.*uint16"):
        load_image(np.array([[0, 256]], dtype=np.int32))
    with pytest.raises(ValueError, match="-1"):
        load_image(np.array([[0, -1]], dtype=np.int8))
    with pytest.raises(TypeError, match="dtype"):
        load_image(np.zeros((2, 2), dtype=np.complex64))


def test_errors_leave_the_input_unchanged() -> None:
    array = PIXELS.astype(np.float32)
    before = array.copy()
    with pytest.raises(ValueError):
        load_image(array)
    np.testing.assert_array_equal(array, before)


# ---------------------------------------------------------------------------------------------
# make_scene (formerly make_composite)
# ---------------------------------------------------------------------------------------------

RED = (255, 0, 0)
BLUE = (0, 0, 255)


@pytest.fixture
def two_parts() -> list[Image.Image]:
    return [Image.new("RGB", (100, 50), RED), Image.new("RGB", (30, 60), BLUE)]


def test_scene_boxes_by_hand(two_parts: list[Image.Image]) -> None:
    scene = make_scene(two_parts, cell_size=64)
    assert isinstance(scene, Scene)
    assert scene.image.mode == "RGB" and scene.image.size == (128, 64)
    # 100x50 in a 64 cell -> 64x32, top (64 - 32) / 2 = 16
    # 30x60 in the next cell -> 32x64, left 64 + (64 - 32) / 2 = 80
    assert scene.boxes == (
        Box("part0", 0, 16, 64, 48, None),
        Box("part1", 80, 0, 112, 64, None),
    )
    assert scene.labels == ("part0", "part1")


def test_scene_pixels_come_from_the_right_part(two_parts: list[Image.Image]) -> None:
    scene = make_scene(two_parts, cell_size=64, background=(0, 128, 0))
    pixels = np.asarray(scene.image)
    red, blue = scene.boxes
    assert (pixels[red.mask(64, 128)] == RED).all()
    assert (pixels[blue.mask(64, 128)] == BLUE).all()
    outside = ~(red.mask(64, 128) | blue.mask(64, 128))
    assert (pixels[outside] == (0, 128, 0)).all()
    assert outside.sum() == 64 * 128 - 64 * 32 - 32 * 64


def test_scene_of_bundled_images_has_names_and_targets() -> None:
    scene = make_scene(["chelsea", "coffee.png", np.zeros((4, 4), np.uint8)], cell_size=32)
    assert scene.labels == ("chelsea", "coffee", "part2")
    assert [box.target for box in scene.boxes] == [285, 967, None]
    custom = make_scene(["chelsea"], cell_size=32, labels=["cat"])
    assert custom.boxes[0].label == "cat" and custom.boxes[0].target == 285


def test_scene_grid(two_parts: list[Image.Image]) -> None:
    column = make_scene(two_parts, cell_size=64, columns=1)
    assert column.image.size == (64, 128)
    assert column.boxes[1] == Box("part1", 16, 64, 48, 128)
    three = make_scene([*two_parts, Image.new("RGB", (64, 64), RED)], cell_size=64, columns=2)
    assert three.image.size == (128, 128)
    assert three.boxes[2] == Box("part2", 0, 64, 64, 128)
    wide = make_scene(two_parts, cell_size=64, columns=5)  # no empty columns
    assert wide.image.size == (128, 64)


def test_scene_small_part_is_enlarged_to_fill_the_cell() -> None:
    scene = make_scene([Image.new("RGB", (4, 2), RED)], cell_size=16)
    assert scene.boxes[0] == Box("part0", 0, 4, 16, 12)


def test_boxes_at_scales_to_a_resized_image(two_parts: list[Image.Image]) -> None:
    scene = make_scene(two_parts, cell_size=64)
    assert scene.boxes_at(128, 64) == scene.boxes
    assert scene.boxes_at(32, 16) == (Box("part0", 0, 4, 16, 12), Box("part1", 20, 0, 28, 16))
    assert scene.boxes_at(224, 224) == (
        Box("part0", 0, 56, 112, 168),  # x * 1.75, y * 3.5
        Box("part1", 140, 0, 196, 224),
    )
    resized = np.asarray(scene.image.resize((224, 224), Image.Resampling.BILINEAR)).astype(int)
    red, blue = scene.boxes_at(224, 224)
    # away from the edges between part and background, each box holds its part's colour
    inside_red = resized[red.top + 2 : red.bottom - 2, red.left : red.right - 2]
    inside_blue = resized[blue.top : blue.bottom, blue.left + 2 : blue.right - 2]
    assert (np.abs(inside_red - RED) <= 2).all()
    assert (np.abs(inside_blue - BLUE) <= 2).all()


def test_box_helpers() -> None:
    box = Box("a", 2, 1, 5, 3, target=7)
    assert (box.width, box.height) == (3, 2)
    mask = box.mask(4, 6)
    assert mask.shape == (4, 6) and mask.dtype == bool
    assert mask.sum() == 6
    assert mask[1:3, 2:5].all()
    tiny = Box("t", 10, 10, 11, 11).scaled(0.1, 0.1)
    assert (tiny.width, tiny.height) == (1, 1)
    assert box.scaled(2, 3) == Box("a", 4, 3, 10, 9, target=7)
    assert Box("edge", 0, 0, 10, 10).mask(4, 4).all()  # cut off at the image's edge
    with pytest.raises(ValueError, match="left <= right"):
        Box("bad", 5, 0, 4, 1)
    with pytest.raises(ValueError, match="positive"):
        box.scaled(0, 1)


def test_scene_is_frozen(two_parts: list[Image.Image]) -> None:
    scene = make_scene(two_parts, cell_size=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.boxes = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.boxes[0].left = 3  # type: ignore[misc]


def test_scene_does_not_change_its_parts(two_parts: list[Image.Image]) -> None:
    before = [part.tobytes() for part in two_parts]
    make_scene(two_parts, cell_size=16)
    assert [part.tobytes() for part in two_parts] == before
    assert two_parts[0].size == (100, 50)


def test_scene_validation(two_parts: list[Image.Image]) -> None:
    with pytest.raises(ValueError, match="empty"):
        make_scene([])
    with pytest.raises(ValueError, match="cell_size"):
        make_scene(two_parts, cell_size=7)
    with pytest.raises(ValueError, match="labels has 1 entries but there are 2 parts"):
        make_scene(two_parts, labels=["one"])
    with pytest.raises(ValueError, match="columns"):
        make_scene(two_parts, columns=0)
    with pytest.raises(ValueError, match="background"):
        make_scene(two_parts, background=(0, 0, 256))
    with pytest.raises(TypeError, match="wrap it in a list"):
        make_scene("chelsea")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cell_size"):
        make_scene(two_parts, cell_size=64.0)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        make_scene(["chelsea", "no_such_image"])


def test_make_composite_still_works_and_warns_with_the_new_name(
    two_parts: list[Image.Image],
) -> None:
    import vizwidgets.data as data

    scene = make_scene(two_parts, cell_size=32, columns=1, labels=["red", "blue"])
    with pytest.warns(DeprecationWarning, match=r"make_scene\(\)") as caught:
        old = data.make_composite(two_parts, cell_size=32, columns=1, labels=["red", "blue"])
    assert [w.filename for w in caught] == [__file__]  # points at the caller's line
    assert isinstance(old, Scene)
    assert old.boxes == scene.boxes and old.labels == ("red", "blue")
    assert old.image.tobytes() == scene.image.tobytes()
    bundled = make_scene(["chelsea", "chicky_512"])
    with pytest.warns(DeprecationWarning):
        assert data.make_composite(["chelsea", "chicky_512"]).boxes == bundled.boxes
    with pytest.warns(DeprecationWarning, match="Scene"):
        assert data.Composite is Scene
    with pytest.warns(DeprecationWarning, match="Scene"):
        from vizwidgets.data.scenes import Composite
    assert Composite is Scene
    with pytest.raises(AttributeError, match="no attribute 'Compositor'"):
        data.Compositor  # noqa: B018
    assert "make_composite" not in data.__all__ and "Composite" not in data.__all__


def test_scenes_are_not_lrp_composites() -> None:
    """The two ideas learners meet have two names: a scene is images with boxes."""
    import vizwidgets.data as data

    assert {"Scene", "make_scene"} <= set(data.__all__)
    assert not any("omposite" in name for name in data.__all__)


def test_default_model_gives_each_bundled_image_its_expected_class(lite: LoadedModel) -> None:
    # lite: the default model, a session fixture of tests/conftest.py
    torch = pytest.importorskip("torch")
    samples = [s for s in sample_images() if s.expected_class is not None]
    for sample in samples:
        assert lite.classes[sample.expected_class] == sample.expected_label
    with torch.no_grad():
        top1 = lite(lite.inputs([s.name for s in samples])).argmax(dim=1).tolist()
    assert top1 == [s.expected_class for s in samples]
