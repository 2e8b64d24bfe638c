"""Prepared datasets (``wganx data prepare``): the same batches as the in-memory loaders, every
source format, training from them on every backend, and bad input refused in one line with
nothing half-written left looking complete."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wganx_plugins.datasets as ds
from wganx.cli import main as cli_main
from wganx.errors import WganxError
from wganx_plugins.datasets import prepared as pp

from conftest import run_cli

TRAIN = ["--image-size", "16", "--arch", "dcgan", "--maps", "2", "--latent", "8", "-b", "8", "--log-interval", "1",
         "--no-progress", "--threads", "1", "--num-samples", "8", "--save-interval", "2"]


def write_images(root: Path, classes=("cat", "dog", "owl"), per_class=7, seed=0) -> Path:
    """Real PNG and JPEG files of differing sizes, one greyscale and one with alpha."""
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            path = root / c / f"{i:03d}.{'png' if i % 2 else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(root / classes[0] / "grey.png")
    Image.fromarray(rng.integers(0, 256, (26, 26, 4), dtype=np.uint8)).save(root / classes[1] / "alpha.png")
    return root


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


def prepare(source, out, **options):
    options.setdefault("workers", 1)
    options.setdefault("progress", False)
    return pp.prepare(source, out, **options)


def same_batches(a, b, batch=8, seed=3, start=0, count=12):
    for (xa, ya), (xb, yb), _ in zip(a.stream(batch, seed, start), b.stream(batch, seed, start), range(count)):
        assert xa.dtype == xb.dtype == np.float32
        np.testing.assert_array_equal(xa, xb)
        if ya is None:
            assert yb is None
        else:
            np.testing.assert_array_equal(ya, yb)


def leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


# -- the same numbers -------------------------------------------------------------------------
def test_prepared_folder_gives_the_in_memory_batches_bit_for_bit(images, tmp_path):
    memory = ds.load_split("folder", images, image_size=16)
    out, wrote = prepare(images, tmp_path / "prep", image_size=16, workers=2)
    assert wrote and pp.is_prepared(out)
    data = ds.load_split("prepared", out, image_size=16)
    assert isinstance(data.x, np.memmap)
    np.testing.assert_array_equal(np.asarray(data.x), memory.x)
    np.testing.assert_array_equal(np.asarray(data.labels), memory.labels)
    assert (data.class_names, data.num_classes, data.sample_shape) == (["cat", "dog", "owl"], 3, (3, 16, 16))
    same_batches(memory, data)
    same_batches(memory, data, start=7)  # a resumed stream: batch 7 on, past an epoch boundary
    # --dataset folder on a prepared folder reads it too
    np.testing.assert_array_equal(np.asarray(ds.load_split("folder", out, image_size=16).x), memory.x)


def test_shares_of_every_batch_make_the_batch(images, tmp_path):
    """Each of ``count`` processes reads its contiguous rows; together they are the batch."""
    out, _ = prepare(images, tmp_path / "prep", image_size=8)
    data = pp.open_prepared(out)
    whole = [b for b, _ in zip(data.stream(8, 5, 2), range(6))]
    for count in (2, 4):
        shares = [[b for b, _ in zip(data.share(8, 5, 2, i, count), range(6))] for i in range(count)]
        for k, (x, y) in enumerate(whole):
            np.testing.assert_array_equal(np.concatenate([s[k][0] for s in shares]), x)
            np.testing.assert_array_equal(np.concatenate([s[k][1] for s in shares]), y)
            assert all(len(s[k][0]) == 8 // count for s in shares)


def test_prepare_twice_does_nothing_and_other_settings_need_overwrite(images, tmp_path, capsys):
    out = tmp_path / "prep"
    assert cli_main(["data", "prepare", str(images), "-o", str(out), "--image-size", "8", "--no-progress",
                     "--workers", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    stamp = (out / pp.DATA).stat().st_mtime_ns
    assert cli_main(["data", "prepare", str(images), "-o", str(out), "--image-size", "8", "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / pp.DATA).stat().st_mtime_ns == stamp
    assert cli_main(["data", "prepare", str(images), "-o", str(out), "--image-size", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "prepared with other settings; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert pp.open_prepared(out).sample_shape == (3, 8, 8)  # untouched
    assert cli_main(["data", "prepare", str(images), "-o", str(out), "--image-size", "4", "--no-progress",
                     "--overwrite", "--workers", "1"]) == 0
    assert pp.open_prepared(out).sample_shape == (3, 4, 4) and leftovers(tmp_path) == []
    assert cli_main(["data", "check", str(out)]) == 0
    assert "intact" in capsys.readouterr().out


def test_large_folder_says_how_to_prepare_it(images, monkeypatch, capsys):
    monkeypatch.setattr(ds, "PREPARE_HINT_IMAGES", 10)
    ds.load_split("folder", images, image_size=8)
    assert "wganx data prepare" in capsys.readouterr().err


# -- the source formats -----------------------------------------------------------------------
def test_stylegan_zip_with_labels_equals_the_folder(images, tmp_path):
    """A StyleGAN ``dataset_tool.py``-style zip: the images, and ``dataset.json`` of labels."""
    files, _ = ds.folder_files(images)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path, label in files:
            z.write(path, f"{path.parent.name}/{path.name}")
        z.writestr("dataset.json", json.dumps({"labels": [[f"{p.parent.name}/{p.name}", y] for p, y in files]}))
    zipped = pp.open_prepared(prepare(archive, tmp_path / "z", image_size=16)[0])
    folder = ds.load_split("folder", images, image_size=16)
    np.testing.assert_array_equal(np.asarray(zipped.x), folder.x)
    np.testing.assert_array_equal(np.asarray(zipped.labels), folder.labels)
    same_batches(folder, zipped)

    unlabelled = tmp_path / "plain.zip"
    with zipfile.ZipFile(archive) as z, zipfile.ZipFile(unlabelled, "w") as out:
        for name in z.namelist():
            if name != "dataset.json":
                out.writestr(name, z.read(name))
    plain = pp.open_prepared(prepare(unlabelled, tmp_path / "p", image_size=16)[0])
    assert plain.labels is None and plain.num_classes == 0 and len(plain) == len(folder)


def test_zip_errors(tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "no images")
    with pytest.raises(WganxError, match="holds no images"):
        prepare(empty, tmp_path / "a")
    partly = tmp_path / "partly.zip"
    with zipfile.ZipFile(partly, "w") as z:
        for name in ("a.png", "b.png"):
            buffer = __import__("io").BytesIO()
            Image.new("RGB", (4, 4)).save(buffer, "PNG")
            z.writestr(name, buffer.getvalue())
        z.writestr("dataset.json", json.dumps({"labels": [["a.png", 1]]}))
    with pytest.raises(WganxError, match="no label for b.png"):
        prepare(partly, tmp_path / "b")
    (tmp_path / "not.zip").write_bytes(b"PK but not really")
    with pytest.raises(WganxError, match="not a readable zip"):
        prepare(tmp_path / "not.zip", tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.zip", "not.zip", "partly.zip"]


def test_hdf5_images_and_vectors(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 4, 20)
    showers = rng.standard_normal((30, 5))
    with h5py.File(tmp_path / "set.h5", "w") as f:  # StudioGAN's layout: imgs, labels
        f["imgs"], f["labels"] = x, y
    with h5py.File(tmp_path / "calo.hdf5", "w") as f:  # CaloChallenge's: showers, incident_energies
        f["showers"], f["incident_energies"] = showers, rng.random((30, 1))
    data = pp.open_prepared(prepare(tmp_path / "set.h5", tmp_path / "a")[0])
    np.testing.assert_array_equal(np.asarray(data.x), x)
    np.testing.assert_array_equal(np.asarray(data.labels), y)
    same_batches(ds.ArrayDataset(x, y), data, batch=4)
    with pytest.raises(WganxError, match=r"which entry holds the samples\? pass --key .*incident_energies, showers"):
        prepare(tmp_path / "calo.hdf5", tmp_path / "b")
    points = pp.open_prepared(prepare(tmp_path / "calo.hdf5", tmp_path / "b", key="showers")[0])
    assert points.kind == "points" and points.sample_shape == (5,) and points.x.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(points.x), showers.astype(np.float32))
    with pytest.raises(WganxError, match="has no entry 'energy'"):
        prepare(tmp_path / "calo.hdf5", tmp_path / "c", key="energy")
    with h5py.File(tmp_path / "floats.h5", "w") as f:
        f["images"] = x.astype(np.float32)
    with pytest.raises(WganxError, match="holds float32 images; prepare reads images as uint8"):
        prepare(tmp_path / "floats.h5", tmp_path / "d")
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(WganxError, match="not a readable HDF5 file"):
        prepare(tmp_path / "broken.h5", tmp_path / "e")


def test_npy_and_npz_arrays(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((40, 7))
    np.save(tmp_path / "v.npy", vectors)
    data = pp.open_prepared(prepare(tmp_path / "v.npy", tmp_path / "v")[0])
    assert (data.kind, data.sample_shape, data.labels) == ("points", (7,), None)
    np.testing.assert_array_equal(np.asarray(data.x), vectors.astype(np.float32))
    same_batches(ds.ArrayDataset(vectors.astype(np.float32), kind="points"), data, batch=16)

    x = rng.integers(0, 256, (12, 1, 10, 10), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", x=x, y=np.arange(12) % 3)
    images = pp.open_prepared(prepare(tmp_path / "set.npz", tmp_path / "i", image_size=8)[0])
    assert images.sample_shape == (1, 8, 8) and images.num_classes == 3
    np.testing.assert_array_equal(np.asarray(images.x), ds._formats.resize(x, 8))

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None]), allow_pickle=True)
    with pytest.raises(WganxError, match="not a readable .npy file"):  # never unpickled
        prepare(tmp_path / "objects.npy", tmp_path / "o")
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with pytest.raises(WganxError, match=r"has shape \(10,\): expected \(N, D\) vectors, or uint8 images"):
        prepare(tmp_path / "flat.npy", tmp_path / "f")
    np.save(tmp_path / "five.npy", np.zeros((4, 5, 8, 8), np.uint8))
    with pytest.raises(WganxError, match="images must have 1 or 3 channels, first .* or last"):
        prepare(tmp_path / "five.npy", tmp_path / "g")
    np.save(tmp_path / "wide.npy", np.zeros((4, 8, 8), np.float64))
    with pytest.raises(WganxError, match="holds float64 images; prepare reads images as uint8"):
        prepare(tmp_path / "wide.npy", tmp_path / "k")
    nhwc = rng.integers(0, 256, (6, 10, 12, 3), dtype=np.uint8)  # channels last, and greyscale (N, H, W)
    np.save(tmp_path / "nhwc.npy", nhwc)
    np.save(tmp_path / "nhw.npy", nhwc[..., 0])
    np.testing.assert_array_equal(np.asarray(pp.open_prepared(prepare(tmp_path / "nhwc.npy", tmp_path / "c3")[0]).x),
                                  nhwc.transpose(0, 3, 1, 2))
    grey = pp.open_prepared(prepare(tmp_path / "nhw.npy", tmp_path / "c1", image_size=8)[0])
    np.testing.assert_array_equal(np.asarray(grey.x), ds._formats.resize(nhwc[:, None, :, :, 0], 8))
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(WganxError, match="row 1 of the source is not finite"):
        prepare(tmp_path / "nan.npy", tmp_path / "h")
    np.savez(tmp_path / "badlabels.npz", x=x, labels=np.arange(5))
    with pytest.raises(WganxError, match="labels must be 12 integers"):
        prepare(tmp_path / "badlabels.npz", tmp_path / "j")
    assert not any(p.is_dir() for p in tmp_path.iterdir() if p.name not in ("v", "i", "c1", "c3"))


# -- bad input: one line, nothing lost ---------------------------------------------------------
def test_damaged_truncated_newer_and_changed_copies_are_refused(images, tmp_path):
    out, _ = prepare(images, tmp_path / "prep", image_size=8)
    data_file, manifest = out / pp.DATA, out / pp.MANIFEST
    size = data_file.stat().st_size
    with open(data_file, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(WganxError, match=r"data.npy is truncated \(\d+ bytes, expected \d+\); prepare it again: "
                                         r"wganx data prepare .* --overwrite"):
        pp.open_prepared(out)
    with pytest.raises(WganxError, match="data.npy is truncated"):  # not "up to date"
        prepare(images, out, image_size=8)
    prepare(images, out, image_size=8, overwrite=True)
    assert len(pp.open_prepared(out)) == 23

    original = manifest.read_text()
    manifest.write_text(original.replace('"version": 1', '"version": 2'))
    with pytest.raises(WganxError, match="prepared by a newer wganx \\(format version 2; this wganx reads up to 1\\)"):
        pp.open_prepared(out)
    manifest.write_text(original[:40])
    with pytest.raises(WganxError, match="manifest.json is damaged"):
        pp.open_prepared(out)
    manifest.write_text(original)

    with open(data_file, "r+b") as f:  # a flipped byte: caught by wganx data check
        f.seek(size - 1)
        byte = f.read(1)
        f.seek(size - 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WganxError, match="data.npy is damaged \\(its sha256 differs"):
        pp.verify(out)

    Image.new("RGB", (9, 9)).save(images / "owl" / "new.png")  # the source changes
    with pytest.raises(WganxError, match=f"{images} changed since .* was prepared; prepare it again: "
                                         f"wganx data prepare {images} -o .* --image-size 8 --overwrite"):
        pp.open_prepared(out)
    with pytest.raises(WganxError, match="changed since it was prepared; pass --overwrite"):
        prepare(images, out, image_size=8)
    assert len(pp.open_prepared(prepare(images, out, image_size=8, overwrite=True)[0])) == 24


def test_source_stamp_notices_images_added_or_removed_in_each_layout(tmp_path):
    import time

    tick = 0.05  # folder times come from the kernel's coarse clock (one tick: 1 to 10 ms)
    for layout in ("loose", "classes", "train/classes"):
        root = tmp_path / layout.replace("/", "-")
        where = root / layout.replace("loose", "").replace("classes", "cat")
        where.mkdir(parents=True)
        if layout == "train/classes":
            (root / "test" / "cat").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(where / "a.png")
        stamp = pp.source_stamp(root)
        assert pp.source_stamp(root) == stamp, layout
        time.sleep(tick)
        Image.new("RGB", (4, 4)).save(where / "b.png")
        assert pp.source_stamp(root) != stamp, layout
        stamp = pp.source_stamp(root)
        time.sleep(tick)
        (where / "a.png").unlink()
        assert pp.source_stamp(root) != stamp, layout
    assert pp.source_stamp(tmp_path / "gone") is None


def test_unreadable_image_is_named_and_skipped_only_when_asked(images, tmp_path):
    (images / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    good = Image.new("RGB", (20, 20))
    good.save(images / "owl" / "cut.png")
    data = (images / "owl" / "cut.png").read_bytes()
    (images / "owl" / "cut.png").write_bytes(data[:len(data) // 2])  # a valid header, truncated pixels
    with pytest.raises(WganxError, match=r"cannot read image .*dog/broken.jpg .*\(and 1 more\)?.*--skip-bad"):
        prepare(images, tmp_path / "a", image_size=8)
    assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []
    out, _ = prepare(images, tmp_path / "a", image_size=8, skip_bad=True)
    manifest = pp.read_manifest(out)
    assert [s.split(":")[0] for s in manifest["skipped"]] == [str(images / "dog" / "broken.jpg"),
                                                              str(images / "owl" / "cut.png")]
    data = pp.open_prepared(out)
    assert len(data) == len(data.labels) == 23 and np.bincount(data.labels).tolist() == [8, 8, 7]


FILL_SCRIPT = """
import resource, signal, sys
from wganx.errors import WganxError
from wganx_plugins.datasets.prepared import prepare
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
try:
    prepare(sys.argv[1], sys.argv[2], workers=1, progress=False, overwrite=True)
