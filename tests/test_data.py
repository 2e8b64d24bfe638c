"""wganx.data: the stream of batches the training loop reads. Batch k depends on the seed
and k alone (so a resumed run reads what the uninterrupted one would), data-parallel shares
put together are the whole batch, and prefetching changes no number."""
import itertools

import numpy as np
import pytest

from wganx.data import ArrayDataset, Prefetcher, SamplerDataset, images_to_float


def first(iterator, n):
    return list(itertools.islice(iterator, n))


@pytest.fixture
def labelled():
    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)  # row i holds 2i, 2i + 1
    return ArrayDataset(x, labels=np.arange(23) % 5, kind="points")


def test_each_epoch_visits_every_sample_once_and_drops_the_partial_batch(labelled):
    batches = first(labelled.stream(5, seed=3), 8)  # 4 full batches per epoch of 23
    for epoch in (batches[:4], batches[4:]):
        rows = np.concatenate([x[:, 0] / 2 for x, _ in epoch]).astype(int)
        assert len(set(rows)) == 20 and set(rows) <= set(range(23))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches[:4], batches[4:]))  # reshuffled
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert np.array_equal(y, (x[:, 0] / 2).astype(int) % 5)  # labels travel with their samples


def test_batch_k_depends_on_the_seed_and_k_alone(labelled):
    whole = first(labelled.stream(5, seed=3), 10)
    resumed = first(labelled.stream(5, seed=3, start=6), 4)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(whole[6:], resumed))
    other = first(labelled.stream(5, seed=4), 1)[0][0]
    assert not np.array_equal(whole[0][0], other)
    a, b, c = (first(labelled.batches(5, np.random.default_rng(s)), 2) for s in (0, 0, 1))  # seeded by a generator
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b)) and not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("count", [2, 3])
def test_shares_put_together_are_the_batch(labelled, count):
    """Uneven shares too (7 rows over 3 processes), for in-memory and endless data alike."""
    sampler = SamplerDataset(lambda rng, n: rng.standard_normal((n, 2)))
    for data in (labelled, sampler):
        whole = first(data.stream(7, seed=1, start=2), 3)
        shares = [first(data.share(7, 1, 2, i, count), 3) for i in range(count)]
        for k, (x, y) in enumerate(whole):
            assert np.array_equal(np.concatenate([s[k][0] for s in shares]), x)
            if y is not None:
                assert np.array_equal(np.concatenate([s[k][1] for s in shares]), y)


def test_uint8_images_convert_batch_by_batch_to_the_unit_range():
    x = np.array([0, 127, 255], np.uint8).reshape(3, 1, 1, 1)
    data = ArrayDataset(np.repeat(x, 2, axis=0))
    batch = next(data.stream(6, seed=0))[0]
    assert batch.dtype == np.float32
    np.testing.assert_allclose(sorted(set(batch.ravel().tolist())), [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-7)
    assert data.sample_shape == (1, 1, 1) and data.num_classes == 0


def test_bad_arrays_are_named():
    with pytest.raises(ValueError, match="dataset 'd' is empty"):
        ArrayDataset(np.zeros((0, 2)), name="d")
    with pytest.raises(ValueError, match="dataset 'd': 4 samples but 3 labels"):
        ArrayDataset(np.zeros((4, 2)), np.zeros(3, int), name="d")
    with pytest.raises(ValueError, match="batch size 5 exceeds the 4 samples of 'd'"):
        next(ArrayDataset(np.zeros((4, 2)), name="d").stream(5, seed=0))


def test_the_prefetcher_keeps_the_order_and_hands_on_errors():
    assert list(Prefetcher(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise OSError("disk gone")
    fetched = Prefetcher(failing())
    assert next(fetched) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(fetched)


def test_a_closed_prefetcher_stops_reading():
    read = []

    def endless():
        for i in itertools.count():
            read.append(i)
            yield i
    fetched = Prefetcher(endless(), depth=2)
    assert next(fetched) == 0
    fetched.close()
    fetched._thread.join(timeout=10)
    assert not fetched._thread.is_alive() and len(read) <= 5


def test_images_to_float_takes_nhwc_nchw_and_greyscale():
    nhwc = np.zeros((2, 4, 5, 3), np.uint8)
    assert images_to_float(nhwc).shape == (2, 3, 4, 5)
    assert images_to_float(np.zeros((2, 4, 5), np.uint8)).shape == (2, 1, 4, 5)
    assert images_to_float(np.full((1, 3, 2, 2), 255, np.uint8)).max() == 1.0
    floats = images_to_float(np.full((1, 1, 2, 2), 0.5, np.float64))
    assert floats.dtype == np.float32 and floats.flags.c_contiguous and floats.max() == 0.5
