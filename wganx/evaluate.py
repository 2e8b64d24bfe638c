"""``wganx evaluate``: sample-quality metrics for a checkpoint, a samples file or a folder of
images, and :class:`Evaluator` for metrics during training.

The metric arithmetic is the ``wganx_metrics`` plugins' (FID, KID, precision/recall, IS,
class coverage, modes, energy); this module only feeds them. Each metric plugin says in
``kinds`` what it takes, and evaluate supplies it:

* ``points`` metrics (``modes``, ``energy``) get the raw 2-D samples and reference points
  drawn from the toy set;
* ``features`` metrics (``fid``, ``kid``, ``precision-recall``) get feature vectors of the
  generated and the real images from a *feature space*;
* ``probs`` / ``labels`` metrics (``inception-score``, ``class-coverage``) get the class
  probabilities of the generated images in that feature space's classifier.

Feature spaces (``--features``):

* ``domain``: the dataset's own classifier (``DatasetSpec.classifier``; the standard
  plugins train one once, in numpy, and cache it: an MLP for MNIST and Fashion-MNIST, a small
  convnet for CIFAR-10 and a labelled folder of images). Reported as ``domain_*``: "domain
  FID" etc. These numbers compare models on this data set; they are not the Inception FIDs
  of papers.
* a registered feature space (``wganx_features`` plugins, :class:`wganx.records.FeatureSpec`):
  the standard plugins register ``inception``, Inception-v3 through torch-fidelity, reported
  as ``inception_*``; it needs torch-fidelity and the weights file.
* ``auto`` (default): ``domain`` where the dataset has a classifier, else the first
  registered feature space.

Defaults (``--metrics`` not given): the dataset record's ``metrics`` (the toy mixtures:
``modes,energy``), else every metric whose record lists, in ``default_in``, where this
evaluation computes (``points``, ``domain`` or the feature space's name); each metric's
options come from its record. Any installed metric plugin of the right kind can be named in
``--metrics``; this module names none.

The real reference is the dataset's test split by default (``--reference-split``): the
classifier was trained on the train split, so test images are features it has not fitted.
"""
from __future__ import annotations

import csv
import inspect
import json as _json
import math
import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
import typer
from typing_extensions import Annotated

from .options import Backend, Context, DeviceId, RawWeights, Threads
from .config import CONTEXTS, SEED
from .data import images_to_float  # noqa: F401 - also importable from here, as before
from .errors import WganxError, check_choice
from .plugins import registry as default_registry
from .threads import resolve_threads, set_thread_env

DEFAULT_SAMPLES = {"image": 10000, "points": 2500}  # FID's usual 10k; PacGAN's 2,500 points
SOURCES = ("model_load_path", "samples", "folder")  # the options naming what to measure (one of them)


def feature_spaces(reg) -> tuple:
    """What ``--features`` takes: ``auto``, ``domain`` (a dataset's classifier) and every
    registered feature space (:class:`wganx.records.FeatureSpec`)."""
    return ("auto", "domain") + tuple(reg.names("feature"))


def _log(message: str) -> None:
    print(f"wganx evaluate: {message}", file=sys.stderr, flush=True)


def _config_get(config_like, name, default=None):
    if config_like is None:
        return default
    if isinstance(config_like, Mapping):
        return config_like.get(name, default)
    return getattr(config_like, name, default)