except WganxError as exc:
    print(exc)
    sys.exit(2)
"""


def test_a_full_disk_leaves_nothing_that_looks_complete(tmp_path):
    """Writes fail past a file-size limit (RLIMIT_FSIZE), as on a full disk: the new copy is
    not kept, and an older complete copy stays as it was."""
    np.save(tmp_path / "big.npy", np.random.default_rng(0).integers(0, 256, (200, 3, 16, 16), dtype=np.uint8))
    np.save(tmp_path / "small.npy", np.zeros((20, 3, 16, 16), np.uint8))
    out = tmp_path / "prep"
    prepare(tmp_path / "small.npy", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    run = subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(tmp_path / "big.npy"), str(out), "60000"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "writing" in run.stdout and "nothing was kept" in run.stdout and len(run.stdout.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path) == []
    assert len(pp.open_prepared(out)) == 20


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_prepare_leaves_nothing(tmp_path, sig):
    """Ctrl-C (to the whole process group, workers included) or SIGTERM while preparing: exit
    130/143 in one line, no prepared folder, no hidden partial one, no worker left."""
    import signal
    import time

    write_images(tmp_path / "images", per_class=300)
    proc = subprocess.Popen([sys.executable, "-m", "wganx", "data", "prepare", str(tmp_path / "images"), "-o",
                             str(tmp_path / "prep"), "--image-size", "8", "--workers", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any(".partial-" in p.name for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "prepare ended before it could be stopped"
            time.sleep(0.01)
        os.killpg(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[sig], err
    assert f"stopped by {sig}" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers (same process group) end too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("a worker process outlived the interrupted prepare")


def test_out_folder_that_is_not_prepared_is_never_written_into(images, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(WganxError, match="is a folder that is not a prepared dataset; choose another -o"):
        prepare(images, tmp_path / "mine")
    with pytest.raises(WganxError, match="lies inside the source"):
        prepare(images, images / "prepared")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_image_size_must_match_the_prepared_one(images, tmp_path):
    out, _ = prepare(images, tmp_path / "prep", image_size=8)
    with pytest.raises(WganxError, match="prepared at 8x8; train with --image-size 8, or prepare it again"):
        ds.load_split("prepared", out, image_size=16)


# -- training from a prepared copy -------------------------------------------------------------
def test_training_from_a_prepared_folder_equals_the_folder_and_resumes(backend_name, images, tmp_path):
    out, _ = prepare(images, tmp_path / "prep", image_size=16)
    runs = {}
    for name, args in (("memory", ["--dataset", "folder", "--data-dir", images]),
                       ("prepared", ["--dataset", "prepared", "--data-dir", out])):
        runs[name] = tmp_path / name
        assert cli_main(["train", "--backend", backend_name, *map(str, args), *TRAIN, "-i", "4",
                         "--monitor-path", str(runs[name])]) == 0
    split = tmp_path / "split"
    for iterations, more in (("2", []), ("4", ["--resume"])):
        assert cli_main(["train", "--backend", backend_name, "--dataset", "prepared", "--data-dir", str(out),
                         *TRAIN, "-i", iterations, "--monitor-path", str(split), *more]) == 0
    rows = [[{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_rows(runs[n])]
            for n in ("memory", "prepared")] + [[{k: v for k, v in r.items() if k != "elapsed_s"}
                                                 for r in read_rows(split)]]
    assert rows[0] == rows[1] == rows[2] and len(rows[0]) == 4


def read_rows(folder):
    import csv

    with open(folder / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_vectors_train_with_the_mlp_and_evaluate(backend_name, tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).standard_normal((64, 5)))
    out = run_cli("data", "prepare", tmp_path / "v.npy", "-o", tmp_path / "v", "--no-progress", timeout=120)
    assert out.returncode == 0, out.stderr
    assert cli_main(["train", "--backend", backend_name, "--dataset", "prepared", "--data-dir", str(tmp_path / "v"),
                     "--arch", "mlp", "--maps", "8", "--latent", "2", "-b", "16", "-i", "2", "--no-progress",
                     "--threads", "1", "--num-samples", "16", "--monitor-path", str(tmp_path / "run")]) == 0
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["dataset"]["sample_shape"] == [5] and info["dataset"]["samples"] == 64
    capsys.readouterr()
    assert cli_main(["evaluate", "--model-load-path", str(tmp_path / "run" / "params_000002.safetensors"),
                     "--num-samples", "32", "--json"]) == 0  # measured as vectors, not as images
    assert json.loads(capsys.readouterr().out)["metrics"] == ["energy"]  # the vectors metric

