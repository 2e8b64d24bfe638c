"""Tests of ``wganx evaluate``, the Evaluator, the numpy domain classifier and the Inception plumbing.

Real data comes from ``shared/data`` beside the repository (skipped where it is absent). The
MNIST classifier is trained once per test session into a temporary cache (conftest).
"""
import json
import os

import numpy as np
import pytest

import wganx
from wganx import cli

from wganx import evaluate as E
from wganx.errors import WganxError
from wganx_plugins.datasets import load_split, mode_centers, mode_std
from wganx_plugins.datasets import toy
from wganx_plugins.metrics import classifier as C
from wganx_plugins.metrics import inception as I

from conftest import CIFAR_JPEG, MNIST, extract_cifar_jpegs, needs_mnist


def parse(argv):
    """The options of ``wganx evaluate ARGV``, parsed by the command itself."""
    return cli.parse("evaluate", argv)


def run_json(argv, capsys):
    code = E.main(parse(argv + ["--json"]))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="session")
def mnist_test():
    return load_split("mnist", MNIST, "test")


@pytest.fixture(scope="session")
def mnist_train():
    return load_split("mnist", MNIST, "train")


# ------------------------------------------------------------------------ classifier

@needs_mnist
def test_classifier_training_is_reproducible(mnist_train):
    x, y = mnist_train.x[:1024], mnist_train.labels[:1024]
    recipe = C.Recipe(hidden=(32, 16), epochs=1, batch_size=64)
    a = C.train_classifier(x, y, recipe)
    b = C.train_classifier(x, y, recipe)
    other = C.train_classifier(x, y, C.Recipe(hidden=(32, 16), epochs=1, batch_size=64, seed=1))
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W0"], other.params["W0"])


def test_classifier_inputs_resized_and_grey():
    rng = np.random.default_rng(0)
    img = rng.uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)
    assert C.prepare(img).shape == (3, 784)
    np.testing.assert_array_equal(C.prepare(img), img.reshape(3, 784))
    rgb = np.repeat(img, 3, axis=1)
    np.testing.assert_allclose(C.prepare(rgb), img.reshape(3, 784), atol=1e-6)
    big = rng.uniform(-1, 1, (2, 1, 32, 32)).astype(np.float32)
    assert C.prepare(big).shape == (2, 784)
    u8 = np.full((1, 28, 28, 1), 255, np.uint8)  # NHWC uint8
    np.testing.assert_array_equal(C.prepare(u8), np.ones((1, 784), np.float32))
    with pytest.raises(WganxError, match="1 or 3 channels"):
        C.prepare(np.zeros((2, 5, 28, 28)))


@pytest.mark.slow
@needs_mnist
def test_mnist_classifier_accuracy_and_cache(mnist_classifier, mnist_test, cache):
    assert mnist_classifier.test_accuracy >= 0.975
    assert mnist_classifier.accuracy(mnist_test.x, mnist_test.labels) == pytest.approx(
        mnist_classifier.test_accuracy)
    path = cache / "classifiers" / "mnist.safetensors"
    assert path.is_file()
    again = C.load_classifier("mnist", MNIST)  # from the cache, no retraining
    for k, v in mnist_classifier.params.items():
        np.testing.assert_array_equal(again.params[k], v)
    assert again.meta["recipe"] == mnist_classifier.meta["recipe"]
    feats = mnist_classifier.features(mnist_test.x[:10])
    probs = mnist_classifier.predict_proba(mnist_test.x[:10])
    assert feats.shape == (10, 128) and probs.shape == (10, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0)


def test_no_classifier_for_other_datasets():
    with pytest.raises(WganxError, match="no domain classifier for 'svhn'; there is one for: mnist, fashion-mnist, "
                                         "cifar10, folder"):
        C.load_classifier("svhn")


# ------------------------------------------------------------------ colour classifier
needs_cifar = pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"the CIFAR-10 JPEG copy not found at {CIFAR_JPEG}")
SMALL_COLOUR = C.Recipe(model="convnet", channels=(8, 16, 16), hidden=(32,), epochs=8, batch_size=64, lr=2e-3,
                        flip=True)


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """Real CIFAR-10 images: the first 100 training and 30 test JPEGs of every class."""
    return extract_cifar_jpegs(tmp_path_factory.mktemp("cifar-jpg"), {"train": 100, "test": 30})