def parse_metrics(value) -> Optional[List[str]]:
    """``"fid,kid"`` or ``["fid", "kid,is"]`` -> ``["fid", "kid", "is"]``; None/empty -> None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    return names or None


class Evaluator:
    """Metrics of generated samples against one real dataset, reference features cached.

    Args:
        config_like: a :class:`wganx.config.TrainConfig`, a dict with its field names, or
            None; supplies ``monitor_path`` (the folder for ``metrics.csv``), ``dataset``,
            ``data_dir`` and ``seed`` where the arguments below are None.
        dataset_name: the real dataset (``mnist``, ``8gaussians``, ...).
        data_dir: where its files are (as ``--data-dir`` of training).
        metrics: metric plugin names, a comma-separated string, or None for the defaults.
        num_samples: generated samples per evaluation (and at most as many reference samples).
        folder: where ``metrics.csv`` / ``metrics.png`` go (default ``monitor_path``).
        features: ``auto``, ``domain`` or a registered feature space (``inception``).
        inception_weights: path of the Inception weights (see ``inception.py``).
        reference_split: ``test`` (default) or ``train``.
        metric_options: extra keyword options by metric name, e.g. ``{"kid": {"num_subsets": 20}}``
            (over the defaults in each metric's record; subset sizes are capped at the sample count).
        seed: seed of the reference subset and of the metrics' own randomness.

    Calling it as ``evaluator(generate_fn, iteration)`` draws ``generate_fn(num_samples)``,
    computes the metrics, appends a row to ``metrics.csv``, redraws ``metrics.png`` and
    returns the values.
    """

    def __init__(self, config_like=None, dataset_name: Optional[str] = None, data_dir=None, metrics=None,
                 num_samples: Optional[int] = None, *, folder=None, features: str = "auto",
                 inception_weights=None, reference_split: str = "test", seed: Optional[int] = None,
                 download: bool = False, device: str = "cpu", resume_from: Optional[int] = None,
                 metric_options: Optional[Mapping[str, Mapping]] = None, reg=None,
                 log: Optional[Callable[[str], None]] = _log):
        self.reg = reg or default_registry()
        self.extra_options = {k: dict(v) for k, v in (metric_options or {}).items()}
        self.dataset = dataset_name or _config_get(config_like, "dataset")
        if not self.dataset:
            raise WganxError("evaluate: which real dataset? pass --reference DATASET")
        self.data_dir = data_dir if data_dir is not None else _config_get(config_like, "data_dir")
        self.spec = spec = self.reg.get("dataset", self.dataset)
        self.kind = spec.kind_for(self.data_dir) if spec.kind_for and self.data_dir is not None else spec.kind
        self.seed = int(seed if seed is not None else _config_get(config_like, "seed", 0) or 0)
        self.num_samples = int(num_samples or DEFAULT_SAMPLES.get(self.kind, 10000))
        if self.num_samples < 2:
            raise WganxError(f"--num-samples must be at least 2, got {self.num_samples}")
        spaces = feature_spaces(self.reg)
        if features not in spaces:
            raise WganxError(f"unknown feature space {features!r}; choose one of: {', '.join(spaces)}")
        if reference_split not in ("train", "test"):
            raise WganxError(f"--reference-split must be train or test, got {reference_split!r}")
        self.reference_split, self.download, self.device = reference_split, download, device
        self.inception_weights, self.log = inception_weights, log
        if self.kind == "image":
            others = spaces[2:]
            domain = spec.classifier is not None and (spec.classifier_for is None or spec.classifier_for(self.data_dir))
            if features == "auto":
                features = "domain" if domain or not others else others[0]
            self.features = features
            if self.features == "domain" and spec.classifier is None:
                with_one = [n for n in self.reg.names("dataset") if self.reg.get("dataset", n).classifier]
                raise WganxError(f"there is no domain classifier for {self.dataset!r} (its dataset record has "
                                 f"none; these have one: {', '.join(with_one)})"
                                 + (f"; use --features {others[0]}" if others else ""))
        else:
            self.features = None
        self.metrics = self._resolve(parse_metrics(metrics))
        folder = folder if folder is not None else _config_get(config_like, "monitor_path")
        self.folder = Path(folder) if folder is not None else None
        self.rows: List[Dict[str, float]] = []
        if self.folder is not None and resume_from is not None:
            self.rows = [r for r in read_metrics_csv(self.folder / "metrics.csv") if r["iteration"] <= resume_from]
        self._extractor = None
        self._reference = None  # {"points"| "features", "n"}

    # -- which metrics ----------------------------------------------------------------------
    def _defaults(self) -> tuple:
        """The dataset record's metrics, else every metric whose record is a default where
        this evaluation computes (``points``, ``domain`` or the feature space)."""
        if self.spec.metrics:
            return tuple(self.spec.metrics)
        where = "points" if self.kind == "points" else self.features
        return tuple(n for n in self.reg.names("metric") if where in self.reg.get("metric", n).default_in)

    def _options(self, name: str) -> dict:
        """A metric's options: its record's defaults, then the caller's."""
        return {**self.metrics[name].options, **self.extra_options.get(name, {})}

    def _resolve(self, names) -> Dict[str, object]:
        names = list(names or self._defaults())
        wanted = ("points",) if self.kind == "points" else ("features", "probs", "labels")
        out = {}
        for name in names:
            spec = self.reg.get("metric", name)
            if not set(spec.kinds) & set(wanted):
                raise WganxError(f"metric {name!r} applies to {'/'.join(spec.kinds)} data; {self.dataset!r} "
                                 f"is {self.kind} data")
            if "modes" in spec.uses and self.spec.modes is None:
                mixtures = [n for n in self.reg.names("dataset") if self.reg.get("dataset", n).modes]
                raise WganxError(f"metric {name!r} needs a mixture with modes ({', '.join(mixtures)}), "
                                 f"not {self.dataset!r}")
            out[name] = spec
        return out

    def check_ready(self) -> None:
        """Fail now, before any training, when the feature space needs what is not installed."""
        if self.features not in (None, "domain"):
            self.reg.get("feature", self.features).check(self.inception_weights)

    # -- feature extractors and the reference -----------------------------------------------
    def extractor(self):
        """The domain classifier or the feature space's extractor; anything with ``features``
        and ``predict_proba``."""
        if self._extractor is None:
            if self.features == "domain":
                self._extractor = self.spec.classifier(self.data_dir, self.download, self.log)
            else:
                self._extractor = self.reg.get("feature", self.features).load(self.inception_weights, self.device)
        return self._extractor

    def extractor_info(self) -> dict:
        if self.features == "domain":
            clf = self.extractor()
            return {"name": getattr(clf, "description", f"{self.dataset} domain classifier"),  # as it names itself
                    "feature_dim": clf.feature_dim,
                    "test_accuracy": clf.test_accuracy}
        if self.features is not None:
            return {"name": self.reg.get("feature", self.features).description}
        return {}

    def _needs(self) -> set:
        return {k for spec in self.metrics.values() for k in spec.kinds}

    def reference(self) -> dict:
        """Reference points, or reference features, computed once."""
        if self._reference is not None:
            return self._reference
        rng = np.random.default_rng([self.seed, 77])
        data = self._real_split()
        if self.kind == "points":
            sample = getattr(data, "sample", None)  # a sampler draws fresh points; else a batch of the data
            points = sample(rng, self.num_samples) if callable(sample) else next(data.batches(self.num_samples, rng))[0]
            points = np.asarray(points, np.float64)
            self._reference = {"points": points, "n": len(points)}
            return self._reference
        if not hasattr(data, "x"):
            raise WganxError(f"the {self.reference_split} split of {self.dataset!r} must be an ArrayDataset "
                             "(images in .x) to be measured")
        n = min(self.num_samples, len(data))
        idx = np.sort(rng.choice(len(data), n, replace=False)) if n < len(data) else np.arange(len(data))
        images = images_to_float(data.x[idx])
        ref = {"n": n}
        if "features" in self._needs():
            ref["features"] = np.asarray(self.extractor().features(images), np.float64)
        self._reference = ref
        return ref

    def _real_split(self):
        """The real data to compare with: the record's ``split``, else its training data."""
        if self.spec.split is not None:
            return self.spec.split(self.data_dir, self.reference_split, None, self.download)
        if self.reference_split != "train":
            self.log(f"{self.dataset!r} has no {self.reference_split} split; comparing with its training data")
        return self.spec.load(self.data_dir, None, self.download)

    # -- computing --------------------------------------------------------------------------
    def check_samples(self, samples) -> np.ndarray:
        x = np.asarray(samples)
        if self.kind == "points":
            if x.ndim != 2:
                raise WganxError(f"{self.dataset!r} is 2-D point data, but the samples have shape {x.shape}")
            return x.astype(np.float64)
        if x.ndim not in (3, 4):
            raise WganxError(f"{self.dataset!r} is image data, but the samples have shape {x.shape}")
        return images_to_float(x)

    def evaluate(self, samples) -> Dict[str, float]:
        """Every requested metric of ``samples`` (all of them are used) as ``{key: float}``."""
        x = self.check_samples(samples)
        if len(x) < 2:
            raise WganxError(f"need at least 2 samples, got {len(x)}")
        ref = self.reference()
        out: Dict[str, float] = {}
        if self.kind == "points":
            for name, spec in self.metrics.items():
                options = self._options(name)
                if "modes" in spec.uses:
                    options["centers"], options["std"] = self.spec.modes()
                out.update(spec.compute(x, ref["points"], **options))
            return {k: float(v) for k, v in out.items()}
        needs = self._needs()
        feats = np.asarray(self.extractor().features(x), np.float64) if "features" in needs else None
        probs = np.asarray(self.extractor().predict_proba(x), np.float64) if needs & {"probs", "labels"} else None
        for name, spec in self.metrics.items():
            options = self._options(name)
            if "features" in spec.kinds:
                if "subset_size" in options:
                    options["subset_size"] = min(options["subset_size"], len(x), ref["n"])
                values = spec.compute(feats, ref["features"], **options)
            else:
                if "splits" in options:
                    options["splits"] = min(options["splits"], len(x))
                values = spec.compute(probs, None, **options)
            out.update({f"{self.features}_{k}": v for k, v in values.items()})
        return {k: float(v) for k, v in out.items()}

    # -- during training --------------------------------------------------------------------
    def __call__(self, generate_fn: Callable[[int], np.ndarray], iteration: int) -> Dict[str, float]:
        values = self.evaluate(generate_fn(self.num_samples))
        row = {"iteration": int(iteration), **values}
        self.rows = [r for r in self.rows if r["iteration"] != row["iteration"]] + [row]
        if self.folder is not None:
            self.write_csv()
            self.plot()
        return values

    def write_csv(self) -> Path:
        from .checkpoint import atomic_write

        keys = ["iteration"] + sorted({k for r in self.rows for k in r} - {"iteration"})
        path = self.folder / "metrics.csv"

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, keys, restval="")
                writer.writeheader()
                writer.writerows(self.rows)
        atomic_write(path, write)
        return path

    def plot(self) -> Optional[Path]:
        """``metrics.png``: one small panel per metric against the generator iteration."""
        if not self.rows or self.folder is None:
            return None
        from .monitor import new_figure, save_figure

        keys = [k for k in sorted({k for r in self.rows for k in r} - {"iteration"})
                if not k.endswith(("_total", "_std"))]
        cols = min(4, len(keys)) or 1
        rows = math.ceil(len(keys) / cols) or 1
        fig = new_figure(figsize=(3.2 * cols, 2.6 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, key in zip(axes.ravel(), keys):
            pts = [(r["iteration"], r[key]) for r in self.rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("generator iteration", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        return save_figure(fig, self.folder / "metrics.png", dpi=90)


def read_metrics_csv(path: Path) -> List[Dict[str, float]]:
    """The rows of a ``metrics.csv`` written by :meth:`Evaluator.write_csv` ([] if there is none)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(float(v)) if k == "iteration" else float(v)) for k, v in r.items() if v != ""}
                for r in csv.DictReader(f)]


# ---------------------------------------------------------------------------- sources

def load_npz_samples(path) -> np.ndarray:
    """``images`` or ``points`` of a ``samples.npz`` (as ``wganx generate`` writes); any other
    array is refused rather than guessed at."""
    path = Path(path)
    if not path.is_file():
        raise WganxError(f"samples file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in ("images", "points"):
                if key in data.files:
                    return np.asarray(data[key])
            raise WganxError(f"{path} holds {', '.join(data.files) or 'nothing'}; expected an 'images' or "
                             "'points' array (as wganx generate writes)")
    except WganxError:
        raise
    except Exception as exc:
        raise WganxError(f"{path} is not a readable .npz file ({exc})") from None


def _load_source(args, gan=None, samples=None) -> tuple:
    """``(samples, source info, dataset from the source or None, data_dir or None)``."""
    if gan is not None or args.model_load_path:
        if gan is None:
            from .gan import load

            gan = load(args.model_load_path, args.backend, context=args.context, device_id=args.device_id,
                       threads=args.threads, batch_size=args.batch_size)
        n = args.num_samples or DEFAULT_SAMPLES.get(gan.data_kind, 10000)
        info = {"type": "checkpoint", "path": str(gan.checkpoint), "iteration": gan.iteration,
                "trained_with": gan.trained_with, "backend": gan.backend,
                "weights": "raw" if args.raw_weights or not gan.moving_average else "moving average"}
        return gan.sample(n, args.seed, raw_weights=args.raw_weights), info, gan.dataset, gan.config.get("data_dir")
    if samples is not None:
        info = {"type": "array", "path": f"shape {tuple(samples.shape)}"}
    elif args.samples:
        samples = load_npz_samples(args.samples)
        info = {"type": "npz", "path": str(args.samples)}
    else:
        data = default_registry().get("dataset", "folder").load(str(args.folder), None, False)
        samples = data.x
        info = {"type": "folder", "path": str(args.folder)}
    if args.num_samples:
        samples = samples[:args.num_samples]
    return samples, info, None, None


# ---------------------------------------------------------------------------- the command

def command(
        model_load_path: Annotated[Optional[Path], typer.Option(
            "--model-load-path", metavar="CKPT", help="a params_*.safetensors checkpoint to sample from",
            rich_help_panel="Source (one of)")] = None,
        samples: Annotated[Optional[Path], typer.Option(
            "--samples", metavar="FILE.npz", help="samples.npz from wganx generate ('images' or 'points')",
            rich_help_panel="Source (one of)")] = None,
        folder: Annotated[Optional[Path], typer.Option(
            "--folder", metavar="DIR", help="a folder of generated images (png, jpg, ...)",
            rich_help_panel="Source (one of)")] = None,
        backend: Backend = None,
        context: Context = "cpu",
        device_id: DeviceId = 0,
        threads: Threads = 0,
        batch_size: Annotated[int, typer.Option("-b", "--batch-size", help="generator batch size")] = 256,
        raw_weights: RawWeights = False,
        metrics: Annotated[Optional[List[str]], typer.Option(
            "--metrics", metavar="LIST", help="comma-separated metric plugins, repeatable (default: by data kind)",
            rich_help_panel="Metrics")] = None,
        num_samples: Annotated[Optional[int], typer.Option(
            "--num-samples", metavar="N", help="samples to evaluate (default: 10000 images, 2500 points)",
            rich_help_panel="Metrics")] = None,
        reference: Annotated[Optional[str], typer.Option(
            "--reference", metavar="DATASET", help="real dataset to compare with (default: the checkpoint's)",
            rich_help_panel="Reference")] = None,
        reference_split: Annotated[str, typer.Option(
            "--reference-split", help="split of the real dataset: test or train", rich_help_panel="Reference")] = "test",
        data_dir: Annotated[Optional[str], typer.Option(
            "--data-dir", help="folder of the real dataset's files (default: the checkpoint's)",
            rich_help_panel="Reference")] = None,
        download: Annotated[bool, typer.Option(
            "--download/--no-download", help="download a missing real dataset", rich_help_panel="Reference")] = False,
        features: Annotated[str, typer.Option(
            "--features", help="feature space of image metrics: domain (the dataset's classifier), a registered "
                               "one (inception), or auto", rich_help_panel="Metrics")] = "auto",
        inception_weights: Annotated[Optional[str], typer.Option(
            "--inception-weights", metavar="PATH", help="weights-inception-2015-12-05-6726825d.pth (default: "
                                                        "$WGANX_INCEPTION_WEIGHTS, torch's hub cache, or a download)",
            rich_help_panel="Metrics")] = None,
        kid_subsets: Annotated[Optional[int], typer.Option(
            "--kid-subsets", help="subsets KID averages over (default: the metric's, 100 as torch-fidelity; "
                                  "fewer is faster)", rich_help_panel="Metrics")] = None,
        seed: Annotated[int, typer.Option("--seed", help="seed of the latents and of the reference subset")] = 0,
        json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> int:
    """Measure sample quality of a checkpoint, a samples.npz or a folder of images.

    FID, KID, IS, precision-recall and class coverage of images; modes and energy distance of
    2-D points."""
    return main(SimpleNamespace(**locals()))


def options_of(**given) -> SimpleNamespace:
    """The options of :func:`command` by name, ``given`` over the defaults of its signature
    (the one place they are defined); an unknown name is a one-line error."""
    import difflib

    params = inspect.signature(command).parameters
    known = [name for name in params if name not in SOURCES + ("json",)]
    for name in given:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            raise WganxError(f"wganx.evaluate: unknown option {name!r}; "
                             + (f"did you mean {near[0]!r}? " if near else "") + "choose from: " + ", ".join(known))
    return SimpleNamespace(**{**{name: p.default for name, p in params.items()}, **given})


def run(args, gan=None, samples=None) -> dict:
    """Evaluate as ``args`` (the options of :func:`command`) say; returns the report. ``gan``
    (a :class:`wganx.GAN`) or ``samples`` (an array) is the source instead of a file."""
    sources = [s for s in (args.model_load_path, args.samples, args.folder, gan, samples) if s is not None]
    if len(sources) != 1:
        raise WganxError("give exactly one of --model-load-path, --samples, --folder")
    for flag, value, allowed in (("--context", args.context, CONTEXTS),
                                 ("--reference-split", args.reference_split, ("test", "train")),
                                 ("--features", args.features, feature_spaces(default_registry()))):
        check_choice(flag, value, allowed)
    SEED.check("--seed", args.seed)
    if args.num_samples is not None and args.num_samples < 2:
        raise WganxError(f"--num-samples must be at least 2, got {args.num_samples}")
    if args.batch_size < 1 or (args.kid_subsets is not None and args.kid_subsets < 1):
        raise WganxError("--batch-size and --kid-subsets must be at least 1")
    args.threads = resolve_threads(args.threads)
    if args.threads is not None:
        set_thread_env(args.threads)  # the feature extractor's framework too, when it loads
    samples, info, dataset, data_dir = _load_source(args, gan, samples)
    dataset = args.reference or dataset
    if not dataset:
        raise WganxError("evaluate: which real dataset are these samples of? pass --reference DATASET "
                         "(e.g. mnist, 8gaussians)")
    evaluator = Evaluator(None, dataset, args.data_dir if args.data_dir is not None else data_dir,
                          parse_metrics(args.metrics), len(samples), features=args.features,
                          inception_weights=args.inception_weights, reference_split=args.reference_split,
                          seed=args.seed, download=args.download,
                          device="cuda" if args.context in ("cuda", "cudnn") else "cpu",
                          metric_options={"kid": {"num_subsets": args.kid_subsets}} if args.kid_subsets else None)
    values = evaluator.evaluate(samples)
    return {"source": info, "dataset": dataset, "data_kind": evaluator.kind, "num_samples": int(len(samples)),
            "reference": {"dataset": dataset, "split": evaluator.reference_split,
                          "samples": int(evaluator.reference()["n"])},
            "features": evaluator.features, "extractor": evaluator.extractor_info() if evaluator.features else {},
            "metrics": list(evaluator.metrics), "values": values}


def format_table(report: dict) -> str:
    src = report["source"]
    lines = [f"samples:   {report['num_samples']} from {src['type']} {src['path']}"
             + (f" (iteration {src['iteration']}, {src['backend']})" if src.get("iteration") is not None else ""),
             f"reference: {report['reference']['samples']} of {report['dataset']} ({report['reference']['split']})"]
    ext = report.get("extractor") or {}
    if ext:
        acc = f", test accuracy {ext['test_accuracy']:.4f}" if "test_accuracy" in ext else ""
        lines.append(f"features:  {report['features']}: {ext['name']}{acc}")
    width = max(len(k) for k in report["values"]) if report["values"] else 6
    lines.append("")
    lines.append(f"{'metric'.ljust(width)}  value")
    for key, value in report["values"].items():
        whole = key.endswith(("_covered", "_total")) and math.isfinite(value)
        text = f"{value:.0f}" if whole else f"{value:.4g}"
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)


def main(args) -> int:
    """Run ``wganx evaluate``; errors are printed as one line and give exit status 2."""
    try:
        report = run(args)
    except WganxError as exc:
        print(f"wganx evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(_json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def evaluate(source, **options) -> Dict[str, float]:
    """:func:`wganx.api.evaluate` (``wganx.evaluate(...)``): ``run`` with the options of
    :func:`command` by name, the source given as an object or a path."""
    from .gan import GAN

    args = options_of(**options)
    if isinstance(source, GAN):
        return run(args, gan=source)["values"]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir() and not any(path.glob("params_*.safetensors")):
            args.folder = path
        elif path.suffix == ".npz":
            args.samples = path
        else:
            args.model_load_path = path
        return run(args)["values"]
    return run(args, samples=np.asarray(source))["values"]


class _CallableModule(types.ModuleType):
    """``wganx.evaluate(...)`` is :func:`wganx.api.evaluate`, while ``wganx.evaluate`` stays this
    module: importing a submodule sets the package's attribute of that name, so a function
    there would be replaced by the module the first time anything imported it."""

    def __call__(self, source, **options) -> Dict[str, float]:
        return evaluate(source, **options)


sys.modules[__name__].__class__ = _CallableModule
