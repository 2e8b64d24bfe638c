"""The datasets plugin: real MNIST/Fashion-MNIST/CIFAR-10 JPEGs from ../shared/data, and
CIFAR-10/SVHN files written in their official formats (those files are not available
offline). Downloads run through the real code over ``file://`` URLs and a local socket."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wganx
from wganx.data import ArrayDataset, SamplerDataset
from wganx.errors import WganxError
from wganx_plugins import datasets as ds
from wganx_plugins.datasets import _download, toy

from conftest import extract_cifar_jpegs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                  reason=f"real datasets not found at {SHARED}")

# Published per-class counts of the MNIST training set.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def file_url(path) -> str:
    return Path(path).resolve().as_uri()


def leftovers(directory: Path) -> list:
    """Temporary or partial files a download or extraction may have left."""
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith((".part", ".tmp")))


# --- the hook ------------------------------------------------------------------------------

def test_hook_registers_every_dataset_with_its_kind():
    registry = wganx.plugins.Registry.from_plugins([ds], entry_points=False)
    assert registry.names("dataset") == sorted(
        ["mnist", "fashion-mnist", "cifar10", "svhn", "folder", "prepared", "digits",
         "8gaussians", "25gaussians", "swissroll"])
    assert registry.get("dataset", "swissroll").kind == "points"
    assert registry.get("dataset", "cifar10").kind == "image"
    assert all(registry.get("dataset", n).description for n in registry.names("dataset"))


def test_hookspec_example_through_installed_entry_point():
    data = wganx.registry().get("dataset", "8gaussians").load(None, None, False)
    x, labels = next(data.batches(16, np.random.default_rng(0)))
    assert (x.shape, x.dtype.name, labels) == ((16, 2), "float32", None)


# --- toy sets ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,k,extent", [("8gaussians", 8, 2 / 1.414), ("25gaussians", 25, 4 / 2.828)])
def test_mixture_samples_cluster_on_their_modes(name, k, extent):
    centres, std = ds.mode_centers(name), ds.mode_std(name)
    assert centres.shape == (k, 2) and np.isclose(np.abs(centres).max(), extent)
    data = ds.load_split(name)
    assert isinstance(data, SamplerDataset) and data.sample_shape == (2,)
    x, labels = next(data.batches(20000, np.random.default_rng(1)))
    assert x.dtype == np.float32 and labels is None
    dist = np.linalg.norm(x[:, None] - centres[None], axis=2)
    nearest = dist.argmin(axis=1)
    offsets = x - centres[nearest]
    assert dist.min(axis=1).max() < 6 * std  # every point on some mode
    assert np.allclose(offsets.std(axis=0), std, rtol=0.05)  # with the paper's spread
    counts = np.bincount(nearest, minlength=k)
    assert counts.min() > 0.8 * 20000 / k  # and the modes equally likely


def test_mode_centers_match_the_paper():
    assert np.allclose(ds.mode_centers("8gaussians")[:4],
                       np.array([(2, 0), (-2, 0), (0, 2), (0, -2)]) / 1.414)
    grid = ds.mode_centers("25gaussians") * 2.828
    assert sorted(set(np.round(grid[:, 0], 6))) == [-4, -2, 0, 2, 4]
    assert ds.mode_std("8gaussians") == pytest.approx(0.02 / 1.414)
    assert ds.mode_std("25gaussians") == pytest.approx(0.05 / 2.828)
    with pytest.raises(WganxError, match="no modes"):
        ds.mode_centers("swissroll")


def test_swissroll_equals_scikit_learn():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    expected = sklearn_datasets.make_swiss_roll(500, noise=0.25, random_state=3)[0][:, [0, 2]] / 7.5
    ours = toy.sample_swissroll(np.random.RandomState(3), 500)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    x, _ = next(ds.load_split("swissroll").batches(4000, np.random.default_rng(0)))
    radius = np.linalg.norm(x, axis=1) * 7.5  # the roll spans t in [1.5 pi, 4.5 pi]
    assert np.percentile(radius, 1) > 1.5 * np.pi - 1 and np.percentile(radius, 99) < 4.5 * np.pi + 1


@pytest.mark.parametrize("name", ["8gaussians", "swissroll", "digits"])
def test_batches_are_determined_by_the_seed(name):
    data = ds.load_split(name)

    def take(seed):
        it = data.batches(64, np.random.default_rng(seed))
        return [next(it) for _ in range(3)]

    a, b, c = take(5), take(5), take(6)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        assert (ya is None and yb is None) or np.array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


# --- digits --------------------------------------------------------------------------------

def test_digits_scaled_to_unit_range_and_resizable():
    pytest.importorskip("sklearn")
    data = ds.load_split("digits")
    assert isinstance(data, ArrayDataset)
    assert (len(data), data.sample_shape, data.num_classes) == (1797, (1, 8, 8), 10)
    assert data.x.min() == -1.0 and data.x.max() == 1.0
    assert np.array_equal(np.unique(data.labels), np.arange(10))
    x, y = next(data.batches(32, np.random.default_rng(0)))
    assert x.dtype == np.float32 and y.dtype == np.int64
    big = ds.load_split("digits", image_size=32)
    assert big.sample_shape == (1, 32, 32) and big.x.min() >= -1 and big.x.max() <= 1
    # resizing keeps the picture: the mean brightness of each digit barely moves
    assert np.abs(big.x.mean(axis=(1, 2, 3)) - data.x.mean(axis=(1, 2, 3))).max() < 0.1
    with pytest.raises(WganxError, match="only a train split"):
        ds.load_split("digits", split="test")


# --- MNIST and Fashion-MNIST (real files) --------------------------------------------------

@needs_shared
@pytest.mark.parametrize("name,counts", [("mnist", MNIST_TRAIN_COUNTS),
                                         ("fashion-mnist", [6000] * 10)])
def test_real_idx_train_sets(name, counts):
    data = wganx.registry().get("dataset", name).load(SHARED / name, None, False)
    assert (len(data), data.sample_shape, data.num_classes) == (60000, (1, 28, 28), 10)
    assert data.x.dtype == np.uint8 and data.x.max() == 255 and data.x.min() == 0
    assert np.bincount(data.labels).tolist() == counts
    x, y = next(data.batches(256, np.random.default_rng(0)))
    assert x.dtype == np.float32 and x.shape == (256, 1, 28, 28)
    assert x.min() == -1.0 and x.max() == 1.0
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9


@needs_shared
def test_real_mnist_test_split_resized_from_the_shared_root(monkeypatch):
    monkeypatch.setenv("WGANX_DATA_DIR", str(SHARED))  # default directory: $WGANX_DATA_DIR/mnist
    native = ds.load_split("mnist", None, "test")
    assert len(native) == 10000
    resized = ds.load_split("mnist", SHARED, "test", image_size=32)  # root holding mnist/
    assert resized.sample_shape == (1, 32, 32) and resized.x.dtype == np.uint8
    np.testing.assert_array_equal(resized.labels, native.labels)
    ink = lambda x: (x > 127).mean(axis=(1, 2, 3))  # noqa: E731
    assert np.abs(ink(resized.x) - ink(native.x)).mean() < 0.02


def _copy_mnist(tmp_path) -> Path:
    target = tmp_path / "mnist"
    shutil.copytree(SHARED / "mnist", target)
    for p in target.iterdir():
        p.chmod(0o644)
    return target


def _rewrite_gz(path: Path, payload: bytes):
    path.write_bytes(gzip.compress(payload))


@needs_shared
def test_damaged_mnist_files_are_refused_by_name(tmp_path):
    folder = _copy_mnist(tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    good = gzip.decompress(labels.read_bytes())

    labels.write_bytes(labels.read_bytes()[:2000])  # a cut download
    with pytest.raises(WganxError, match="t10k-labels-idx1-ubyte.gz is damaged or truncated"):
        ds.load_split("mnist", folder, "test")

    _rewrite_gz(labels, good[:-10])  # valid gzip, short content
    with pytest.raises(WganxError, match=r"t10k-labels-idx1-ubyte.gz is truncated: header says 10000"):
        ds.load_split("mnist", folder, "test")

    flipped = bytearray(good)
    flipped[100] = (flipped[100] + 1) % 10  # one wrong label, a perfectly valid file
    _rewrite_gz(labels, bytes(flipped))
    with pytest.raises(WganxError, match="t10k-labels-idx1-ubyte.gz: decompressed content has md5"):
        ds.load_split("mnist", folder, "test")

    _rewrite_gz(labels, b"\x00\x00\x07\x01" + good[4:])  # unknown type byte
    with pytest.raises(WganxError, match="not an IDX file"):
        ds.load_split("mnist", folder, "test")

    _rewrite_gz(labels, good)  # re-gzipped but identical content is accepted
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes()))
    (folder / "t10k-images-idx3-ubyte.gz").unlink()  # and so is an uncompressed file
    assert len(ds.load_split("mnist", folder, "test")) == 10000


def test_idx_parser_reads_other_types(tmp_path):
    values = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    path = tmp_path / "x-idx3-int.gz"
    _rewrite_gz(path, b"\x00\x00\x0c\x03" + np.array([2, 3, 4], ">u4").tobytes()
                + values.astype(">i4").tobytes())  # IDX is big-endian
    out = ds._formats.read_idx(path)
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_missing_files_say_which_where_and_from_where(tmp_path, monkeypatch):
    monkeypatch.delenv("WGANX_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WganxError) as err:
        wganx.registry().get("dataset", "fashion-mnist").load(None, None, False)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "home" / ".cache" / "wganx" / "fashion-mnist") in message
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{f}" in message
    assert "--download" in message

    monkeypatch.setenv("WGANX_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(WganxError, match=r"svhn: test_32x32\.mat not found in .*data/svhn; "
                                         r"download http://ufldl\.stanford\.edu/housenumbers/test_32x32\.mat"):
        ds.load_split("svhn", None, "test")
    with pytest.raises(WganxError, match="cifar-10-python.tar.gz not found.*cifar-10-batches-py/ folder"):
        ds.load_split("cifar10", tmp_path / "empty")
    assert not (tmp_path / "empty").exists()  # looking creates nothing


# --- downloads -----------------------------------------------------------------------------

@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_download_tries_mirrors_and_verifies(tmp_path, monkeypatch, name):
    # The shared copies of Fashion-MNIST's images were re-gzipped, so their .gz md5 is not
    # the published one: they must pass on the md5 of their content. MNIST's test files are
    # the published .gz files byte for byte.
    monkeypatch.setitem(ds.MIRRORS, name, [file_url(tmp_path / "nowhere") + "/",
                                           file_url(SHARED / name) + "/"])
    target = tmp_path / "cache"
    data = ds.load_split(name, target, "test", download=True)
    assert len(data) == 10000
    assert sorted(p.name for p in target.iterdir()) == ["t10k-images-idx3-ubyte.gz",
                                                         "t10k-labels-idx1-ubyte.gz"]


@needs_shared
def test_idx_download_of_other_content_leaves_nothing(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(SHARED / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", mirror)  # wrong dataset
    shutil.copy(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz", mirror)
    monkeypatch.setitem(ds.MIRRORS, "mnist", [file_url(mirror) + "/"])
    target = tmp_path / "cache"
    with pytest.raises(WganxError, match=r"t10k-labels-idx1-ubyte.gz could not be downloaded "
                                         r"\(could not download .*checksum mismatch"):
        ds.load_split("mnist", target, "test", download=True)
    assert sorted(p.name for p in target.iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def test_silent_server_times_out_instead_of_hanging(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    monkeypatch.setattr(_download, "TIMEOUT", 0.5)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/f.bin"
    start = time.monotonic()
    try:
        with pytest.raises(WganxError, match="could not download f.bin: .*timed out"):
            _download.fetch([url], tmp_path / "f.bin", lambda part, md5: True)
    finally:
        server.close()
        for connection, _ in accepted:
            connection.close()
    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


# --- CIFAR-10 (official pickle format, small files) ----------------------------------------

def _cifar_images(rng, n):
    """HWC uint8 images with distinct red, green and blue content, and labels."""
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def _write_cifar_batch(path: Path, images, labels, batch_label: bytes):
    # The official layout: each row is the red plane, then green, then blue, row-major.
    entry = {b"batch_label": batch_label, b"labels": labels,
             b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
             b"filenames": [b"img_%d.png" % i for i in range(len(images))]}
    path.write_bytes(pickle.dumps(entry, protocol=2))


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """A small cifar-10-python.tar.gz in the official layout, its md5s declared official."""
    rng = np.random.default_rng(0)
    source = tmp_path / "source"
    folder = source / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train, test = [], None
    for i in range(1, 6):
        images, labels = _cifar_images(rng, 6)
        _write_cifar_batch(folder / f"data_batch_{i}", images, labels, b"training batch %d of 5" % i)
        train.append((images, labels))
    test = _cifar_images(rng, 7)
    _write_cifar_batch(folder / "test_batch", *test, b"testing batch 1 of 1")
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"label_names": [n.encode() for n in ds.CLASS_NAMES["cifar10"]], b"num_vis": 3072}, protocol=2))
    (folder / "readme.html").write_text("<html></html>")
    archive = source / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    for f in ds.FILES["cifar10"]["train"] + ds.FILES["cifar10"]["test"]:
        monkeypatch.setitem(ds.MD5["cifar10"], f, md5(folder / f))
    monkeypatch.setitem(ds.MD5["cifar10"], "cifar-10-python.tar.gz", md5(archive))
    monkeypatch.setitem(ds.MIRRORS, "cifar10", [file_url(source) + "/"])
    images = np.concatenate([im for im, _ in train])
    labels = sum((lab for _, lab in train), [])
    return {"source": source, "folder": folder, "archive": archive, "train": (images, labels),
            "test": test}


def _assert_same_images(data, images, labels):
    assert data.x.dtype == np.uint8 and data.sample_shape == (3, 32, 32)
    np.testing.assert_array_equal(data.x.transpose(0, 2, 3, 1), images)  # channels in RGB order
    assert data.labels.tolist() == list(labels) and data.labels.dtype == np.int64


def test_cifar10_from_extracted_batches(cifar):
    data = wganx.registry().get("dataset", "cifar10").load(cifar["source"], None, False)
    _assert_same_images(data, *cifar["train"])
    assert data.num_classes == 10 and data.class_names[0] == "airplane"
    test = ds.load_split("cifar10", cifar["source"], "test", image_size=16)
    assert len(test) == 7 and test.sample_shape == (3, 16, 16)


def test_cifar10_download_verifies_then_extracts_atomically(cifar, tmp_path):
    target = tmp_path / "cache"
    data = ds.load_split("cifar10", target, "train", download=True)
    _assert_same_images(data, *cifar["train"])
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert (target / "cifar-10-batches-py" / "batches.meta").is_file()
    assert leftovers(target) == []
    # The kept archive alone is enough: it is verified and extracted again.
    shutil.rmtree(target / "cifar-10-batches-py")
    _assert_same_images(ds.load_split("cifar10", target), *cifar["train"])


def test_cifar10_download_with_wrong_checksum_leaves_nothing(cifar, tmp_path, monkeypatch):
    monkeypatch.setitem(ds.MD5["cifar10"], "cifar-10-python.tar.gz", "0" * 32)
    target = tmp_path / "cache"
    with pytest.raises(WganxError, match="cifar-10-python.tar.gz could not be downloaded.*checksum mismatch"):
        ds.load_split("cifar10", target, download=True)
    assert not target.exists()  # not even the folder it made for the download


def test_cifar10_archive_on_disk_is_checked_before_extraction(cifar, tmp_path, monkeypatch):
    target = tmp_path / "cache"
    target.mkdir()
    damaged = target / "cifar-10-python.tar.gz"
    damaged.write_bytes(cifar["archive"].read_bytes()[:-100])
    with pytest.raises(WganxError, match="cifar-10-python.tar.gz has md5 .* expected"):
        ds.load_split("cifar10", target)
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-python.tar.gz"]


def test_cifar10_tampered_batch_is_not_unpickled(cifar, tmp_path):
    batch = cifar["folder"] / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\x00")
    with pytest.raises(WganxError, match="data_batch_3 has md5"):
        ds.load_split("cifar10", cifar["source"])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_cifar10_pickle_that_calls_code_is_refused(cifar, tmp_path, monkeypatch):
    marker = tmp_path / "was-run"
    batch = cifar["folder"] / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    monkeypatch.setitem(ds.MD5["cifar10"], "data_batch_1", md5(batch))  # even when "verified"
    with pytest.raises(WganxError, match="data_batch_1 is not a CIFAR-10 batch.*refusing to load"):
        ds.load_split("cifar10", cifar["source"])
    assert not marker.exists()


def test_cifar10_archive_escaping_its_folder_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "source" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    monkeypatch.setitem(ds.MD5["cifar10"], "cifar-10-python.tar.gz", md5(archive))
    target = tmp_path / "a" / "cache"
    target.mkdir(parents=True)
    shutil.copy(archive, target)
    with pytest.raises(WganxError, match="unsafe entries"):
        ds.load_split("cifar10", target)
    assert not (tmp_path / "a" / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-python.tar.gz"]


# --- SVHN (official .mat layout, small files) ----------------------------------------------

def test_svhn_mat_layout_and_label_ten_is_zero(tmp_path, monkeypatch):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    digits = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9])
    path = tmp_path / "test_32x32.mat"
    savemat(path, {"X": images.transpose(1, 2, 3, 0),  # (32, 32, 3, N) as published
                   "y": np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]})
    with pytest.raises(WganxError, match="test_32x32.mat has md5 .*expected eb5a983b"):
        ds.load_split("svhn", tmp_path, "test")
    monkeypatch.setitem(ds.MD5["svhn"], "test_32x32.mat", md5(path))
    data = ds.load_split("svhn", tmp_path, "test")
    assert len(data) == 9 and data.num_classes == 10
    _assert_same_images(data, images, digits)
    monkeypatch.setitem(ds.MIRRORS, "svhn", [file_url(tmp_path) + "/"])
    target = tmp_path / "cache"
    assert len(ds.load_split("svhn", target, "test", image_size=64, download=True)) == 9
    assert [p.name for p in target.iterdir()] == ["test_32x32.mat"]


# --- a folder of images --------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar_jpegs(tmp_path_factory):
    """The first 20 training JPEGs of the first three classes of the shared CIFAR-10 copy."""
    root = extract_cifar_jpegs(tmp_path_factory.mktemp("cifar-jpg"), {"train": 20}, classes=3) / "train"
    assert len(list(root.iterdir())) == 3
    return root


def test_folder_of_real_jpegs_with_class_subfolders(cifar_jpegs):
    data = wganx.registry().get("dataset", "folder").load(cifar_jpegs, None, False)
    classes = sorted(d.name for d in cifar_jpegs.iterdir())
    assert data.class_names == classes == ["airplane", "automobile", "bird"]
    assert (len(data), data.sample_shape, data.num_classes) == (60, (3, 32, 32), 3)
    assert np.bincount(data.labels).tolist() == [20, 20, 20]
    first = sorted((cifar_jpegs / "automobile").iterdir())[0]
    index = 20  # sorted order: airplane's 20 files come first
    expected = np.asarray(Image.open(first).convert("RGB"))
    np.testing.assert_array_equal(data.x[index].transpose(1, 2, 0), expected)
    assert data.labels[index] == 1
    x, y = next(data.batches(16, np.random.default_rng(0)))
    assert x.shape == (16, 3, 32, 32) and -1 <= x.min() and x.max() <= 1 and y.dtype == np.int64
    assert ds.load_split("folder", cifar_jpegs, image_size=16).sample_shape == (3, 16, 16)


def test_folder_with_one_subfolder_is_unlabelled(cifar_jpegs, tmp_path):
    shutil.copytree(cifar_jpegs / "bird", tmp_path / "celeba" / "img_align_celeba")
    data = ds.load_split("folder", tmp_path / "celeba")
    assert data.labels is None and data.num_classes == 0 and len(data) == 20
    x, y = next(data.batches(8, np.random.default_rng(0)))
    assert y is None


def test_folder_split_layout(cifar_jpegs, tmp_path):
    shutil.copytree(cifar_jpegs, tmp_path / "train")
    shutil.copytree(cifar_jpegs / "bird", tmp_path / "test" / "bird")
    shutil.copytree(cifar_jpegs / "airplane", tmp_path / "test" / "airplane")
    assert len(ds.load_split("folder", tmp_path)) == 60
    test = ds.load_split("folder", tmp_path, "test")
    assert len(test) == 40 and test.class_names == ["airplane", "bird"]


def _save(path: Path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).convert(mode or ("L" if np.ndim(array) == 2 else "RGB")).save(path)


def test_folder_greyscale_stays_one_channel_unless_mixed(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (12, 12))
    _save(tmp_path / "g" / "a.png", grey)
    _save(tmp_path / "g" / "b.bmp", grey[::-1])
    (tmp_path / "g" / "notes.txt").write_text("not an image")
    _save(tmp_path / "g" / ".hidden.png", rng.integers(0, 256, (5, 5)))  # macOS debris
    data = ds.load_split("folder", tmp_path / "g")
    assert data.sample_shape == (1, 12, 12) and len(data) == 2 and data.labels is None
    np.testing.assert_array_equal(data.x[0, 0], grey)

    _save(tmp_path / "g" / "c.png", rng.integers(0, 256, (12, 12, 3)))
    _save(tmp_path / "g" / "d.png", rng.integers(0, 256, (12, 12, 4)), mode="RGBA")
    mixed = ds.load_split("folder", tmp_path / "g")
    assert mixed.sample_shape == (3, 12, 12) and len(mixed) == 4
    assert all(np.array_equal(mixed.x[0, c], grey) for c in range(3))


def test_folder_sizes_must_agree_unless_resized(tmp_path):
    _save(tmp_path / "a.png", np.zeros((10, 10, 3)))
    wide = np.zeros((10, 30, 3))
    wide[:, 10:20] = 255  # only the centre third is white
    _save(tmp_path / "b.png", wide)
    with pytest.raises(WganxError, match=r"b.png is 30x10 but .*a.png is 10x10; pass --image-size"):
        ds.load_split("folder", tmp_path)
    data = ds.load_split("folder", tmp_path, image_size=8)
    assert data.sample_shape == (3, 8, 8)
    assert data.x[1].min() == 255  # centre-cropped, not squashed


def test_folder_errors(tmp_path):
    with pytest.raises(WganxError, match="needs a directory of images"):
        ds.load_split("folder", None)
    with pytest.raises(WganxError, match="is not a directory"):
        ds.load_split("folder", tmp_path / "absent")
    with pytest.raises(WganxError, match="no images"):
        ds.load_split("folder", tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(WganxError, match="cannot read image .*broken.jpg"):
        ds.load_split("folder", tmp_path)
    (tmp_path / "broken.jpg").unlink()
    _save(tmp_path / "loose.png", np.zeros((4, 4)))
    _save(tmp_path / "cats" / "1.png", np.zeros((4, 4)))
    _save(tmp_path / "dogs" / "1.png", np.zeros((4, 4)))
    with pytest.raises(WganxError, match="mixes images"):
        ds.load_split("folder", tmp_path)


def test_unknown_split_and_dataset():
    with pytest.raises(WganxError, match="splits train, test, not 'extra'"):
        ds.load_split("mnist", None, "extra")
    with pytest.raises(WganxError, match="unknown dataset"):
        ds.load_split("imagenet")
