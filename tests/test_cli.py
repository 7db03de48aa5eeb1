"""The batch command, ``python -m vizwidgets explain``: its help, its method list, what it
finds, what it writes and how it reports files it cannot read."""

from __future__ import annotations

import csv
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vizwidgets.cli import find_images
from vizwidgets.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "vizwidgets" / "data" / "images"


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as raised:
        cli_main(argv)
    assert raised.value.code == 0
    return capsys.readouterr().out


# ----------------------------------------------------------------------------- help and --list


def test_explain_help_describes_every_output(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["explain", "--help"], capsys)
    after = text.split("it writes, into DIR:", 1)[1]  # the description goes on past the colon
    for name in ("maps/<name>.<method>.png", "maps/<name>.<method>.npy", "records/*.jsonl", "summary.csv",
                 "status", "summary DIR"):
        assert name in after, name
    assert "Nothing inside DIR is explained" in text  # the output folder is left alone
    assert "never explained" in text  # ... and --out says so too
    assert "``" not in text  # reStructuredText markup is not shown in a terminal
    assert "--list" in text and "Exit status: 0" in text and "2 for a mistake in the arguments" in text


def test_list_prints_the_registered_methods(capsys: pytest.CaptureFixture[str]) -> None:
    from vizwidgets.attribution import METHODS

    # --list works without the arguments explain otherwise requires, and exits 0
    listing = _help(["explain", "--list"], capsys)
    lines = listing.splitlines()
    for name, method in METHODS.items():
        line = next(line for line in lines if line.split()[:1] == [name])
        assert method.family in line.split() and method.description.split(":")[0] in line
    assert "grad_cam" in listing.splitlines()[-1] or "grad_cam" in listing.splitlines()[-2]  # --layer
    assert cli_main(["methods"]) == 0
    assert capsys.readouterr().out == listing


def test_the_help_refers_only_to_options_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["explain", "--help"], capsys)
    described, options = text.split("\noptions:\n")
    offered = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", options, flags=re.MULTILINE))
    assert {"--list", "--method", "--out"} <= offered
    mentioned = set(re.findall(r"(--[a-z][\w-]*)", described + " ".join(
        line.split("  ", 2)[-1] for line in options.splitlines()
    )))
    assert mentioned <= offered, f"the help names options that do not exist: {mentioned - offered}"


def test_an_unknown_method_lists_the_valid_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_main(["explain", str(tmp_path), "--method", "nope", "--out", str(tmp_path / "o")])
    assert status == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "grad_cam" in err and "lrp" in err
    assert "python -m vizwidgets methods" in err


# ----------------------------------------------------------------------------- finding images


def _two_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "chelsea.jpg", folder / "coffee.png"]
    Image.open(IMAGES / "chelsea.jpg").save(paths[0])
    Image.open(IMAGES / "coffee.jpg").convert("RGB").resize((160, 120)).save(paths[1])
    return paths


