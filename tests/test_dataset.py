"""Explaining whole datasets (:mod:`vizwidgets.dataset`, ``python -m vizwidgets explain``):
distributed equals local, shards cover every image once, a killed run resumes without losing or
redoing work, a changed setting recomputes only what it changes, and every way a file or an
argument can be bad ends in a record or a message, never in lost work."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vizwidgets.cli import main as cli_main
from vizwidgets.dataset import SCRATCH, explain_dataset, parse_option, read_records

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "vizwidgets" / "data" / "images"


def _make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct small JPEGs made from the bundled photographs (a third in a subfolder)."""
    sources = sorted(IMAGES.glob("*.jpg"))
    made = []
    for k in range(count):
        picture = Image.open(sources[k % len(sources)]).convert("RGB").resize((96, 96))
        if k // len(sources) % 2:
            picture = ImageOps.mirror(picture)
        target = folder / ("sub" if k % 3 == 0 else ".") / f"img{k:02d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, quality=90)
        made.append(target)
    return made


def _summary(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _maps(out: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(out).as_posix(): np.load(p) for p in sorted((out / "maps").rglob("*.npy"))}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli_main(["explain", *argv, "--no-progress"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _no_children_left() -> None:
    """No worker or nanny process outlives the run (multiprocessing's resource tracker, which
    lives as long as this process, is not one)."""
    import psutil

    def workers() -> list[str]:
        found = []
        for child in psutil.Process().children(recursive=True):
            try:
                line = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "resource_tracker" not in line:
                found.append(line)
        return found

    deadline = time.monotonic() + 20
    while workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers() == [], "a worker process was left running"


@pytest.fixture(scope="module")
def twenty_four(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dataset") / "photos"
    _make_images(folder, 24)
    return folder


@pytest.fixture(scope="module")
def local_run(twenty_four: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: 24 images x 2 methods in this process, one PyTorch thread (as each of the
    two workers below has on this 2-core machine)."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert cli_main(["explain", str(twenty_four), "--method", "grad_cam", "gradient", "--threads", "1",
                     "--out", str(out), "--no-progress"]) == 0
    return out


# ----------------------------------------------------------------------------- distributed = local


@pytest.mark.slow
def test_two_workers_give_the_arrays_of_one_process(
    twenty_four: Path, local_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _maps(local_run)
    assert len(expected) == 48
    out = tmp_path / "out"
    environment = dict(os.environ)
    status, said, _ = _run(capsys, str(twenty_four), "--method", "grad_cam", "gradient", "--workers", "2",
                           "--out", str(out))
    assert status == 0 and "48 explained, 0 already done, 0 failed" in said
    assert dict(os.environ) == environment  # the cluster's OMP_NUM_THREADS=1 stays with its workers
    got = _maps(out)
    assert got.keys() == expected.keys()
    for name, array in expected.items():
        assert np.array_equal(got[name], array), name
    rows = _summary(out)
    pairs = sorted((r["name"], r["method"]) for r in rows)
    assert pairs == sorted((r["name"], r["method"]) for r in _summary(local_run))
    assert len({(r["file"], r["method"]) for r in rows}) == 48 and {r["status"] for r in rows} == {"ok"}
    assert {r["predicted"] for r in rows} == {r["predicted"] for r in _summary(local_run)}
    _no_children_left()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # it takes another loopback port
def test_an_existing_cluster_by_its_address_and_by_a_client(
    twenty_four: Path, local_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from distributed import Client, LocalCluster

    import vizwidgets as vw

    expected = _maps(local_run)
    # one worker running two tasks at once: they share its model, one at a time
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        status, said, _ = _run(capsys, str(twenty_four), "--method", "grad_cam", "gradient", "--scheduler",
                               address, "--out", str(tmp_path / "a"))
        assert status == 0 and "48 explained" in said
        got = _maps(tmp_path / "a")
        assert got.keys() == expected.keys() and all(np.array_equal(got[k], v) for k, v in expected.items())
        # a model object (a practitioner's own, say) goes to each worker once, through a client
        with Client(cluster) as client:
            report = explain_dataset(twenty_four, tmp_path / "b", ["grad_cam"], model=vw.load_model(),
                                     client=client, progress=False, echo=lambda _: None)
            assert report.explained == 24 and report.exit_status == 0
            assert not client.futures or all(f.status != "pending" for f in client.futures.values())
        got = _maps(tmp_path / "b")
        assert all(np.array_equal(v, expected[k]) for k, v in got.items()) and len(got) == 24
        # a model named by module:function is loaded once per worker, not once per task
        loads = tmp_path / "loads.txt"
        (tmp_path / "counted.py").write_text(
            "import os\nimport vizwidgets as vw\n\n"
            f"def model():\n    with open({str(loads)!r}, 'a') as log:\n        log.write(f'{{os.getpid()}}\\n')\n"
            "    return vw.load_model()\n"
        )
        status, said, _ = _run(capsys, str(twenty_four), "--method", "gradient", "--scheduler", address,
                               "--model", f"{tmp_path / 'counted.py'}:model", "--out", str(tmp_path / "c"))
        assert status == 0 and "24 explained" in said
        pids = loads.read_text().split()
        assert pids[0] == str(os.getpid())  # the command's own check of the arguments ...
        assert len(pids) == 2 and pids[1] != pids[0]  # ... then once in the worker, not once per task
    _no_children_left()


def test_shards_cover_every_image_exactly_once(
    twenty_four: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    taken = []
    for k in (1, 2, 3):
        status, said, _ = _run(capsys, str(twenty_four), "--method", "gradient", "--shard", f"{k}/3",
                               "--out", str(out))
        assert status == 0
        taken.append(int(said.split(" explained")[0].split()[-1]))
    assert sum(taken) == 24 and all(taken), taken  # each shard has work; together all 24
    files = [r["file"] for r in read_records(out)]
    assert len(files) == 24 and len(set(files)) == 24  # no image twice, none left out
    assert len(list((out / "records").glob("*shard*of3.jsonl"))) == 3  # one records file per process
    assert len(_summary(out)) == 24
    status, _, err = _run(capsys, str(twenty_four), "--shard", "4/3", "--out", str(out))
    assert status == 2 and "1 <= K <= N" in err


def test_shards_name_outputs_alike_however_few_images_each_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    for where, source in (("cats/x.jpg", "chelsea"), ("dogs/x.jpg", "coffee"), ("y.jpg", "rocket")):
        (folder / where).parent.mkdir(parents=True, exist_ok=True)
        Image.open(IMAGES / f"{source}.jpg").convert("RGB").resize((64, 64)).save(folder / where)
    out = tmp_path / "out"
    for k in range(1, 6):  # five shards for three images: most take one image or none
        assert _run(capsys, str(folder), "--method", "gradient", "--shard", f"{k}/5", "--out", str(out))[0] == 0
    rows = _summary(out)
    assert sorted(r["name"] for r in rows) == ["cats/x.jpg", "dogs/x.jpg", "y.jpg"]
    predicted = {r["name"]: r["predicted_class"] for r in rows}
    assert predicted["cats/x.jpg"] != predicted["dogs/x.jpg"]  # each map is its own image's
    mode = 0o666 & ~_umask()
    for row in rows:  # readable by the team as any file this process makes
        assert (out / row["npy"]).stat().st_mode & 0o777 == mode
        assert (out / row["png"]).stat().st_mode & 0o777 == mode
    assert (out / "summary.csv").stat().st_mode & 0o777 == mode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- killed and resumed


def _complete_records(out: Path) -> list[dict]:
    return list(read_records(out))


@pytest.mark.slow
def test_a_run_killed_part_way_resumes_without_losing_or_redoing_work(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _make_images(folder, 30)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vizwidgets", "explain", str(folder), "--method", "gradient", "grad_cam",
               "--out", str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_complete_records(out)) < 12 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done_before = {(r["file"], r["method"]) for r in _complete_records(out)}
    assert 12 <= len(done_before) < 60
    # what a kill can leave: a temporary file in the middle of its write, a record cut mid-line
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = out / SCRATCH / f"{socket.gethostname()}.{int(dead.stdout)}.abc123.part"
    leftover.write_bytes(b"\x93NUMPY half")
    records = sorted((out / "records").glob("*.jsonl"))
    with records[0].open("ab") as handle:
        handle.write(b'{"file": "/torn/line.jpg", "method": "gradient", "sta')
    stamps = {p: p.stat().st_mtime_ns for p in (out / "maps").rglob("*.npy")}

    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    finished = {(r["file"], r["method"]) for r in _complete_records(out)}
    assert len(finished) == 60
    rerun_file = sorted((out / "records").glob("*.jsonl"))[-1]
    redone = {(r["file"], r["method"]) for r in map(json.loads, rerun_file.read_text().splitlines())}
    assert not redone & done_before  # finished work is not computed again ...
    assert redone | done_before == finished  # ... and nothing is missing
    assert f"{len(done_before)} already done" in again.stdout
    for path, stamp in stamps.items():
        if any(str(path).endswith(f"{Path(f).name}.{m}.npy") for f, m in done_before):
            assert path.stat().st_mtime_ns == stamp
    rows = _summary(out)
    assert sorted((r["file"], r["method"]) for r in rows) == sorted(finished)  # each exactly once
    for row in rows:
        assert row["status"] == "ok"
        array = np.load(out / row["npy"])
        assert array.shape[1:] == (224, 224) and np.isfinite(array).all()
        with Image.open(out / row["png"]) as picture:
            picture.load()
            assert picture.size == (224, 224)
    assert not list(out.rglob("*.part")) and not list((out / SCRATCH).iterdir())


# ----------------------------------------------------------------------------- what the attack found


def test_names_that_differ_by_suffix_or_folder_get_their_own_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import vizwidgets as vw
    from vizwidgets.explain import explain

    folder = tmp_path / "photos"
    (folder / "a").mkdir(parents=True)
    sources = {"x.jpg": "chelsea", "x.png": "coffee", "a/b.jpg": "rocket", "a__b.jpg": "astronaut"}
    for name, source in sources.items():
        Image.open(IMAGES / f"{source}.jpg").convert("RGB").resize((120, 100)).save(folder / name)
    out = tmp_path / "out"
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "--out", str(out))
    assert status == 0 and "4 explained" in said
    rows = {r["name"]: r for r in _summary(out)}
    assert sorted(rows) == sorted(sources)
    assert len({r["npy"] for r in rows.values()}) == 4 and len({r["png"] for r in rows.values()}) == 4
    model = vw.load_model()
    for name in sources:  # each output holds its own file's map, none overwritten by another's
        (alone,) = explain(model, [str(folder / name)], ["gradient"])
        saved = np.load(out / rows[name]["npy"])
        assert np.allclose(saved, alone.results["gradient"].map[0].numpy(), atol=1e-6), name
        assert rows[name]["predicted_class"] == alone.top[0].label


_MODEL_FILE = '''
import os
import vizwidgets as vw

def model():
    loaded = vw.load_model()
    scale = float(os.environ.get("VW_TEST_SCALE", "1"))
    if scale != 1:
        loaded.model.classifier.weight.data.mul_(scale)
    return loaded
'''


@pytest.mark.slow
def test_a_rerun_with_another_setting_recomputes_only_what_it_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    _make_images(folder, 3)
    out = tmp_path / "out"
    base = [str(folder), "--out", str(out)]

    def explained(*extra: str) -> int:
        status, said, err = _run(capsys, *base, *extra)
        assert status == 0, err
        return int(said.split(" explained")[0].split()[-1])

    assert explained("--method", "grad_cam", "integrated_gradients", "--option", "integrated_gradients.steps=4") == 6
    assert explained("--method", "grad_cam", "integrated_gradients", "--option", "integrated_gradients.steps=4") == 0
    # another option: only integrated_gradients is computed again
    assert explained("--method", "grad_cam", "integrated_gradients", "--option", "integrated_gradients.steps=5") == 3
    assert explained("--method", "grad_cam", "--target", "1") == 3  # another target
    assert {r["target"] for r in _summary(out) if r["method"] == "grad_cam"} == {"1"}
    assert explained("--method", "grad_cam", "--target", "1", "--layer", "blocks.5") == 3  # another layer
    assert {r["layer"] for r in _summary(out) if r["method"] == "grad_cam"} == {"blocks.5"}
    assert explained("--method", "grad_cam", "--target", "1", "--layer", "blocks.5", "--metrics", "deletion") == 3
    assert all(0 <= float(r["deletion"]) <= 1 for r in _summary(out) if r["method"] == "grad_cam")
    # the model's name however it is spelled is the same model
    assert explained("--method", "grad_cam", "--target", "1", "--layer", "blocks.5", "--metrics", "deletion",
                     "--model", " EfficientNet_Lite0") == 0
    # another model: by its name, and by its weights under the same name
    (tmp_path / "mymodel.py").write_text(_MODEL_FILE)
    spec = f"{tmp_path / 'mymodel.py'}:model"
    assert explained("--method", "gradient", "--model", spec) == 3
    assert explained("--method", "gradient", "--model", spec) == 0
    monkeypatch.setenv("VW_TEST_SCALE", "2")
    assert explained("--method", "gradient", "--model", spec) == 3
    assert explained("--method", "gradient", "--alpha", "0.7", "--model", spec) == 3  # another picture
    # an edited image is computed again, the others are not
    first = sorted(folder.rglob("*.jpg"))[0]
    ImageOps.flip(Image.open(first)).save(first, quality=90)
    assert explained("--method", "gradient", "--alpha", "0.7", "--model", spec) == 1
    rows = _summary(out)
    assert len(rows) == 3 * 3  # grad_cam, integrated_gradients, gradient: the latest of each, once


def test_maps_without_pictures_and_the_pictures_later(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    _make_images(folder, 2)
    out = tmp_path / "out"
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "--no-pictures", "--out", str(out))
    assert status == 0 and "2 explained" in said
    assert len(list(out.rglob("*.npy"))) == 2 and not list(out.rglob("*.png"))
    assert {r["png"] for r in _summary(out)} == {""}
    assert "0 explained, 2 already done" in _run(capsys, str(folder), "--method", "gradient", "--no-pictures",
                                                 "--out", str(out))[1]
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "--out", str(out))
    assert "2 explained" in said  # the pictures asked for now are drawn
    for row in _summary(out):
        with Image.open(out / row["png"]) as picture:
            assert picture.size == (224, 224)


def _dds_bytes() -> bytes:
    """A real DDS header (magic + 124 bytes) with a pixel format PIL does not implement."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + bytes(44)
    pixel_format = struct.pack("<2I4s", 32, 0x4, b"ABCD") + bytes(20)
    return b"DDS " + header + pixel_format + bytes(20) + bytes(16)


def _huge_png(path: Path, side: int = 20000) -> None:
    """A real, valid 1-bit PNG of side x side pixels: tiny on disk, 400 megapixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes((side + 7) // 8)
    pixels = zlib.compressobj(9)
    body = b"".join(pixels.compress(row) for _ in range(side)) + pixels.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_unreadable_files_become_error_records_and_the_rest_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    _make_images(folder, 2)
    (folder / "texture.png").write_bytes(_dds_bytes())  # PIL raised NotImplementedError on this
    (folder / "corrupt.jpg").write_bytes((IMAGES / "chelsea.jpg").read_bytes()[:300])  # cut short
    (folder / "empty.png").write_bytes(b"")
    _huge_png(folder / "huge.png")
    assert struct.unpack(">II", (folder / "huge.png").read_bytes()[16:24]) == (20000, 20000)  # IHDR
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    out = tmp_path / "out"
    status, said, err = _run(capsys, str(folder), "--method", "gradient", "grad_cam", "--out", str(out))
    assert status == 1  # documented: 1 when any image has an error record
    assert "4 explained, 0 already done, 10 failed (7 images)" in said
    rows = {(Path(r["file"]).name, r["method"]): r for r in _summary(out)}
    expected = {
        "texture.png": "DDS", "corrupt.jpg": "truncated or corrupt", "empty.png": "empty",
        "huge.png": "400,000,000", "dangling.jpg": "does not exist",
    }
    for name, words in expected.items():
        for method in ("gradient", "grad_cam"):
            row = rows[(name, method)]
            assert row["status"] == "error" and words in row["error"], row["error"]
        assert any(name in line and words in line for line in err.splitlines())  # said as it happened
    assert [r["status"] for r in rows.values()].count("ok") == 4
    # errors are kept, not retried ...
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "grad_cam", "--out", str(out))
    assert status == 1 and "0 explained, 14 already done, 10 failed" in said
    # ... unless asked; and a file that is fixed is computed again by itself
    Image.open(IMAGES / "coffee.jpg").save(folder / "corrupt.jpg")
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "--out", str(out))
    assert "1 explained, 6 already done, 4 failed" in said
    status, said, _ = _run(capsys, str(folder), "--method", "gradient", "--out", str(out), "--retry-errors")
    assert "0 explained, 3 already done, 4 failed" in said
    assert len(list(read_records(out))) == 14 + 1 + 4


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "resnet_nope"], ["unknown model 'resnet_nope'", "efficientnet_lite0", "module:function"]),
        (["--model", "no_such_module:make"], ["cannot import 'no_such_module'"]),
        (["--target", "1000"], ["1000"]),
        (["--target", "no such class"], ["no such class"]),
        (["--layer", "nope"], ["nope", "blocks"]),
        (["--method", "nope"], ["unknown method 'nope'", "grad_cam", "lrp"]),
        (["--method", "grad_cam", "--option", "grad_cam.nope=1"], ["no option 'nope'", "upsample"]),
        (["--method", "integrated_gradients", "--option", "integrated_gradients.steps=0"], ["steps", "at least 1"]),
        (["--method", "integrated_gradients", "--option", "integrated_gradients.steps=10000"], ["at most"]),
        (["--option", "smoothgrad.samples=3"], ["not asked for"]),
        (["--option", "steps"], ["METHOD.NAME=VALUE"]),
        (["--batch-size", "0"], ["batch_size", "at least 1"]),
        (["--workers", "0"], ["workers", "at least 1"]),
        (["--shard", "two/3"], ["K/N"]),
        (["--device", "cuda:7"], ["cuda"]),
        (["--alpha", "2"], ["alpha"]),
        (["--scheduler", "tcp://127.0.0.1:9"], ["cannot reach the Dask scheduler", "check the address"]),
    ],
)
def test_bad_arguments_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], words: list[str]
) -> None:
    if extra[:2] == ["--device", "cuda:7"]:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    folder = tmp_path / "photos"
    _make_images(folder, 1)
    out = tmp_path / "out"
    status, said, err = _run(capsys, str(folder), "--out", str(out), *extra)
    assert status == 2
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()  # nothing was written


