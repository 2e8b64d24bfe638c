"""Built-in datasets: MNIST, Fashion-MNIST, CIFAR-10, SVHN, a folder of images, scikit-learn's
8x8 digits, and the three 2-D toy sets of the WGAN-GP paper.

Image sets are held as uint8 NCHW (``ArrayDataset`` scales each batch to [-1, 1]), labels as
int64. Every published file is checked against its official md5 before it is read, whether
it was just downloaded or was already on disk; downloads go through ``<file>.part`` and
archives are extracted atomically (see ``_download``).

Where files are looked for: ``data_dir`` when given (or ``data_dir/<name>`` when the files
are there instead, so one folder can hold several datasets), else ``$WGANX_DATA_DIR/<name>``,
else ``~/.cache/wganx/<name>``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from wganx import hookimpl
from wganx.data import ArrayDataset, SamplerDataset
from wganx.errors import WganxError
from wganx.notices import notice
from wganx.records import DatasetSpec

from . import toy
from ._download import check_md5, default_dir, extract_folder, fetch, missing_error
from ._formats import fit_image, gz_payload_md5, read_cifar_batch, read_idx, resize
from .toy import mode_centers, mode_std  # noqa: F401  (public: used by the metrics plugin)

# Base URLs, tried in order. yann.lecun.com is the canonical MNIST home but often down.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "svhn": ["http://ufldl.stanford.edu/housenumbers/"],
}

# Files each split reads.
FILES = {
    "mnist": {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
    "cifar10": {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    "svhn": {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
}
FILES["fashion-mnist"] = FILES["mnist"]

# Official md5 of each file. For the IDX .gz files it is the md5 of the *decompressed*
# content, which survives a mirror re-compressing them; GZ_MD5 holds the published .gz md5s.
MD5 = {
    "mnist": {"train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637"},
    "fashion-mnist": {"train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                      "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
                      "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
                      "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965"},
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
                "data_batch_1": "c99cafc152244af753f735de768cd75f",
                "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "test_batch": "40351d587109b95175f43aff81a1287e"},
    "svhn": {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
             "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"},
}
GZ_MD5 = {
    "mnist": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "fashion-mnist": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                      "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
}

CIFAR10_ARCHIVE, CIFAR10_FOLDER = "cifar-10-python.tar.gz", "cifar-10-batches-py"

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "svhn": [str(d) for d in range(10)],
    "digits": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


# --- where files are, and getting them there ---------------------------------------------

def dataset_dir(name: str, data_dir, expected=()) -> Path:
    """The folder to read ``name`` from (see the module docstring)."""
    if data_dir is None:
        return default_dir(name)
    root = Path(data_dir).expanduser()
    nested = root / name
    if expected and nested.is_dir() and not any((root / f).exists() for f in expected):
        return nested
    return root


def _urls(name: str, filename: str) -> list:
    return [base + filename for base in MIRRORS[name]]


def _accepts(name: str, filename: str):
    """Whether downloaded bytes are the official file: its md5, or for .gz files the md5 of
    the published .gz or of the decompressed content (a mirror may re-compress)."""
    def accept(part: Path, md5: str) -> bool:
        if filename not in GZ_MD5.get(name, {}):
            return md5 == MD5[name][filename]
        return md5 == GZ_MD5[name][filename] or gz_payload_md5(part) == MD5[name][filename]
    return accept


def _present(directory: Path, filename: str) -> Optional[Path]:
    """The file, or its decompressed twin (``x.gz`` -> ``x``) that some users keep."""
    for path in (directory / filename, directory / filename[:-3]) if filename.endswith(".gz") \
            else (directory / filename,):
        if path.is_file():
            return path
    return None


def obtain(name: str, directory: Path, filenames, download: bool, alternative: str = "") -> list:
    """Paths of the published ``filenames`` in ``directory``, downloading missing ones when
    allowed; one WganxError naming every file still missing, where to put it and its URL."""
    paths, missing, why = {}, [], None
    for filename in filenames:
        path = _present(directory, filename)
        if path is None and download:
            try:
                fetch(_urls(name, filename), directory / filename, _accepts(name, filename))
                path = directory / filename
            except WganxError as exc:
                why = str(exc)
        if path is None:
            missing.append(filename)
        paths[filename] = path
    if missing:
        urls = [_urls(name, f)[0] for f in missing]
        raise missing_error(name, directory, missing, urls, why, alternative)
    return [paths[f] for f in filenames]


def _check_split(name: str, split: str) -> None:
    if split not in FILES[name]:
        raise WganxError(f"{name} has splits {', '.join(FILES[name])}, not {split!r}")


def _finish(name: str, x: np.ndarray, labels, image_size, class_names=None) -> ArrayDataset:
    names = class_names if class_names is not None else CLASS_NAMES.get(name)
    data = ArrayDataset(resize(x, image_size), labels, name=name,
                        num_classes=len(names) if (names and labels is not None) else 0)
    data.class_names = list(names) if names and labels is not None else []
    return data


# --- the loaders ---------------------------------------------------------------------------

def _load_idx(name: str, directory: Path, split: str, download: bool) -> tuple:
    """MNIST-format images and labels; ``read_idx`` verifies each payload's md5."""
    image_file, label_file = FILES[name][split]
    images_path, labels_path = obtain(name, directory, (image_file, label_file), download)
    images = read_idx(images_path, MD5[name][image_file])
    labels = read_idx(labels_path, MD5[name][label_file])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise WganxError(f"{name}: {images_path.name} holds {images.shape} and "
                         f"{labels_path.name} {labels.shape}; expected (N, H, W) and (N,)")
    return images[:, None], labels.astype(np.int64)


