"""The optimizers' definitions (:mod:`wganx.optim`): the reference update every backend is held
to, the learning-rate schedule."""
import numpy as np
import pytest

from wganx.errors import WganxError
from wganx.optim import OptimizerConfig, reference_update


def test_linear_lr_decay_reaches_zero_at_the_last_iteration():
    from wganx.algorithm import learning_rate
    from wganx.build import make_program
    from wganx.records import ArchConfig

    config = ArchConfig(data_kind="points", latent=2, maps=4)
    program = make_program(arch="mlp", arch_config=config, lr_decay="linear", decay_iters=4,
                           critic_optimizer=OptimizerConfig("adam", lr=2e-4))
    assert [learning_rate(program, "critic", i) for i in range(6)] == pytest.approx([2e-4, 1.5e-4, 1e-4, 5e-5, 0, 0])
    assert learning_rate(program, "generator", 2) == pytest.approx(0.5e-4)  # the generator's own rate
    assert learning_rate(make_program(arch="mlp", arch_config=config), "critic", 10 ** 6) == 1e-4
    with pytest.raises(WganxError, match="needs its length in iterations"):
        make_program(arch="mlp", arch_config=config, lr_decay="linear")


def test_adam_reference_matches_the_textbook_bias_corrected_form():
    cfg = OptimizerConfig("adam", lr=0.01, beta1=0.5, beta2=0.9, eps=0.0)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(5)
    slots = {"m": np.zeros(5), "v": np.zeros(5)}
    m = v = np.zeros(5)
    q = p.copy()
    for t in range(1, 4):
        g = rng.standard_normal(5)
        p = reference_update(p, g, slots, t, cfg)
        m = 0.5 * m + 0.5 * g
        v = 0.9 * v + 0.1 * g * g
        q = q - 0.01 * (m / (1 - 0.5 ** t)) / np.sqrt(v / (1 - 0.9 ** t))
    np.testing.assert_allclose(p, q, rtol=1e-12)