def test_convnet_gradients_match_central_differences():
    from wganx_plugins.metrics import convnet

    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float64) for k, v in convnet.init((2, 3, 2), 5, 4, rng).items()}
    x, y = rng.standard_normal((2, 32, 32, 3)), np.array([1, 3])

    def loss(p):
        logits = convnet.forward(p, x)
        z = logits - logits.max(1, keepdims=True)
        return -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(2), y].mean()

    logits, cache = convnet.forward(params, x, keep=True)
    d = np.exp(logits - logits.max(1, keepdims=True))
    d /= d.sum(1, keepdims=True)
    d[np.arange(2), y] -= 1
    grads = convnet.backward(params, cache, d / 2)
    for name, value in params.items():
        for _ in range(3):
            idx = tuple(rng.integers(0, n) for n in value.shape)
            moved = [dict(params, **{name: value.copy()}) for _ in range(2)]
            moved[0][name][idx] += 1e-6
            moved[1][name][idx] -= 1e-6
            numeric = (loss(moved[0]) - loss(moved[1])) / 2e-6
            assert grads[name][idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9), (name, idx)


@needs_cifar
def test_colour_classifier_of_a_labelled_folder_trains_once_and_measures_its_test_split(
        cifar_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(C.RECIPES, "folder", SMALL_COLOUR)
    clf = C.load_classifier("folder", cifar_folder, cache=tmp_path)
    assert clf.model.name == "convnet" and clf.feature_dim == 32 and clf.meta["train_samples"] == 1000
    assert clf.test_accuracy >= 0.2  # ten classes, 300 real test images: chance is 0.1 (measured 0.29-0.35)
    (cached,) = tmp_path.glob("folder-*.safetensors")
    again = C.load_classifier("folder", cifar_folder, cache=tmp_path)
    assert all(np.array_equal(again.params[k], v) for k, v in clf.params.items())  # from the cache
    probs = clf.predict_proba(np.zeros((3, 1, 28, 28), np.float32))  # grey and small: made RGB 32x32
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1)
    first = next((cifar_folder / "train" / "cat").iterdir())
    os.utime(first, ns=(0, 0))  # the folder changed: another classifier
    C.load_classifier("folder", cifar_folder, cache=tmp_path)
    assert len(list(tmp_path.glob("folder-*.safetensors"))) == 2


@needs_cifar
def test_a_labelled_folder_is_measured_in_its_domain_an_unlabelled_one_in_inception(cifar_folder, tmp_path):
    assert E.Evaluator(None, "folder", str(cifar_folder), num_samples=10).features == "domain"
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in list((cifar_folder / "test" / "cat").iterdir())[:3]:
        (loose / path.name).write_bytes(path.read_bytes())
    assert E.Evaluator(None, "folder", str(loose), num_samples=10).features == "inception"
    with pytest.raises(WganxError, match="needs labels.*one subfolder per class"):
        C.load_classifier("folder", loose, cache=tmp_path)


@needs_cifar
def test_cifar10_classifier_from_the_official_batches(cifar_folder, tmp_path, monkeypatch):
    """The same real images written as the official python batches (``data_batch_1..5``,
    ``test_batch``): the ``cifar10`` dataset's classifier trains on them and measures the test batch."""
    import pickle

    from PIL import Image
    from wganx_plugins import datasets as ds

    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    classes = ds.CLASS_NAMES["cifar10"]
    for split, names in (("train", ds.FILES["cifar10"]["train"]), ("test", ds.FILES["cifar10"]["test"])):
        files = [(p, classes.index(p.parent.name)) for c in classes for p in sorted((cifar_folder / split / c).iterdir())]
        for i, name in enumerate(names):
            part = files[i::len(names)]
            data = np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1).reshape(-1) for p, _ in part])
            (batches / name).write_bytes(pickle.dumps({b"data": data, b"labels": [label for _, label in part]}, protocol=2))
            monkeypatch.setitem(ds.MD5["cifar10"], name, __import__("hashlib").md5((batches / name).read_bytes()).hexdigest())
    monkeypatch.setitem(C.RECIPES, "cifar10", SMALL_COLOUR)
    clf = C.load_classifier("cifar10", tmp_path, cache=tmp_path / "cache")
    assert clf.meta["train_samples"] == 1000 and clf.test_accuracy >= 0.2
    assert (tmp_path / "cache" / "cifar10.safetensors").is_file()


# ------------------------------------------------------------------------ domain metrics

