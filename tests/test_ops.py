"""The tensor ops beyond the standard layers (transpose, slice, flip, pad, depth_to_space, matmul,
softmax) on every backend: against a numpy reference of the contract, against each other
(the parity matrix's ``ops contract`` case), and differentiated twice in float64 against
finite differences, as a gradient penalty differentiates them."""
import json

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.algorithm import step_inputs
from wganx.build import initial_arrays, load_backend
from wganx.ops import check_pad

from conftest import available_backends, check_critic_gradient

BACKENDS = available_backends()
DOUBLE_BACKENDS = [b for b in BACKENDS if "double" in wganx.registry().get("backend", b).capabilities]


class NumpyOps:
    """The contract's forward semantics in numpy, written from the docstrings of
    :mod:`wganx.ops` alone (only what :func:`wganx.parity.ops_architecture` calls)."""

    def affine(self, x, w, b):
        return x.reshape(len(x), -1) @ w + b

    def conv2d(self, x, w, b, *, stride=1, pad=0):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        k = w.shape[2]
        ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
        out = np.zeros((len(x), w.shape[0], ho, wo))
        for i in range(ho):
            for j in range(wo):
                patch = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
                out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
        return out + b.reshape(1, -1, 1, 1)

    def depth_to_space(self, x, b):
        n, c, h, w = x.shape
        out = np.zeros((n, c // (b * b), h * b, w * b))
        for ch in range(c):
            c_out, rest = divmod(ch, b * b)
            i, j = divmod(rest, b)
            out[:, c_out, i::b, j::b] = x[:, ch]
        return out

    def pad(self, x, widths, mode="constant"):
        return np.pad(x, check_pad(x.shape, widths, mode), mode=mode)

    def softmax(self, x, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def matmul(self, a, b):
        return a @ b

    def transpose(self, x, perm):
        return np.transpose(x, perm)

    def slice(self, x, axis, start, stop):
        return np.take(x, range(start, stop), axis=axis)

    def reshape(self, x, shape):
        return x.reshape(shape)

    def flip(self, x, axis):
        return np.flip(x, axis)

    def shape(self, x):
        return x.shape

    def tanh(self, x):
        return np.tanh(x)

    def leaky_relu(self, x, slope):
        return np.where(x > 0, x, slope * x)


@pytest.fixture(scope="module")
def program():
    return parity.ops_program(wganx.registry())


def _state(program, seed=0):
    return initial_arrays(program, np.random.default_rng(seed))


def _split(arrays, net):
    return {k[len(net) + 1:]: v.astype(np.float64) for k, v in arrays.items() if k.startswith(net + "/")}


def test_the_numpy_reference_knows_each_layout():
    """The reference itself: pixel_shuffle order and reflect padding on hand-made arrays."""
    ops = NumpyOps()
    x = np.arange(8.0).reshape(1, 8, 1, 1)  # channels c * 4 + i * 2 + j
    np.testing.assert_array_equal(ops.depth_to_space(x, 2)[0], [[[0, 1], [2, 3]], [[4, 5], [6, 7]]])
    row = np.arange(4.0).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(ops.pad(row, ((0, 0), (2, 1)), "reflect")[0, 0, 0], [2, 1, 0, 1, 2, 3, 2])


@pytest.mark.parametrize("name", BACKENDS)
def test_ops_match_the_numpy_reference(name, program):
    """Generator and critic of the ops architecture against numpy, float32 round-off only."""
    state = _state(program)
    session = load_backend(name).compile(program)
    session.set_state(state)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((parity.BATCH, parity.OPS_LATENT)).astype(np.float32)
    x = rng.uniform(-1, 1, (parity.BATCH,) + parity.OPS_SAMPLE).astype(np.float32)
    G, D = program.arch.generator, program.arch.critic
    ops = NumpyOps()
    expected_x = G.forward(ops, _split(state, "generator"), z.astype(np.float64), training=True)
    expected_d = D.forward(ops, _split(state, "critic"), x.astype(np.float64), training=True)
    np.testing.assert_allclose(session.generate(z), expected_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(session.critic_values(x), expected_d, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
def test_the_ops_contract_case_agrees_across_backends(program):
    backends = {name: load_backend(name) for name in BACKENDS}
    checks = parity.check_case(parity.OPS_CASE, backends, wganx.registry(), program)
    assert checks
    failed = [c.as_dict() for c in checks if not c.passed]
    assert not failed, json.dumps(failed, indent=1)


@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
def test_ops_are_differentiable_twice_in_float64(name, program):
    """d(critic loss with gp)/dw against central differences: the gradient of every critic
    weight goes through the backward of each op (second order)."""
    session = load_backend(name, type_config="double").compile(program)
    real = np.random.default_rng(6).uniform(-1, 1, (parity.BATCH,) + parity.OPS_SAMPLE).astype(np.float32)
    points = [("critic/c1/W", 0), ("critic/c1/W", 150), ("critic/c2/W", 40), ("critic/c2/b", 3)]
    check_critic_gradient(session, program, _state(program, 5), real, points, min_penalty=1e-3)


@pytest.mark.parametrize("widths, mode, message", [
    (((1, 1),), "wrap", "unknown pad mode 'wrap'; choose one of: constant, reflect"),
    (((1, -1),), "constant", "must be (before, after) pairs >= 0"),
    (((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)), "constant", "at most one per axis"),
    (((1, 1), (0, 0), (0, 0)), "reflect", "reflect pads only H and W"),
    (((4, 0), (0, 0)), "reflect", "by less than their size"),
])
def test_pad_refuses_what_it_cannot_mean(widths, mode, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_pad((2, 3, 4, 5), widths, mode)


# -- spectral normalisation ----------------------------------------------------------------------
SPECTRAL = parity.Case("resnet", up="nearest", critic_norm="spectral")


def _power_iteration(w, u):
    rows = w.reshape(w.shape[0], -1).astype(np.float64)
    v = rows.T @ u / np.linalg.norm(rows.T @ u)
    return rows @ v / np.linalg.norm(rows @ v)


@pytest.mark.parametrize("name", BACKENDS)
def test_spectral_norm_keeps_one_power_iteration_per_step(name):
    """After a critic step each ``u`` is one power iteration from the stored one (numpy);
    inference and ``gradients`` leave it as it was."""
    program = parity.program_for(SPECTRAL, wganx.registry())
    session = load_backend(name).compile(program)
    state = _state(program, 2)
    session.set_state(state)
    rng = np.random.default_rng(3)
    real = rng.uniform(-1, 1, (parity.BATCH,) + program.arch.sample_shape).astype(np.float32)
    session.gradients("critic", step_inputs(program, "critic", rng, real))
    session.critic_values(real)
    unchanged = session.get_state()
    session.critic_step(step_inputs(program, "critic", rng, real))
    after = session.get_state()
    layers = [k[:-2] for k in state if k.endswith("/u")]
    assert len(layers) == 11  # every conv and affine weight of the critic
    for layer in layers:
        np.testing.assert_array_equal(unchanged[f"{layer}/u"], state[f"{layer}/u"], err_msg=layer)
        expected = _power_iteration(state[f"{layer}/W"], state[f"{layer}/u"])
        np.testing.assert_allclose(after[f"{layer}/u"], expected, rtol=1e-5, atol=1e-6, err_msg=layer)


def _spectral_program(iterations):
    """The ops program with its critic's first conv spectrally normalised."""
    import dataclasses

    from wganx.params import spectral
    from wganx.records import Network

    base = parity.ops_program(wganx.registry())
    critic = base.arch.critic

    def forward(ops, p, x, *, training, labels=None):
        q = dict(p, **{"c1/W": ops.spectral_norm(p["c1/W"], p["c1/u"], training=training, iterations=iterations)})
        return critic.forward(ops, q, x, training=training, labels=labels)

    network = Network({**critic.params, **spectral("c1", 8)}, forward)
    return dataclasses.replace(base, arch=dataclasses.replace(base.arch, critic=network))


@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
def test_spectral_norm_is_differentiable_twice_in_float64(name):
    """With ``u`` converged (100 iterations) ``sigma`` is the largest singular value, whose
    gradient is ``u v^T`` exactly: the loss's weight gradient, held constant ``u`` and ``v``
    included, matches central differences."""
    program = _spectral_program(100)
    session = load_backend(name, type_config="double").compile(program)
    real = np.random.default_rng(6).uniform(-1, 1, (parity.BATCH,) + parity.OPS_SAMPLE).astype(np.float32)
    check_critic_gradient(session, program, _state(program, 5), real, [("critic/c1/W", k) for k in (0, 100, 215)],
                          rel=1e-5)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
def test_spectral_norm_with_several_iterations_agrees_across_backends():
    program = _spectral_program(3)
    backends = {name: load_backend(name) for name in BACKENDS}
    checks = parity.check_case(parity.Case("ops contract, spectral c1"), backends, wganx.registry(), program)
    failed = [c.as_dict() for c in checks if not c.passed]
    assert checks and not failed, json.dumps(failed, indent=1)


def tie_architecture() -> "wganx.records.Architecture":
    """``D(x) = sum(relu(x) + 2 |x| + 4 max(x, 0.5))`` (affine weights set to one): its input
    gradient shows each op's derivative, at a tie included."""
    from wganx.records import Architecture, Network, ParamSpec

    def gen(ops, p, z, *, training, labels=None):
        return ops.affine(z, p["W"], p["b"])

    def critic(ops, p, x, *, training, labels=None):
        return ops.affine(ops.relu(x) + ops.abs(x) * 2.0 + ops.maximum(x, 0.5) * 4.0, p["W"], p["b"])

    g = {"W": ParamSpec((4, 4), fan_in=4, fan_out=4), "b": ParamSpec((4,), "zeros")}
    d = {"W": ParamSpec((4, 1), "ones"), "b": ParamSpec((1,), "zeros")}
    return Architecture(Network(g, gen), Network(d, critic), (4,))


@pytest.mark.parametrize("name", BACKENDS)
def test_relu_abs_and_maximum_have_gradient_zero_at_a_tie(name):
    """The contract (wganx.ops): at a tie (relu and abs at 0, maximum(x, v) at x == v) the
    derivative is 0, as torch computes it; NNabla's abs gave 1 at 0 and TensorFlow's maximum
    gave 1 at x == v."""
    program = parity.program_around(tie_architecture(), 4, wganx.registry())
    session = load_backend(name).compile(program)
    session.set_state(_state(program))
    x = np.array([[0.0, 0.5, -1.0, 1.0]] * parity.BATCH, np.float32)  # 0: relu, abs tie; 0.5: maximum tie
    np.testing.assert_array_equal(session.input_gradient(x), [[0.0, 1.0 + 2.0, -2.0, 1.0 + 2.0 + 4.0]] * parity.BATCH)
