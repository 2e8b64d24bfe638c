"""wganx.params: parameters are drawn by the core's seeded generator, so every backend starts
from the same numbers, with NNabla's initialisation."""
import numpy as np
import pytest

from wganx import params
from wganx.records import ParamSpec


def test_conv_deconv_and_affine_specs_have_canonical_shapes_and_fans():
    conv = params.conv("c", 3, 8, 4)
    assert conv["c/W"] == ParamSpec((8, 3, 4, 4), "glorot_uniform", 3 * 16, 8 * 16)
    assert conv["c/b"] == ParamSpec((8,), "zeros")
    deconv = params.deconv("d", 8, 3, 4, bias=False)
    assert list(deconv) == ["d/W"] and deconv["d/W"].shape == (8, 3, 4, 4)  # IOHW
    assert (deconv["d/W"].fan_in, deconv["d/W"].fan_out) == (8 * 16, 3 * 16)
    affine = params.affine("a", 5, 7)
    assert affine["a/W"] == ParamSpec((5, 7), "glorot_uniform", 5, 7) and affine["a/b"].shape == (7,)


def test_norm_running_statistics_are_state_not_weights():
    plain, batch = params.norm("n", 4), params.norm("n", 4, running_stats=True)
    assert sorted(plain) == ["n/beta", "n/gamma"] and all(s.trainable for s in plain.values())
    assert not batch["n/mean"].trainable and not batch["n/var"].trainable and batch["n/var"].init == "ones"
    assert not params.spectral("s", 6)["s/u"].trainable


@pytest.mark.parametrize("in_maps,out_maps,kernel", [(3, 8, 4), (128, 64, 3), (5, 7, 1)])
def test_the_glorot_limit_is_nnablas(in_maps, out_maps, kernel):
    initializer = pytest.importorskip("nnabla.initializer")
    spec = params.conv("c", in_maps, out_maps, kernel)["c/W"]
    low, high = initializer.calc_uniform_lim_glorot(in_maps, out_maps, (kernel, kernel))
    assert -low == high == pytest.approx(params.glorot_limit(spec), rel=1e-12)


def test_values_depend_on_the_seed_alone_not_on_the_order_specs_are_given():
    specs = {**params.conv("b", 3, 4, 3), **params.affine("a", 6, 2), **params.embedding("e", 10, 16),
             **params.norm("n", 4, running_stats=True)}
    first = params.init_params(specs, np.random.default_rng(0))
    again = params.init_params(dict(reversed(list(specs.items()))), np.random.default_rng(0))
    assert list(first) == sorted(specs) and all(np.array_equal(first[k], again[k]) for k in specs)
    assert all(v.dtype == np.float32 and v.shape == specs[k].shape for k, v in first.items())
    other = params.init_params(specs, np.random.default_rng(1))
    assert not np.array_equal(first["a/W"], other["a/W"])


def test_each_init_draws_what_it_says():
    limit = params.glorot_limit(ParamSpec((64, 64), fan_in=64, fan_out=64))
    drawn = params.init_params({"w": ParamSpec((64, 64), fan_in=64, fan_out=64), "z": ParamSpec((3,), "zeros"),
                                "o": ParamSpec((3,), "ones"), "g": ParamSpec((200, 200), "normal", std=0.5)},
                               np.random.default_rng(0))
    assert np.abs(drawn["w"]).max() <= limit and np.abs(drawn["w"]).max() > 0.95 * limit
    assert np.array_equal(drawn["z"], np.zeros(3)) and np.array_equal(drawn["o"], np.ones(3))
    assert drawn["g"].std() == pytest.approx(0.5, rel=0.02) and abs(drawn["g"].mean()) < 0.01


def test_an_unknown_init_is_named():
    with pytest.raises(ValueError, match="parameter 'x': unknown init 'xavier'"):
        params.init_params({"x": ParamSpec((2,), "xavier")}, np.random.default_rng(0))