@pytest.mark.slow
@needs_mnist
def test_domain_fid_small_for_real_large_for_noise(mnist_classifier, mnist_train):
    # real train images against the test split: only the small gap between the two splits
    # in the classifier's space (about 15-25 at 2000 samples); uniform noise: hundreds
    ev = E.Evaluator(None, "mnist", MNIST, "fid,kid", 2000, metric_options={"kid": {"num_subsets": 10}},
                     log=None)
    real = mnist_train.x[:2000]
    noise = np.random.default_rng(0).uniform(-1, 1, (2000, 1, 28, 28)).astype(np.float32)
    r, n = ev.evaluate(real), ev.evaluate(noise)
    assert 0 < r["domain_fid"] < 40, r
    assert n["domain_fid"] > 10 * r["domain_fid"], (r, n)
    assert n["domain_kid_mean"] > 10 * r["domain_kid_mean"], (r, n)


@pytest.mark.slow
@needs_mnist
def test_evaluate_npz_real_vs_noise(mnist_classifier, mnist_train, tmp_path, capsys):
    real = mnist_train.x[:2000].astype(np.float32) / 127.5 - 1.0
    np.savez(tmp_path / "real.npz", images=real)
    np.savez(tmp_path / "noise.npz", images=np.random.default_rng(1).uniform(-1, 1, real.shape).astype(np.float32))
    common = ["--reference", "mnist", "--data-dir", str(MNIST), "--kid-subsets", "5"]
    good = run_json(["--samples", str(tmp_path / "real.npz")] + common, capsys)
    bad = run_json(["--samples", str(tmp_path / "noise.npz")] + common, capsys)
    g, b = good["values"], bad["values"]
    assert good["features"] == "domain" and good["num_samples"] == 2000
    assert good["extractor"]["test_accuracy"] >= 0.975
    assert g["domain_classes_covered"] == 10 and g["domain_normalized_entropy"] > 0.98
    assert g["domain_is_mean"] > 8.0 > b["domain_is_mean"]
    assert g["domain_precision"] > 0.6 and g["domain_recall"] > 0.6
    assert b["domain_precision"] < 0.05 and b["domain_recall"] < 0.05
    assert b["domain_fid"] > 10 * g["domain_fid"]
    # the table shows the same numbers
    assert E.main(parse(["--samples", str(tmp_path / "real.npz")] + common)) == 0
    table = capsys.readouterr().out
    assert "domain_fid" in table and "test accuracy" in table


# ------------------------------------------------------------------------ points

def _points(tmp_path, name, points):
    path = tmp_path / f"{name}.npz"
    np.savez(path, points=points.astype(np.float32))
    return str(path)


@pytest.mark.parametrize("dataset", ["8gaussians", "25gaussians"])
def test_evaluate_points_all_modes_vs_collapsed(dataset, tmp_path, capsys):
    real = toy.sample(dataset, np.random.default_rng(5), 2500)
    centre = mode_centers(dataset)[0]
    collapsed = centre + mode_std(dataset) * np.random.default_rng(6).standard_normal((2500, 2))
    good = run_json(["--samples", _points(tmp_path, "real", real), "--reference", dataset], capsys)
    bad = run_json(["--samples", _points(tmp_path, "bad", collapsed), "--reference", dataset], capsys)
    k = len(mode_centers(dataset))
    assert good["metrics"] == ["modes", "energy"]
    assert good["values"]["modes_covered"] == k == good["values"]["modes_total"]
    assert good["values"]["high_quality_share"] > 0.97
    assert bad["values"]["modes_covered"] == 1
    assert bad["values"]["energy_distance"] > 10 * good["values"]["energy_distance"]


def test_json_report_shape(tmp_path, capsys):
    real = toy.sample("8gaussians", np.random.default_rng(0), 500)
    report = run_json(["--samples", _points(tmp_path, "p", real), "--reference", "8gaussians",
                       "--metrics", "modes"], capsys)
    assert set(report) == {"source", "dataset", "data_kind", "num_samples", "reference", "features",
                           "extractor", "metrics", "values"}
    assert report["source"] == {"type": "npz", "path": str(tmp_path / "p.npz")}
    assert report["reference"] == {"dataset": "8gaussians", "split": "test", "samples": 500}
    assert report["data_kind"] == "points" and report["features"] is None
    assert set(report["values"]) == {"modes_covered", "modes_total", "high_quality_share"}
    assert all(isinstance(v, float) for v in report["values"].values())


