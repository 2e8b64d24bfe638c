"""Tests of the metric arithmetic in wganx_plugins.metrics, against independent computations."""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.spatial.distance import cdist

import wganx
from wganx.errors import WganxError
from wganx_plugins import metrics as M
from wganx_plugins.datasets.toy import mode_centers, mode_std, sample_mixture
from wganx_plugins.metrics import features as F


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d + (0 if rank else 0.1 * np.eye(d))


# ----------------------------------------------------------------------------- FID

def fid_by_eigenvalues(mu1, s1, mu2, s2):
    # eigenvalues of s1 @ s2 (product of PSD matrices) are real and >= 0
    ev = scipy.linalg.eigvals(s1 @ s2)
    tr = np.sqrt(np.clip(ev.real, 0, None)).sum()
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr


def fid_by_symmetric_root(mu1, s1, mu2, s2):
    # Tr((s1 s2)^1/2) = Tr((s1^1/2 s2 s1^1/2)^1/2), both roots through eigh
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    w2 = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(np.clip(w2, 0, None)).sum()


def test_fid_matches_independent_routes():
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        got = M.frechet_distance(mu1, s1, mu2, s2)
        assert got == pytest.approx(fid_by_eigenvalues(mu1, s1, mu2, s2), rel=1e-8, abs=1e-10)
        assert got == pytest.approx(fid_by_symmetric_root(mu1, s1, mu2, s2), rel=1e-8, abs=1e-10)
        assert got > 0


def test_fid_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fid_commuting_covariances_closed_form():
    # same eigenvectors: Tr((s1 s2)^1/2) = sum sqrt(l1 * l2)
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    l1, l2 = rng.uniform(0.2, 2, 6), rng.uniform(0.2, 2, 6)
    s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    mu = rng.standard_normal(6)
    expected = ((np.sqrt(l1) - np.sqrt(l2)) ** 2).sum()
    assert M.frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_zero_for_identical_stats_and_from_features():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 8))
    mu, sigma = M.feature_stats(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, (f - mu).T @ (f - mu) / (len(f) - 1))
    assert M.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    spec = M.wganx_metrics()
    fid = {s.name: s for s in spec}["fid"].compute
    assert fid(f, f)["fid"] == pytest.approx(0.0, abs=1e-8)
    shifted = fid(f + 2.0, f)["fid"]
    assert shifted == pytest.approx(4.0 * 8, rel=1e-6)  # mean term only
    assert fid(f, {"mu": mu, "sigma": sigma})["fid"] == pytest.approx(0.0, abs=1e-8)


def test_fid_singular_covariances_finite_and_close():
    # fewer samples than features: rank-deficient covariances
    rng = np.random.default_rng(4)
    mu1, s1 = M.feature_stats(rng.standard_normal((10, 32)))
    mu2, s2 = M.feature_stats(rng.standard_normal((10, 32)) + 0.5)
    got = M.frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(got)
    assert got == pytest.approx(fid_by_eigenvalues(mu1, s1, mu2, s2), rel=1e-3)


def test_fid_offset_retry_when_root_not_finite(monkeypatch):
    calls = []
    real_sqrtm = F._sqrtm

    def flaky(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(F, "_sqrtm", flaky)
    s = np.diag([1.0, 4.0])
    got = M.frechet_distance(np.zeros(2), s, np.zeros(2), s, eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s + 1e-3 * np.eye(2)) @ (s + 1e-3 * np.eye(2)))
    # trace(s + s) - 2 * trace(s + eps I) = -2 * 2 * eps
    assert got == pytest.approx(-4e-3, rel=1e-6)


def test_fid_imaginary_parts(monkeypatch):
    s = np.eye(2)
    monkeypatch.setattr(F, "_sqrtm", lambda a: a + 1e-6j)
    assert M.frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-5)
    monkeypatch.setattr(F, "_sqrtm", lambda a: a + 0.5j)
    with pytest.raises(WganxError, match="imaginary"):
        M.frechet_distance(np.zeros(2), s, np.zeros(2), s)


def test_fid_shape_errors():
    with pytest.raises(WganxError):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(WganxError):
        M.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


# ----------------------------------------------------------------------------- KID