def test_an_unusable_out_exits_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    _make_images(folder, 1)
    afile = tmp_path / "a.txt"
    afile.write_text("keep me\n")
    for out, words in ((afile, "is a file"), (afile / "sub", "cannot write there"),
                       (Path("/proc/vizwidgets-out"), "cannot write there")):
        status, _, err = _run(capsys, str(folder), "--out", str(out))
        assert status == 2 and words in err and "choose" in err, err
    assert afile.read_text() == "keep me\n"
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        status, _, err = _run(capsys, str(folder), "--out", str(locked))
        assert status == 2 and "cannot write there" in err


def test_parse_option_reads_numbers_booleans_and_words() -> None:
    assert parse_option("integrated_gradients.steps=32") == ("integrated_gradients", "steps", 32)
    assert parse_option("smoothgrad.noise=0.2") == ("smoothgrad", "noise", 0.2)
    assert parse_option("grad_cam.upsample=false") == ("grad_cam", "upsample", False)
    assert parse_option("integrated_gradients.seed=none") == ("integrated_gradients", "seed", None)
    assert parse_option("integrated_gradients.baseline=black") == ("integrated_gradients", "baseline", "black")
    with pytest.raises(ValueError, match="METHOD.NAME=VALUE"):
        parse_option("steps=3")


def test_summary_command_and_parquet_agree_with_the_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pyarrow = pytest.importorskip("pyarrow.parquet")
    folder = tmp_path / "photos"
    _make_images(folder, 3)
    out = tmp_path / "out"
    assert _run(capsys, str(folder), "--method", "gradient", "--out", str(out))[0] == 0
    assert _run(capsys, str(folder), "--method", "gradient", "--target", "2", "--out", str(out))[0] == 0
    (out / "summary.csv").unlink()
    (out / "summary.parquet").unlink()
    assert cli_main(["summary", str(out)]) == 0
    rows = _summary(out)
    assert len(rows) == 3 and {r["target"] for r in rows} == {"2"}  # the latest record of each
    table = pyarrow.read_table(out / "summary.parquet").to_pylist()
    assert [(t["file"], t["target"], t["probability"]) for t in table] == [
        (r["file"], int(r["target"]), float(r["probability"])) for r in rows
    ]
    assert cli_main(["summary", str(tmp_path)]) == 2
    assert "no records" in capsys.readouterr().err