def test_clear_errors(tmp_path, capsys):
    path = _points(tmp_path, "p", np.zeros((10, 2)))
    assert E.main(parse(["--samples", path])) == 2
    assert "pass --reference" in capsys.readouterr().err
    assert E.main(parse(["--samples", path, "--reference", "swissroll", "--metrics", "modes"])) == 2
    assert "needs a mixture with modes" in capsys.readouterr().err
    assert E.main(parse(["--samples", path, "--reference", "8gaussians", "--metrics", "fid"])) == 2
    assert "applies to features data" in capsys.readouterr().err
    assert E.main(parse(["--samples", str(tmp_path / "missing.npz"), "--reference", "8gaussians"])) == 2
    assert "does not exist" in capsys.readouterr().err
    assert E.main(parse(["--samples", path, "--folder", str(tmp_path)])) == 2
    assert "give exactly one of --model-load-path, --samples, --folder" in capsys.readouterr().err
    assert E.main(parse(["--samples", path, "--reference", "8gaussians", "--seed", "-1"])) == 2
    assert capsys.readouterr().err.strip() == "wganx evaluate: error: --seed must not be negative, got -1"


def test_evaluator_during_training_writes_csv_and_plot(tmp_path):
    ev = E.Evaluator({"monitor_path": str(tmp_path), "dataset": "8gaussians", "seed": 3}, num_samples=400,
                     log=None)
    rng = np.random.default_rng(0)
    first = ev(lambda n: rng.standard_normal((n, 2)), 100)
    second = ev(lambda n: toy.sample("8gaussians", rng, n), 200)
    assert second["modes_covered"] == 8 > first["modes_covered"]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[0] == "iteration" and len(lines) == 3
    assert (tmp_path / "metrics.png").stat().st_size > 0
    resumed = E.Evaluator({"monitor_path": str(tmp_path), "dataset": "8gaussians"}, num_samples=400,
                          resume_from=100, log=None)
    assert [r["iteration"] for r in resumed.rows] == [100]


def test_evaluate_checkpoint_on_torch(tmp_path, capsys):
    pytest.importorskip("torch")
    from wganx.config import TrainConfig
    from wganx.training import train

    result = train(TrainConfig(backend="torch", dataset="8gaussians", arch="mlp", maps=16, latent=2,
                               batch_size=32, max_iter=2, n_critic=1, monitor_path=str(tmp_path / "run"),
                               progress=False, save_interval=2, num_samples=16))
    report = run_json(["--model-load-path", result["checkpoint"], "--num-samples", "300"], capsys)
    assert report["source"]["type"] == "checkpoint" and report["source"]["iteration"] == 2
    assert report["dataset"] == "8gaussians" and report["num_samples"] == 300
    assert set(report["values"]) >= {"modes_covered", "energy_distance", "sliced_wasserstein"}


# ------------------------------------------------------------------------ Inception

def test_inception_missing_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere" / I.WEIGHTS_FILE
    with pytest.raises(WganxError) as info:
        I.find_weights(missing)
    msg = str(info.value)
    assert str(missing) in msg and I.WEIGHTS_URL in msg and "--inception-weights" in msg
    monkeypatch.setenv("WGANX_INCEPTION_WEIGHTS", str(missing))
    with pytest.raises(WganxError, match=r"\$WGANX_INCEPTION_WEIGHTS"):
        I.find_weights()
    # through the command: a folder of images, reference a folder dataset -> Inception features
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    code = E.main(parse(["--folder", str(tmp_path), "--reference", "folder", "--data-dir", str(tmp_path),
                         "--inception-weights", str(missing)]))
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and I.WEIGHTS_FILE in err


def test_inception_weights_lookup_order(tmp_path, monkeypatch):
    given, env, hub = tmp_path / "given.pth", tmp_path / "env.pth", tmp_path / "torch"
    for p in (given, env):
        p.write_bytes(b"x")
    monkeypatch.setenv("TORCH_HOME", str(hub))
    monkeypatch.delenv("WGANX_INCEPTION_WEIGHTS", raising=False)
    assert I.find_weights() is None  # nothing anywhere: torch-fidelity would download
    (hub / "hub" / "checkpoints").mkdir(parents=True)
    (hub / "hub" / "checkpoints" / I.WEIGHTS_FILE).write_bytes(b"x")
    assert I.find_weights() == hub / "hub" / "checkpoints" / I.WEIGHTS_FILE
    monkeypatch.setenv("WGANX_INCEPTION_WEIGHTS", str(env))
    assert I.find_weights() == env
    assert I.find_weights(given) == given