def brute_force_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1.0) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_with_one_full_subset():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 4)) * 1.5 + 0.3
    expected = brute_force_mmd2(x, y)
    assert M.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)
    mean, std = M.kernel_inception_distance(x, y, num_subsets=1, subset_size=15)
    assert mean == pytest.approx(expected, rel=1e-10)
    # several subsets are at most half the smaller set, so they differ: the std is a spread, not
    # the round-off of permutations of every row (which gave 1e-13)
    mean, std = M.kernel_inception_distance(x, y, num_subsets=20, subset_size=1000, rng=1)
    gen, halves = np.random.default_rng(1), []
    for _ in range(20):
        halves.append(brute_force_mmd2(x[gen.choice(15, 7, replace=False)], y[gen.choice(15, 7, replace=False)]))
    assert mean == pytest.approx(np.mean(halves), rel=1e-10) and std == pytest.approx(np.std(halves), rel=1e-8)
    assert std > 0.05 * abs(expected)


def test_kid_subsets_mean_and_std():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) + 0.5
    mean, std = M.kernel_inception_distance(x, y, num_subsets=5, subset_size=10,
                                            rng=np.random.default_rng(9))
    gen = np.random.default_rng(9)
    vals = []
    for _ in range(5):
        a = x[gen.choice(40, 10, replace=False)]
        b = y[gen.choice(30, 10, replace=False)]
        vals.append(brute_force_mmd2(a, b))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)
    assert std > 0
    # reproducible by default
    assert M.kernel_inception_distance(x, y, 5, 10) == M.kernel_inception_distance(x, y, 5, 10)


def test_kid_near_zero_same_distribution_positive_shifted():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    same, _ = M.kernel_inception_distance(x, y, num_subsets=10, subset_size=300)
    shifted, _ = M.kernel_inception_distance(x, y + 1.0, num_subsets=10, subset_size=300)
    assert abs(same) < 0.01
    assert shifted > 0.5
    spec = {s.name: s for s in M.wganx_metrics()}["kid"]
    out = spec.compute(x, y + 1.0, num_subsets=10, subset_size=300)
    assert out["kid_mean"] == pytest.approx(shifted)


def test_kid_errors():
    with pytest.raises(WganxError):
        M.kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(WganxError):
        M.kernel_inception_distance(np.zeros((1, 2)), np.zeros((5, 2)))


# ------------------------------------------------------------------- Inception Score

def test_inception_score_bounds():
    c = 10
    labels = np.arange(200) % c
    confident = np.eye(c)[labels]
    mean, std = M.inception_score(confident, splits=10)
    assert mean == pytest.approx(c, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    same = np.tile(np.random.default_rng(0).dirichlet(np.ones(c)), (200, 1))
    mean, std = M.inception_score(same, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)
    # all samples in one class: confident but no diversity
    mean, _ = M.inception_score(np.eye(c)[np.zeros(50, int)], splits=1)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_inception_score_matches_kl_loop():
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.full(7, 0.3), size=103)
    splits = 4
    scores = []
    for i in range(splits):
        part = probs[i * 103 // splits:(i + 1) * 103 // splits]
        py = part.mean(0)
        scores.append(np.exp(np.mean([scipy.stats.entropy(row, py) for row in part])))
    mean, std = M.inception_score(probs, splits)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)
    assert 1 < mean < 7


def test_inception_score_rejects_logits_and_bad_splits():
    with pytest.raises(WganxError, match="softmax"):
        M.inception_score(np.random.default_rng(0).standard_normal((10, 3)))
    with pytest.raises(WganxError):
        M.inception_score(np.full((5, 2), 0.5), splits=6)


# ----------------------------------------------------------- precision / recall / PRDC

def brute_force_prdc(real, fake, k):
    r_real = np.sort(cdist(real, real), axis=1)[:, k]
    r_fake = np.sort(cdist(fake, fake), axis=1)[:, k]
    d_fr = cdist(fake, real)
    hit = d_fr <= r_real[None, :]
    return {
        "precision": hit.any(1).mean(),
        "recall": (cdist(real, fake) <= r_fake[None, :]).any(1).mean(),
        "density": hit.sum() / (k * len(fake)),
        "coverage": hit.any(0).mean(),
    }


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_cdist_brute_force_with_batching(k):
    rng = np.random.default_rng(10 + k)
    real = rng.standard_normal((60, 5))
    fake = rng.standard_normal((45, 5)) * 1.3 + 0.4
    expected = brute_force_prdc(real, fake, k)
    for batch in (7, 1000):
        got = M.prdc(real, fake, k=k, batch_size=batch)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-12), (key, batch)
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] < 1
    np.testing.assert_allclose(M.knn_radii(real, k, batch_size=7),
                               np.sort(cdist(real, real), axis=1)[:, k], atol=1e-10)


