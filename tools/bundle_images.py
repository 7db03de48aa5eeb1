"""Make the sample images that ship inside the package.

Reads the original images (by default ``../shared/images`` relative to the repository root),
and writes downscaled copies into ``vizwidgets/data/images/``:

- at most 512 pixels on the long side (Lanczos resampling; smaller images are not enlarged);
- RGB (an alpha channel is dropped: the only image with one, ``chicky_512.png``, is almost
  entirely opaque);
- EXIF orientation applied, no metadata kept;
- JPEG, quality 90, with the original base name (``chelsea.png`` -> ``chelsea.jpg``).

Usage::

    python tools/bundle_images.py [SOURCE_DIR]

The provenance of each image is in ``vizwidgets/data/images/CREDITS.md``, which this script
does not write; keep it in step when the set of images changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "images"
DESTINATION = REPO_ROOT / "vizwidgets" / "data" / "images"

MAX_SIDE = 512
JPEG_QUALITY = 90
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}

__all__ = ["bundle_one", "main"]


def bundle_one(source: Path, destination_dir: Path) -> Path:
    """Write a downscaled RGB JPEG copy of one image.

    Parameters
    ----------
    source : Path
        The original image file.
    destination_dir : Path
        Folder for the copy; the copy is named after ``source`` with the suffix ``.jpg``.

    Returns
    -------
    Path
        The file written.
    """
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened)
        image = image.convert("RGB")  # drops alpha; the sources are RGB or near-opaque RGBA
    width, height = image.size
    scale = MAX_SIDE / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    target = destination_dir / f"{source.stem}.jpg"
    image.save(target, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Bundle every image of the source folder; print one line per image and the total size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"folder holding the original images (default: {DEFAULT_SOURCE})",
    )
    args = parser.parse_args(argv)
    source_dir: Path = args.source
    if not source_dir.is_dir():
        parser.error(f"{source_dir} is not a folder")
    originals = sorted(p for p in source_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not originals:
        parser.error(f"no .png or .jpg images in {source_dir}")
    DESTINATION.mkdir(parents=True, exist_ok=True)
    total = 0
    for original in originals:
        written = bundle_one(original, DESTINATION)
        size = written.stat().st_size
        total += size
        with Image.open(written) as check:
            width, height = check.size
        print(
            f"{original.name:18s} -> {written.name:18s} {width:4d}x{height:<4d} "
            f"{size / 1024:6.1f} KiB"
        )
    print(f"{len(originals)} images, {total / 1024:.1f} KiB in {DESTINATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