def test_inception_plumbing_with_a_stand_in_network():
    """Everything around the network: uint8 RGB conversion, batching, softmax of the logits.
    (The real network needs torch-fidelity and its weights, which tests cannot fetch.)"""
    torch = pytest.importorskip("torch")
    seen = []

    class StandIn(torch.nn.Module):
        def forward(self, x):
            seen.append((tuple(x.shape), x.dtype))
            f = x.float().mean(dim=(2, 3)).repeat(1, 683)[:, :2048]
            return f, torch.zeros(len(x), 1008)

    ext = I.InceptionFeatures(extractor=StandIn(), batch_size=4)
    imgs = np.concatenate([-np.ones((5, 1, 8, 8)), np.ones((5, 1, 8, 8))]).astype(np.float32)
    feats, probs = ext(imgs)
    assert [s for s, _ in seen] == [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
    assert all(d == torch.uint8 for _, d in seen)
    assert feats.shape == (10, 2048) and probs.shape == (10, 1008)
    np.testing.assert_allclose(feats[:5], 0.0)
    np.testing.assert_allclose(feats[5:], 255.0)
    np.testing.assert_allclose(probs, 1 / 1008)
    np.testing.assert_array_equal(I.to_uint8_rgb(np.zeros((1, 3, 2, 2), np.float32)), np.full((1, 3, 2, 2), 128))


class ThirdPartyMixture:
    """A dataset distribution as a third party writes it: a 3-mode mixture whose record says
    how to evaluate it (a test split, its metrics, its modes), and a metric of its own."""

    CENTERS = np.array([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])
    STD = 0.05

    @wganx.hookimpl
    def wganx_datasets(self):
        from wganx.data import SamplerDataset
        from wganx.records import DatasetSpec

        centers, std = self.CENTERS, self.STD

        def sample(rng, n):
            return (centers[rng.integers(0, 3, n)] + std * rng.standard_normal((n, 2))).astype(np.float32)

        def load(data_dir, image_size, download):
            return SamplerDataset(sample=sample, name="tri-mixture")

        return [DatasetSpec("tri-mixture", load, kind="points", split=lambda d, split, size, dl: load(d, size, dl),
                            metrics=("modes", "mean-radius"), modes=lambda: (centers, std))]

    @wganx.hookimpl
    def wganx_metrics(self):
        from wganx.records import MetricSpec

        def mean_radius(samples, reference=None, **options):
            return {"mean_radius": float(np.linalg.norm(samples, axis=1).mean())}

        return [MetricSpec("mean-radius", mean_radius, kinds=("points",))]


def test_a_third_party_dataset_and_metric_are_evaluated_through_the_registry(tmp_path):
    from wganx.plugins import Registry

    reg = Registry.from_plugins([ThirdPartyMixture()])
    rng = np.random.default_rng(0)
    good = ThirdPartyMixture.CENTERS[rng.integers(0, 3, 600)] + 0.05 * rng.standard_normal((600, 2))
    one_mode = ThirdPartyMixture.CENTERS[np.zeros(600, int)] + 0.05 * rng.standard_normal((600, 2))
    evaluator = E.Evaluator(None, "tri-mixture", num_samples=600, reg=reg)
    assert list(evaluator.metrics) == ["modes", "mean-radius"]  # the record's metrics, the plugin's metric
    values = evaluator.evaluate(good)
    assert values["modes_covered"] == 3 and values["modes_total"] == 3 and values["high_quality_share"] > 0.95
    assert values["mean_radius"] == pytest.approx(np.linalg.norm(good, axis=1).mean())
    assert E.Evaluator(None, "tri-mixture", num_samples=600, reg=reg).evaluate(one_mode)["modes_covered"] == 1


def test_a_dataset_without_modes_or_classifier_says_which_have_them():
    with pytest.raises(WganxError, match=r"metric 'modes' needs a mixture with modes \(25gaussians, 8gaussians\)"):
        E.Evaluator(None, "swissroll", metrics="modes")
    with pytest.raises(WganxError, match=r"no domain classifier for 'svhn'.*cifar10, fashion-mnist, folder, mnist"):
        E.Evaluator(None, "svhn", features="domain")