def test_precision_recall_geometric_cases():
    rng = np.random.default_rng(11)
    real = rng.standard_normal((80, 3))
    assert M.precision_recall(real, real + 100.0) == (0.0, 0.0)
    assert M.precision_recall(real, real.copy()) == (1.0, 1.0)
    k = 3
    out = M.prdc(real, real.copy(), k=k)
    assert out["density"] == pytest.approx((k + 1) / k)  # self plus k neighbours per ball
    assert out["coverage"] == 1.0
    # hand-made: reals on a line, k=1 -> every radius is 1
    line = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])  # one inside, one far out; fake radii are both 9.5
    assert M.precision_recall(line, fake, k=1) == (0.5, 1.0)


def test_precision_recall_spec_and_errors():
    rng = np.random.default_rng(12)
    real, fake = rng.standard_normal((30, 2)), rng.standard_normal((30, 2)) + 5
    spec = {s.name: s for s in M.wganx_metrics()}["precision-recall"]
    assert spec.kinds == ("features",)
    assert spec.compute(fake, real) == M.prdc(real, fake)
    # samples are the fake set: swapping swaps precision and recall
    out = spec.compute(real[:20], real)
    assert out["precision"] == 1.0 and out["recall"] < 1.0
    with pytest.raises(WganxError):
        M.prdc(real, fake, k=30)
    with pytest.raises(WganxError):
        spec.compute(fake, None)


# -------------------------------------------------------------------- class coverage

def test_class_coverage():
    out = M.class_coverage(np.array([0, 0, 1, 1]), num_classes=4)
    assert out["classes_covered"] == 2 and out["classes_total"] == 4
    assert out["entropy"] == pytest.approx(np.log(2))
    assert out["normalized_entropy"] == pytest.approx(0.5)
    uniform = M.class_coverage(np.arange(100) % 10)
    assert uniform["classes_covered"] == 10 and uniform["classes_total"] == 10
    assert uniform["normalized_entropy"] == pytest.approx(1.0)
    single = M.class_coverage(np.full(20, 3), num_classes=10)
    assert single["classes_covered"] == 1 and single["entropy"] == 0.0
    # scores: arg-max, classes from the width
    scores = np.eye(5)[[4, 4, 2]] * 0.9 + 0.02
    out = M.class_coverage(scores)
    assert out["classes_covered"] == 2 and out["classes_total"] == 5
    p = np.array([2, 1]) / 3
    assert out["entropy"] == pytest.approx(scipy.stats.entropy(p))
    with pytest.raises(WganxError):
        M.class_coverage(np.array([0, 5]), num_classes=3)
    spec = {s.name: s for s in M.wganx_metrics()}["class-coverage"]
    assert spec.compute(np.array([0, 1]), np.arange(10))["classes_total"] == 10


# ---------------------------------------------------------------------- toy 2-D modes

@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mode_coverage_true_and_collapsed(name):
    rng = np.random.default_rng(13)
    centers, std = mode_centers(name), mode_std(name)
    k = len(centers)
    points = sample_mixture(name, rng, 2500)
    out = M.mode_coverage(points, centers, std)
    assert out == {"modes_covered": k, "modes_total": k,
                   "high_quality_share": pytest.approx(1 - np.exp(-4.5), abs=0.01)}
    collapsed = centers[3] + std * rng.standard_normal((2500, 2))
    out = M.mode_coverage(collapsed, centers, std)
    assert out["modes_covered"] == 1 and out["high_quality_share"] > 0.97
    # off-manifold points (halfway between two centres) are never high quality
    between = np.tile((centers[0] + centers[1]) / 2, (100, 1))
    assert M.high_quality_share(between, centers, std) == 0.0
    spec = {s.name: s for s in M.wganx_metrics()}["modes"]
    assert spec.kinds == ("points",)
    assert spec.compute(points, None, dataset=name)["modes_covered"] == k