def test_find_images_leaves_out_the_output_folder(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    images = _two_images(folder)
    out = folder / "results"
    (out / "deeper").mkdir(parents=True)
    for leftover in (out / "chelsea.grad_cam.png", out / "deeper" / "coffee.grad_cam.png"):
        Image.new("RGB", (4, 4)).save(leftover)
    for exclude in (out, Path(os.path.relpath(out))):  # absolute or relative to the cwd
        assert find_images([str(folder)], exclude=exclude) == (images, [])
        files, missing = find_images([str(folder / "**" / "*.png")], exclude=exclude)
        assert files == [images[1]] and missing == []
    files, missing = find_images([str(out)], exclude=out)
    assert files == [] and "outside the output folder --out" in missing[0][1]
    files, missing = find_images([str(out / "chelsea.grad_cam.png")], exclude=out)
    assert files == [] and "inside the output folder" in missing[0][1]
    assert len(find_images([str(folder)])[0]) == 4  # without exclude, everything is found


def test_output_folder_inside_the_input_is_not_explained_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command, run twice: python -m vizwidgets explain . --out results/
    folder = tmp_path / "photos"
    _two_images(folder)
    monkeypatch.chdir(folder)
    argv = ["explain", ".", "--out", "results/", "--no-progress"]
    assert cli_main(argv) == 0
    assert "2 explained, 0 already done, 0 failed" in capsys.readouterr().out
    written = sorted(p.relative_to(folder).as_posix() for p in (folder / "results").rglob("*") if p.is_file()
                     and "records" not in p.parts)
    assert "results/maps/chelsea.jpg.grad_cam.png" in written and "results/maps/coffee.png.grad_cam.png" in written
    assert cli_main(argv) == 0
    assert "0 explained, 2 already done, 0 failed" in capsys.readouterr().out
    rows = _rows(folder / "results")
    assert sorted(Path(row["file"]).name for row in rows) == ["chelsea.jpg", "coffee.png"]
    assert not any("results" in Path(row["file"]).parts for row in rows)
    assert not list((folder / "results").rglob("*.grad_cam.png.grad_cam.*"))  # no overlay explained
    assert sorted(p.relative_to(folder).as_posix() for p in (folder / "results").rglob("*") if p.is_file()
                  and "records" not in p.parts) == written


# ----------------------------------------------------------------------------- files it cannot read


def _dds_bytes() -> bytes:
    """A real DDS header (magic + 124 bytes) with a pixel format PIL does not implement."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + bytes(44)
    pixel_format = struct.pack("<2I4s", 32, 0x4, b"ABCD") + bytes(20)
    return b"DDS " + header + pixel_format + bytes(20) + bytes(16)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_files_it_cannot_read_are_named_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    _two_images(folder)
    (folder / "texture.png").write_bytes(_dds_bytes())  # a DDS file with a PNG name
    (folder / "notes.jpg").write_text("not an image\n")
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    out = tmp_path / "out"
    assert cli_main(["explain", str(folder), "--method", "gradient", "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "2 explained, 0 already done, 4 failed" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4  # one line per file
    expected = {
        "texture.png": ("in DDS format", "magick image.dds image.png"),
        "notes.jpg": ("could not be read as an image", "JPEG, PNG, BMP, GIF, TIFF and WebP"),
        "loop_a.jpg": ("loop of symbolic links", "fix the links"),
        "loop_b.jpg": ("loop of symbolic links", "fix the links"),
    }
    for name, (problem, fix) in expected.items():
        line = next(line for line in errors if f"{name}'" in line)
        assert problem in line and fix in line
        assert line.count(str(folder / name)) == 1  # named once, not twice
        assert "PSD" not in line and "ICNS" not in line  # no list of every format PIL knows
    rows = _rows(out)
    assert sorted(r["status"] for r in rows) == ["error"] * 4 + ["ok"] * 2


# ----------------------------------------------------------------------------- whole runs


def _folder_of_twenty(path: Path) -> Path:
    images = sorted(IMAGES.glob("*.jpg"))
    path.mkdir()
    for source in images:
        Image.open(source).save(path / source.name)
    for k, source in enumerate(images[:7]):  # 7 more: PNG copies, one in a subfolder
        target = path / ("more" if k == 0 else ".") / f"copy{k}.png"
        target.parent.mkdir(exist_ok=True)
        Image.open(source).convert("RGB").resize((160, 120)).save(target)
    (path / "broken.jpg").write_bytes(b"this is not a JPEG")
    return path


def test_batch_command_on_a_folder_with_a_corrupt_file(tmp_path, capsys) -> None:
    folder = _folder_of_twenty(tmp_path / "photos")
    out = tmp_path / "out"
    status = cli_main(["explain", str(folder), "--method", "grad_cam", "--out", str(out), "--no-progress"])
    assert status == 1
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "19 explained, 0 already done, 1 failed" in captured.out
    assert len(list(out.rglob("*.png"))) == 19 and len(list(out.rglob("*.npy"))) == 19
    rows = _rows(out)
    assert len(rows) == 20
    assert [r["status"] for r in rows].count("ok") == 19
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["file"].endswith("broken.jpg")
    chelsea = next(r for r in rows if r["file"].endswith("chelsea.jpg"))
    assert chelsea["predicted_class"] == "Egyptian cat" and chelsea["target"] == "285"
    assert np.load(out / "maps" / "chelsea.jpg.grad_cam.npy").shape == (1, 224, 224)
    assert (out / "maps" / "more" / "copy0.png.grad_cam.png").is_file()  # a file in a subfolder keeps its path
    assert (out / "summary.csv").read_text().count("\n") == 21
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    # a second run skips the 19 finished files, and the broken one (its error is kept)
    assert cli_main(["explain", str(folder), "--out", str(out), "--no-progress"]) == 1
    assert "0 explained, 20 already done, 1 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert len(_rows(out)) == 20


def test_batch_command_runs_as_a_module(tmp_path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    Image.open(IMAGES / "coffee.jpg").save(folder / "coffee.jpg")
    result = subprocess.run(
        [sys.executable, "-m", "vizwidgets", "explain", str(folder / "*.jpg"), "--method", "gradient",
         "--target", "espresso", "--metrics", "deletion", "--out", str(tmp_path / "o"), "--no-progress"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (row,) = _rows(tmp_path / "o")
    assert row["target_class"] == "espresso" and 0 <= float(row["deletion"]) <= 1
    bad = subprocess.run(
        [sys.executable, "-m", "vizwidgets", "explain", str(folder), "--method", "nope", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2 and "unknown method 'nope'" in bad.stderr