def _load_cifar10(directory: Path, split: str, download: bool) -> tuple:
    """The official pickle batches, from ``cifar-10-batches-py/`` or, failing that, from the
    verified archive, which is extracted first. Each batch's md5 is checked before unpickling."""
    folder = directory / CIFAR10_FOLDER
    if not folder.is_dir():
        (archive,) = obtain("cifar10", directory, (CIFAR10_ARCHIVE,), download,
                            alternative=f" (or put its extracted {CIFAR10_FOLDER}/ folder there)")
        check_md5(archive, MD5["cifar10"][CIFAR10_ARCHIVE], _urls("cifar10", CIFAR10_ARCHIVE)[0])
        extract_folder(archive, CIFAR10_FOLDER, directory)
    xs, ys = [], []
    for filename in FILES["cifar10"][split]:
        path = folder / filename
        if not path.is_file():
            raise WganxError(f"cifar10: {path} is missing; delete {folder} and put "
                             f"{CIFAR10_ARCHIVE} ({_urls('cifar10', CIFAR10_ARCHIVE)[0]}) in {directory}")
        check_md5(path, MD5["cifar10"][filename], _urls("cifar10", CIFAR10_ARCHIVE)[0])
        x, y = read_cifar_batch(path)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _load_svhn(directory: Path, split: str, download: bool) -> tuple:
    """The cropped-digits ``.mat`` files: X is (32, 32, 3, N), y is 1..10 with 10 for digit 0."""
    from scipy.io import loadmat

    filename = FILES["svhn"][split][0]
    (path,) = obtain("svhn", directory, (filename,), download)
    check_md5(path, MD5["svhn"][filename], _urls("svhn", filename)[0])
    try:
        mat = loadmat(path)
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WganxError(f"{path} is not an SVHN .mat file ({exc!s})")
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y) or y.min() < 1 or y.max() > 10:
        raise WganxError(f"{path}: expected X of shape (H, W, 3, N) and N labels in 1..10, got "
                         f"X {x.shape}, labels {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8), y % 10


def _load_digits(image_size) -> ArrayDataset:
    """scikit-learn's bundled 8x8 digits (0..16 per pixel), offline; float32 in [-1, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise WganxError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    x = (digits.images[:, None] / 8.0 - 1.0).astype(np.float32)
    data = _finish("digits", x, digits.target.astype(np.int64), image_size)
    np.clip(data.x, -1.0, 1.0, out=data.x)
    return data


def _image_files(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith(".") and p.is_file())


def folder_files(data_dir, split: str = "train") -> tuple:
    """``(files, class_names)`` of a folder dataset: ``files`` is ``[(path, label), ...]`` in
    the order every loader reads them; the rules are :func:`load_folder`'s."""
    if data_dir is None:
        raise WganxError("the folder dataset needs a directory of images: pass --data-dir")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise WganxError(f"folder dataset: {root} is not a directory")
    if (root / "train").is_dir() and (root / "test").is_dir():
        root = root / split
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = []  # (name, image paths) of each subfolder that holds images
    for d in subdirs:
        paths = _image_files(d)
        if paths:
            classes.append((d.name, paths))
    loose = [p for p in _image_files(root) if p.parent == root]
    if loose and len(classes) > 1:
        raise WganxError(f"folder dataset: {root} mixes images ({loose[0].name}) with class "
                         "subfolders; put every image in a class subfolder, or none")
    files = [(p, label) for label, (_, paths) in enumerate(classes) for p in paths] \
        + [(p, 0) for p in loose]
    if not files:
        raise WganxError(f"folder dataset: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                         f"under {root}")
    return files, [name for name, _ in classes] if len(classes) > 1 else []


def open_image(source, name) -> Image.Image:
    """The image in ``source`` (a path or a binary file) as ``L`` when its mode is greyscale,
    else ``RGB`` (alpha dropped); a WganxError naming ``name`` when it cannot be read."""
    try:
        with Image.open(source) as im:
            return im.convert("L" if im.mode in _GRAY_MODES else "RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise WganxError(f"cannot read image {name} ({exc})") from None


def image_array(im: Image.Image, rgb: bool) -> np.ndarray:
    """A decoded image as uint8 CHW, grey replicated to three channels when ``rgb``."""
    x = np.asarray(im.convert("RGB") if rgb and im.mode != "RGB" else im)
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)


# Folders larger than this get a hint to prepare them once (``wganx data prepare``).
PREPARE_HINT_IMAGES = 20_000


def load_folder(data_dir, image_size=None, split: str = "train") -> ArrayDataset:
    """Every image under ``data_dir``, as uint8 NCHW.

    * Two or more subfolders holding images are classes, labelled in sorted name order; one
      subfolder (``celeba/img_align_celeba/``) or none gives an unlabelled set.
    * A folder with both ``train/`` and ``test/`` inside reads the one named by ``split``.
    * Images stay one channel when every one is greyscale, else all become RGB (alpha dropped).
    * ``image_size`` None keeps the size the images share (differing sizes are an error);
      otherwise each image is centre-cropped to a square and resized.
    * A folder that ``wganx data prepare`` wrote is read from its memory map instead.
    """
    from .prepared import is_prepared, open_prepared

    if data_dir is not None and is_prepared(data_dir):
        return open_prepared(data_dir, image_size)
    files, class_names = folder_files(data_dir, split)
    if len(files) > PREPARE_HINT_IMAGES:
        notice(f"decoding {len(files):,} images into memory, on every start; prepare them once instead: "
               f"wganx data prepare {data_dir} -o PREPARED --image-size {image_size or 'N'}, then train with "
               "--dataset prepared --data-dir PREPARED")
    images = []
    for path, _ in files:
        im = open_image(path, path)
        if image_size is None and images and im.size != images[0].size:
            raise WganxError(f"folder dataset: {path} is {im.size[0]}x{im.size[1]} but "
                             f"{files[0][0]} is {images[0].size[0]}x{images[0].size[1]}; "
                             "pass --image-size to resize them all")
        images.append(fit_image(im, image_size))
    rgb = any(im.mode == "RGB" for im in images)
    x = np.stack([image_array(im, rgb) for im in images])
    labels = np.array([label for _, label in files], np.int64) if class_names else None
    return _finish("folder", x, labels, None, class_names=class_names)


def folder_labelled(data_dir) -> bool:
    """Whether a folder dataset has labels: two or more subfolders (of ``train/`` when there
    is one) that hold images. Stops at the first image of each subfolder."""
    if data_dir is None:
        return False
    root = Path(data_dir).expanduser()
    root = root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root
    if not root.is_dir():
        return False
    with_images = (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                   and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in d.rglob("*")))
    return next(with_images, None) is not None and next(with_images, None) is not None


def folder_signature(data_dir) -> str:
    """A short digest of a folder dataset: its path and every image's name, size and time of
    change, so that a classifier cached for it is retrained when its images change."""
    import hashlib

    if data_dir is None:
        raise WganxError("the folder dataset needs a directory of images: pass --data-dir")
    root = Path(data_dir).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode())
    for path in _image_files(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_split(name: str, data_dir=None, split: str = "train", image_size: Optional[int] = None,
               download: bool = False):
    """Load split ``"train"`` or ``"test"`` of dataset ``name``.

    Image sets return an ``ArrayDataset``; toy sets a ``SamplerDataset`` (both splits are the
    same distribution). ``digits`` has only ``"train"`` (all 1,797 images).
    """
    if name in toy.TOY_NAMES:
        if split not in ("train", "test"):
            raise WganxError(f"{name} has splits train, test, not {split!r}")
        return SamplerDataset(functools.partial(toy.sample, name), name=name, dim=2)
    if name == "digits":
        if split != "train":
            raise WganxError(f"digits has only a train split, not {split!r}")
        return _load_digits(image_size)
    if name == "folder":
        return load_folder(data_dir, image_size, split)
    if name == "prepared":
        from .prepared import open_prepared

        if data_dir is None:
            raise WganxError("the prepared dataset needs --data-dir, a folder `wganx data prepare` wrote")
        return open_prepared(data_dir, image_size)
    if name not in FILES:
        raise WganxError(f"unknown dataset {name!r}")
    _check_split(name, split)
    expected = FILES[name][split] + ((CIFAR10_FOLDER, CIFAR10_ARCHIVE) if name == "cifar10" else ())
    directory = dataset_dir(name, data_dir, expected)
    if name == "cifar10":
        x, labels = _load_cifar10(directory, split, download)
    elif name == "svhn":
        x, labels = _load_svhn(directory, split, download)
    else:
        x, labels = _load_idx(name, directory, split, download)
    return _finish(name, x, labels, image_size)


def _train_loader(name: str):
    def load(data_dir, image_size, download):
        return load_split(name, data_dir, "train", image_size, download)
    load.__qualname__ = load.__name__ = f"load_{name.replace('-', '_')}"
    return load


_DESCRIPTIONS = {
    "mnist": ("image", "MNIST handwritten digits, 60k 1x28x28, 10 classes"),
    "fashion-mnist": ("image", "Fashion-MNIST clothing, 60k 1x28x28, 10 classes"),
    "cifar10": ("image", "CIFAR-10, 50k 3x32x32, 10 classes (official python batches)"),
    "svhn": ("image", "SVHN cropped digits, 73k 3x32x32, 10 classes"),
    "folder": ("image", "a directory of images (--data-dir); class subfolders give labels"),
    "prepared": ("image", "a folder `wganx data prepare` wrote (--data-dir): images or vectors, memory-mapped"),
    "digits": ("image", "scikit-learn's 8x8 digits, 1797 1x8x8, offline, 10 classes"),
    "8gaussians": ("points", "2-D: 8 gaussians on a circle (WGAN-GP toy)"),
    "25gaussians": ("points", "2-D: 5x5 grid of gaussians (WGAN-GP toy)"),
    "swissroll": ("points", "2-D: swiss roll (WGAN-GP toy)"),
}


# The WGAN-GP paper's toy settings (appendix: 3x512 ReLU MLPs, z of size 2, lambda 0.1,
# batch 256; the mlp architecture adds how it trains best); image datasets keep
# TrainConfig's defaults, the NNabla example's CIFAR-10 recipe.
TOY_DEFAULTS = {"arch": "mlp", "maps": 512, "latent": 2, "lambda_": 0.1, "batch_size": 256}


MIXTURES = ("8gaussians", "25gaussians")  # toys with modes to count


def _split_loader(name: str):
    def split(data_dir, split, image_size, download):
        return load_split(name, data_dir, split, image_size, download)
    return split


def _classifier(name: str):
    def classifier(data_dir, download, log):
        from wganx_plugins.metrics.classifier import load_classifier

        return load_classifier(name, data_dir, download=download, log=log)
    return classifier


def _evaluation(name: str, kind: str) -> dict:
    """What ``wganx evaluate`` needs of dataset ``name``, as fields of its record."""
    from wganx_plugins.metrics.classifier import DOMAIN_DATASETS

    fields = {"split": _split_loader(name)}
    if name in MIXTURES:
        fields.update(metrics=("modes", "energy"), modes=lambda: (mode_centers(name), mode_std(name)))
    if name in DOMAIN_DATASETS:
        fields["classifier"] = _classifier(name)
    if name == "folder":
        fields["classifier_for"] = folder_labelled
    if name in ("folder", "prepared"):
        from .prepared import prepared_kind

        fields["kind_for"] = prepared_kind
    return fields


@hookimpl
def wganx_datasets():
    return [DatasetSpec(name, _train_loader(name), kind=kind, description=description,
                        defaults=TOY_DEFAULTS if kind == "points" else {}, **_evaluation(name, kind))
            for name, (kind, description) in _DESCRIPTIONS.items()]