def test_mode_coverage_threshold():
    centers, std = mode_centers("8gaussians"), mode_std("8gaussians")
    # 19 of 2500 on mode 0 is below PacGAN's 20, 20 is enough
    for count, covered in ((19, 1), (20, 2)):
        points = np.concatenate([np.tile(centers[0], (count, 1)), np.tile(centers[1], (2500 - count, 1))])
        assert M.mode_coverage(points, centers, std)["modes_covered"] == covered
    points = np.tile(centers[0], (10, 1))
    assert M.mode_coverage(points, centers, std)["modes_covered"] == 1  # at least 1
    assert M.mode_coverage(points, centers, std, min_count=11)["modes_covered"] == 0


# --------------------------------------------------------- energy / sliced Wasserstein

def test_energy_distance_matches_scipy_in_1d():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal(70), rng.standard_normal(50) * 2 + 0.5
    expected = scipy.stats.energy_distance(x, y)
    assert M.energy_distance(x, y) == pytest.approx(expected, rel=1e-10)
    assert M.energy_distance(x[:, None], y[:, None], batch_size=8) == pytest.approx(expected, rel=1e-10)
    assert M.energy_distance(x, x) == 0.0


def test_energy_distance_multivariate_brute_force():
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal((40, 2)), rng.standard_normal((30, 2)) + [1.0, 0.0]
    sq = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    assert M.energy_distance(x, y, batch_size=9) == pytest.approx(np.sqrt(sq), rel=1e-10)
    assert M.energy_distance(x, y) > 0.3


def test_sliced_wasserstein():
    rng = np.random.default_rng(16)
    x, y = rng.standard_normal(60), rng.exponential(size=45)
    # 1-D: every direction is +-1, so SW_1 = W_1, with unequal sizes
    expected = scipy.stats.wasserstein_distance(x, y)
    assert M.sliced_wasserstein(x, y, num_projections=3) == pytest.approx(expected, rel=1e-10)
    x2 = rng.standard_normal((300, 2))
    assert M.sliced_wasserstein(x2, x2) == 0.0
    # pure translation by c along an axis: W_1 on direction theta is c |cos phi|,
    # whose mean over the circle is 2c/pi
    c = 1.5
    got = M.sliced_wasserstein(x2, x2 + [c, 0.0], num_projections=4000, rng=0)
    assert got == pytest.approx(2 * c / np.pi, rel=0.03)
    # p = 2, equal sizes: sorted differences
    y1 = rng.standard_normal(60) + 1
    w2 = np.sqrt(np.mean((np.sort(x) - np.sort(y1)) ** 2))
    assert M.sliced_wasserstein(x, y1, 2, p=2) == pytest.approx(w2, rel=1e-10)
    # unequal sizes with p=2: each sample repeated gives the same distribution
    assert M.sliced_wasserstein(np.repeat(x, 3), y1, 2, p=2) == pytest.approx(w2, rel=1e-10)


def test_energy_spec():
    rng = np.random.default_rng(17)
    x, y = rng.standard_normal((100, 2)), rng.standard_normal((80, 2)) + 1
    spec = {s.name: s for s in M.wganx_metrics()}["energy"]
    out = spec.compute(x, y)
    assert set(out) == {"energy_distance", "sliced_wasserstein"}
    assert out["energy_distance"] == pytest.approx(M.energy_distance(x, y))
    assert out["sliced_wasserstein"] == pytest.approx(M.sliced_wasserstein(x, y, 128, 0))


# ------------------------------------------------------------------------ registration

def test_registered_metrics():
    registry = wganx.plugins.Registry.from_plugins([M], entry_points=False)
    assert registry.names("metric") == sorted([
        "modes", "energy", "fid", "kid", "precision-recall", "inception-score", "class-coverage"])
    kinds = {name: registry.get("metric", name).kinds for name in registry.names("metric")}
    assert kinds == {"modes": ("points",), "energy": ("points",), "fid": ("features",),
                     "kid": ("features",), "precision-recall": ("features",),
                     "inception-score": ("probs",), "class-coverage": ("labels",)}
    out = registry.get("metric", "inception-score").compute(np.eye(4)[np.arange(8) % 4], None, splits=2)
    assert out == {"is_mean": pytest.approx(4.0), "is_std": pytest.approx(0.0)}
    assert all(isinstance(v, float) for v in out.values())
