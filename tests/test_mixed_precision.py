"""``-t half``: one loss-scale policy for every backend (:class:`wganx.session.LossScale`),
checked against its rule, and refused on the CPU in one line. That a resumed ``-t half``
run equals an uninterrupted one is tested where float16 runs on the CPU: PyTorch's
(``backends/torch/tests``)."""
import pytest

from wganx.build import load_backend
from wganx.errors import BackendUnavailableError
from wganx.session import LossScale

from conftest import available_backends


def test_the_loss_scale_halves_on_overflow_and_grows_after_a_run_of_finite_steps():
    policy = LossScale()
    assert policy.scale == 2.0 ** 15 == LossScale.MAX  # the largest power of two float16 holds
    assert policy.update(False) is False and policy.scale == 2.0 ** 14 and policy.finite_steps == 0
    assert policy.update(False) is False and policy.scale == 2.0 ** 13
    for _ in range(LossScale.GROWTH_INTERVAL - 1):
        assert policy.update(True) is True
    assert policy.scale == 2.0 ** 13 and policy.finite_steps == LossScale.GROWTH_INTERVAL - 1
    assert policy.update(True) is True and policy.scale == 2.0 ** 14 and policy.finite_steps == 0
    for _ in range(2 * LossScale.GROWTH_INTERVAL):
        policy.update(True)
    assert policy.scale == LossScale.MAX  # capped
    policy.update(False)
    for _ in range(5):
        policy.update(True)
    again = LossScale()
    for name, value in policy.state().items():
        again.load(name, value)
    assert (again.scale, again.finite_steps) == (policy.scale, policy.finite_steps) == (2.0 ** 14, 5)


@pytest.mark.parametrize("name", available_backends())
def test_half_on_the_cpu_is_refused_in_one_line(name):
    with pytest.raises(BackendUnavailableError, match=rf"^-t half \(mixed precision\) needs -c cuda or -c cudnn with {name}$"):
        load_backend(name, type_config="half")
