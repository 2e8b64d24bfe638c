"""Cross-backend parity: same weights and inputs give the same numbers on every backend.

The matrix and its tolerances live in :mod:`wganx.parity` (they are also the ``wganx parity``
command); here each case is one test. Plus checks against mathematics: the exact penalty of a
linear critic and finite differences of input gradients in float64.
"""
import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.algorithm import step_inputs
from wganx.build import initial_arrays, load_backend, make_program
from wganx.records import ArchConfig

from conftest import available_backends, check_critic_gradient, run_cli

BACKENDS = available_backends()
DOUBLE_BACKENDS = [b for b in BACKENDS if "double" in wganx.registry().get("backend", b).capabilities]
CASES = parity.default_cases(wganx.registry())


@pytest.fixture(scope="module")
def loaded():
    return {name: load_backend(name) for name in BACKENDS}


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_backends_agree(case, loaded):
    checks = parity.check_case(case, loaded, wganx.registry())
    assert {c.backend for c in checks if c.reference == BACKENDS[0]} == set(BACKENDS[1:])
    failed = [c.as_dict() for c in checks if not c.passed]
    assert not failed, json.dumps(failed, indent=1)


@pytest.mark.skipif(not DOUBLE_BACKENDS, reason="needs a backend that computes in float64")
def test_gradients_zero_in_exact_arithmetic_are_held_to_zero(loaded):
    """The conv biases before batch norm in the NNabla example's generator have a zero
    gradient: float64 finds them, every backend must give zero at the network's scale, and a
    backend whose gradient there is not zero fails."""
    reg = wganx.registry()
    case = parity.Case("nnabla-cifar", up="nearest")
    program = parity.program_for(case, reg)
    exact = load_backend(DOUBLE_BACKENDS[0], type_config="double").compile(program)
    name = BACKENDS[0]
    good, bad = loaded[name].compile(program), loaded[name].compile(program)
    original = bad.gradients

    def shifted(step, inputs):  # what a batch norm that kept the shift would give
        scalars, grads = original(step, inputs)
        if step == "generator":
            grads["generator/convblock-1/b"] = grads["generator/convblock-1/b"] + 1e-2 * max(
                float(np.max(np.abs(g))) for g in grads.values())
        return scalars, grads

    bad.gradients = shifted
    checks = parity.run_case(case, {"a": good, "b": bad}, program, exact)
    zero = {(c.quantity, c.backend, c.passed) for c in checks if "zero in exact arithmetic" in c.quantity}
    # the three convblock biases; and the critic's last bias, which the Wasserstein loss cancels
    assert zero == {("generator gradients zero in exact arithmetic (3 params)", "a", True),
                    ("generator gradients zero in exact arithmetic (3 params)", "b", False),
                    ("critic gradients zero in exact arithmetic (1 params)", "a", True),
                    ("critic gradients zero in exact arithmetic (1 params)", "b", True)}


def test_matrix_covers_every_plugin():
    reg = wganx.registry()
    covered = {(kind, getattr(c, attr)) for c in CASES
               for kind, attr in (("architecture", "arch"), ("upsampler", "up"),
                                  ("regularizer", "regularizer"), ("loss", "loss"))}
    for kind in ("architecture", "upsampler", "regularizer", "loss"):
        for name in reg.names(kind):
            assert (kind, name) in covered, f"{kind} {name} is not in the parity matrix"


def test_report_gives_the_largest_error_and_the_worst_ratio_to_its_bound():
    """The error column once showed the tensor nearest its bound (0.00e+00 for an exactly equal
    one) while another differed by 3.6e-07: it shows the largest error, and the worst
    error/bound ratio, which says how close the check came to failing."""
    reference = {"a": np.zeros(3), "b": np.array([100.0, 0.0]), "c": np.array([1.0])}
    other = {"a": np.zeros(3), "b": np.array([100.0 + 5e-3, 0.0]), "c": np.array([1.0 + 2e-4])}
    error, bound, where, largest = parity._worst(lambda k: (1e-5, 1e-4, 0.0), other, reference)
    assert (where, largest) == ("c", pytest.approx(5e-3))  # c: 2e-4 / 1.1e-4; b: 5e-3 / 1.0e-2
    assert error / bound == pytest.approx(2e-4 / 1.1e-4, rel=1e-6)
    check = parity.Check("case", "q", "x", "y", error, bound, where, largest)
    row = parity.format_table(parity.Report(["x", "y"], [check])).splitlines()[2]
    assert "5.00e-03" in row and "1.818" in row and "MISMATCH in c" in row
    assert check.as_dict()["largest_error"] == pytest.approx(5e-3) and not check.passed
    equal = parity.Check("case", "q", "x", "y", 0.0, 1e-5, "a", 3.6e-07)
    assert "3.60e-07" in parity.format_table(parity.Report(["x", "y"], [equal])) and equal.ratio == 0.0


@pytest.mark.parametrize("name", BACKENDS)
def test_linear_critic_penalty_is_exact(name, loaded):
    checks = parity.linear_penalty_checks(name, loaded[name].compile, wganx.registry())
    assert checks and all(c.passed for c in checks), [c.as_dict() for c in checks]


def test_a_mismatch_is_detected(loaded):
    """The comparison can fail: perturb one weight on one side and the check must say so."""
    if not BACKENDS:
        pytest.skip("no backend")
    name = BACKENDS[0]
    case = parity.Case("mlp", data_kind="points")
    program = make_program(arch="mlp", arch_config=case.arch_config(wganx.registry()), batch_size=parity.BATCH)
    good, bad = loaded[name].compile(program), loaded[name].compile(program)
    original = bad.set_state

    def tampered(arrays):
        arrays = dict(arrays)
        arrays["critic/fc-1/W"] = arrays["critic/fc-1/W"] * np.float32(1.001)
        original(arrays)

    bad.set_state = tampered
    checks = parity.run_case(case, {"a": good, "b": bad}, program)
    assert any(not c.passed for c in checks)


@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
@pytest.mark.parametrize("arch", ["nnabla-cifar", "resnet", "dcgan"])
def test_input_gradient_matches_finite_differences_in_float64(name, arch):
    reg = wganx.registry()
    config = ArchConfig(image_size=32 if arch != "dcgan" else 16, channels=1, latent=4, maps=2,
                        up=reg.get("upsampler", "linear"), critic_norm="layer" if arch == "resnet" else "none")
    program = make_program(arch=arch, arch_config=config, batch_size=2)
    session = load_backend(name, type_config="double").compile(program)
    rng = np.random.default_rng(3)
    session.set_state(initial_arrays(program, rng))
    x = rng.uniform(-1, 1, (2,) + program.arch.sample_shape)
    grad = session.input_gradient(x.astype(np.float64))
    h = 1e-6
    for idx in [(0, 0, 5, 7), (1, 0, 10, 3), (0, 0, 15, 15)]:
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric = (session.critic_values(up).sum() - session.critic_values(down).sum()) / (2 * h)
        assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
def test_parity_command_json(tmp_path):
    """``wganx parity`` as users run it, restricted to two cases for time (the test above runs
    every case)."""
    out = run_cli("parity", "--json", "--case", "ops contract", "--case", "ema")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["passed"] is True and sorted(report["backends"]) == sorted(BACKENDS)
    cases = {c["case"] for c in report["cases"] if not c["case"].startswith("linear critic")}
    assert cases == {"ops contract/gp/wasserstein", "nnabla-cifar[nearest]/gp/wasserstein/ema 0.9"}
    out = run_cli("parity", "--case", "no-such-case")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "matches no parity case; the cases: ops contract/gp/wasserstein, " in out.stderr


@pytest.mark.parametrize("order", list(itertools.permutations(["torch", "tensorflow", "nnabla"])),
                         ids="-".join)
def test_all_backends_in_one_process_in_any_import_order(order):
    missing = [b for b in order if b not in BACKENDS]
    if missing:
        pytest.skip(f"not installed: {missing}")
    code = textwrap.dedent(f"""
        import numpy as np, wganx
        from wganx.algorithm import step_inputs
        from wganx.build import load_backend, make_program, initial_arrays
        from wganx.records import ArchConfig
        program = make_program(arch="mlp", arch_config=ArchConfig(data_kind="points", latent=2, maps=8), batch_size=4)
        losses = []
        for name in {list(order)!r}:
            __import__({{"torch": "torch", "tensorflow": "tensorflow", "nnabla": "nnabla"}}[name])
        for name in {list(order)!r}:
            s = load_backend(name).compile(program)
            rng = np.random.default_rng(0)
            s.set_state(initial_arrays(program, rng))
            losses.append(s.fetch(s.critic_step(step_inputs(program, "critic", rng, np.ones((4, 2), "f"))))["loss"])
        assert np.allclose(losses, losses[0], rtol=1e-4), losses
        print("ok", losses)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_gradients_update_nothing(backend_name):
    """``Session.gradients`` leaves every parameter and running statistic as it was."""
    reg = wganx.registry()
    case = parity.Case("nnabla-cifar", up="nearest")
    program = parity.program_for(case, reg)
    session = load_backend(backend_name).compile(program)
    rng = np.random.default_rng(0)
    session.set_state(initial_arrays(program, rng))
    before = session.get_state()
    real = rng.uniform(-1, 1, (parity.BATCH,) + program.arch.sample_shape).astype(np.float32)
    session.gradients("critic", step_inputs(program, "critic", rng, real))
    session.gradients("generator", step_inputs(program, "generator", rng))
    after = session.get_state()
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


UPSAMPLED = (3, 4, 5)  # (C, H, W) that the generator upsamples


class Upsampling:
    """An architecture made of ``ops.interpolate``: ``G(z) = up(reshape(A z + b))`` and
    ``D(x) = w . tanh(up(x)) + b``. With ``A`` the identity, ``G`` shows ``up`` itself; the
    penalty's parameter gradient differentiates the interpolation's own backward."""

    def __init__(self, mode):
        self.mode = mode

    @wganx.hookimpl
    def wganx_architectures(self):
        from wganx.records import Architecture, ArchitectureSpec, Network, ParamSpec

        mode, (c, h, w) = self.mode, UPSAMPLED
        n_in, n_out = c * h * w, c * h * w * 16

        def build(config):
            def gen(ops, p, z, *, training, labels=None):
                return ops.interpolate(ops.reshape(ops.affine(z, p["W"], p["b"]), (ops.shape(z)[0], c, h, w)), 2, mode)

            def critic(ops, p, x, *, training, labels=None):
                return ops.affine(ops.tanh(ops.interpolate(x, 2, mode)), p["W"], p["b"])

            g = {"W": ParamSpec((n_in, n_in), fan_in=n_in, fan_out=n_in), "b": ParamSpec((n_in,), "zeros")}
            d = {"W": ParamSpec((n_out, 1), "normal", std=0.1), "b": ParamSpec((1,), "zeros")}
            return Architecture(Network(g, gen), Network(d, critic), (c, 2 * h, 2 * w))

        return [ArchitectureSpec("upsampling", build)]


def upsampling_session(name, mode, type_config="float", regularizer="gp"):
    reg = wganx.plugins.Registry.from_plugins([Upsampling(mode)])
    program = make_program(arch="upsampling", arch_config=ArchConfig(latent=int(np.prod(UPSAMPLED))), batch_size=2,
                           regularizer=regularizer, reg=reg)
    return load_backend(name, type_config=type_config, reg=reg).compile(program), program


@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
@pytest.mark.parametrize("mode", ["linear", "bilinear", "nearest"])
def test_interpolation_is_differentiable_twice_in_float64(name, mode):
    """d(critic loss with gp)/dw against central finite differences: w's gradient goes
    through the backward of ``interpolate`` (second order)."""
    session, program = upsampling_session(name, mode, "double")
    state = initial_arrays(program, np.random.default_rng(5))
    real = np.random.default_rng(6).uniform(-1, 1, (2,) + program.arch.sample_shape).astype(np.float32)
    check_critic_gradient(session, program, state, real, [("critic/W", k) for k in (0, 417, 959)], min_penalty=1e-3)


@pytest.mark.parametrize("name", BACKENDS)
def test_linear_is_the_nnabla_examples_mapping_and_bilinear_is_half_pixel(name):
    """``linear`` equals ``F.interpolate(mode="linear")`` as the NNabla example calls it
    (output j samples input j/2), ``bilinear`` NNabla's ``half_pixel=True`` (PyTorch's
    ``bilinear``), on every backend."""
    x = np.random.default_rng(0).standard_normal((2,) + UPSAMPLED).astype(np.float32)
    expected = {"linear": _reference_linear(x, half_pixel=False), "bilinear": _reference_linear(x, half_pixel=True)}
    for mode, reference in expected.items():
        session, program = upsampling_session(name, mode, regularizer="none")
        n = x[0].size
        session.set_state({"generator/W": np.eye(n, dtype=np.float32), "generator/b": np.zeros(n, np.float32)})
        got = session.generate(x.reshape(2, n))
        np.testing.assert_allclose(got, reference, atol=2e-6, err_msg=f"{name} {mode}")
    assert np.abs(expected["linear"] - expected["bilinear"]).max() > 0.1  # the two really differ
    np.testing.assert_allclose(expected["linear"], _numpy_linear(x, half_pixel=False), atol=1e-6)
    np.testing.assert_allclose(expected["bilinear"], _numpy_linear(x, half_pixel=True), atol=1e-6)


def _reference_linear(x, half_pixel):
    """NNabla's own ``F.interpolate`` (the example's call for ``half_pixel=False``) when
    NNabla is installed, else the same mapping in numpy."""
    try:
        import nnabla as nn
        import nnabla.functions as F
    except ImportError:
        return _numpy_linear(x, half_pixel)
    y = F.interpolate(nn.Variable.from_numpy_array(x), scale=(2, 2), mode="linear",
                      **({"half_pixel": True} if half_pixel else {}))
    y.forward()
    return y.d.copy()


def _numpy_linear(x, half_pixel):
    """Output j samples ``j / 2`` (or ``(j + 0.5) / 2 - 0.5``), clamped, along H then W."""
    def along(a, ax):
        n = a.shape[ax]
        out = np.arange(2 * n)
        src = np.clip((out + 0.5) / 2 - 0.5 if half_pixel else out / 2, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        w = (src - lo).reshape([-1 if i == ax else 1 for i in range(a.ndim)])
        return np.take(a, lo, ax) * (1 - w) + np.take(a, hi, ax) * w
    return along(along(x.astype(np.float64), 2), 3).astype(np.float32)


def test_a_checkpoint_of_0_1_0_with_linear_keeps_its_meaning(tmp_path, capsys):
    """wganx 0.1.0's ``linear`` was half-pixel: its checkpoints load as ``bilinear``."""
    from wganx import checkpoint
    from wganx.config import TrainConfig
    from wganx.generate import generate
    from wganx.training import train

    run = tmp_path / "run"
    train(TrainConfig(dataset="digits", image_size=32, arch="nnabla-cifar", up="bilinear", maps=2, latent=4,
                      batch_size=4, n_critic=1, max_iter=1, save_interval=1, num_samples=4, progress=False,
                      monitor_path=str(run)))
    path = run / "params_000001.safetensors"
    arrays, meta = checkpoint.load(path)
    bilinear = generate(path, tmp_path / "bilinear", num_images=4, fmt=("npz",))["samples"]
    old = {k: v for k, v in meta.items() if k != "meaning"}  # what 0.1.0 wrote: no meaning, "linear"
    old["config"] = dict(old["config"], up="linear")
    from safetensors.numpy import save_file

    save_file(arrays, str(path), metadata={"format": checkpoint.FORMAT, "wganx": json.dumps(old)})
    capsys.readouterr()
    loaded = generate(path, tmp_path / "old", num_images=4, fmt=("npz",))["samples"]
    assert "loading it as --up bilinear" in capsys.readouterr().err
    np.testing.assert_array_equal(loaded, bilinear)
    meta["config"]["up"] = "linear"  # the same weights with today's linear: another model
    checkpoint.save(path, arrays, meta)
    assert np.abs(generate(path, tmp_path / "new", num_images=4, fmt=("npz",))["samples"] - bilinear).max() > 1e-3


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
def test_the_testing_helper_checks_a_case_as_the_parity_command_does():
    """``wganx.testing.assert_parity`` once built its own program (Adam eps 1e-8) and failed
    this built-in case that ``wganx parity`` passes; both now go through ``check_case``."""
    from wganx.testing import assert_parity

    case = parity.Case("nnabla-cifar", up="nearest")
    assert case.label == "nnabla-cifar[nearest]/gp/wasserstein"
    checks = assert_parity(case)
    assert any("Adam steps" in c.quantity for c in checks) and all(c.passed for c in checks)


@pytest.mark.parametrize("name", BACKENDS)
def test_gradients_return_floats_and_numpy_on_every_backend(name, loaded):
    case = parity.Case("mlp", data_kind="points")
    program = parity.program_for(case, wganx.registry())
    session = loaded[name].compile(program)
    session.set_state(initial_arrays(program, np.random.default_rng(0)))
    real = np.random.default_rng(1).standard_normal((parity.BATCH, 2)).astype(np.float32)
    for step in ("critic", "generator"):
        inputs = step_inputs(program, step, np.random.default_rng(2), real)
        scalars, grads = session.gradients(step, inputs)
        assert scalars and all(type(v) is float for v in scalars.values()), scalars
        assert session.fetch(scalars) == scalars  # fetching what is fetched is harmless
        network = program.arch.critic if step == "critic" else program.arch.generator
        expected = {f"{step}/{k}": spec.shape for k, spec in network.params.items() if spec.trainable}
        assert {k: tuple(v.shape) for k, v in grads.items()} == {k: tuple(s) for k, s in expected.items()}
        assert all(isinstance(v, np.ndarray) for v in grads.values())


class Planted:
    """Plugins with a backend-dependent error of 0.1% (on torch only): a penalty of about
    1e-11, one wrong only for 2-D points, and a loss. The matrix must catch each."""

    @staticmethod
    def _skew(ops):
        return 1.001 if ops.name == "torch" else 1.0

    @wganx.hookimpl
    def wganx_regularizers(self):
        from wganx.records import RegularizerSpec
        from wganx_plugins.regularizers import grad_sq_norm

        skew = self._skew

        def tiny(ops, critic, real, fake, noise):  # about 1e-11 on nnabla-cifar, as WGAN-div is there
            return ops.mean(grad_sq_norm(ops, critic, real)) * (1e-8 * skew(ops))

        def points_only(ops, critic, real, fake, noise):
            wrong = skew(ops) if len(ops.shape(real)) == 2 else 1.0
            return ops.mean(grad_sq_norm(ops, critic, fake)) * wrong

        return [RegularizerSpec("planted-tiny", tiny, needs_input_grad=True),
                RegularizerSpec("planted-points", points_only, needs_input_grad=True)]

    @wganx.hookimpl
    def wganx_losses(self):
        from wganx.records import LossSpec

        skew = self._skew
        return [LossSpec("planted-loss", critic=lambda ops, r, f: (ops.mean(f) - ops.mean(r)) * skew(ops),
                         generator=lambda ops, f: -ops.mean(f))]


@pytest.mark.skipif(not {"torch", "tensorflow"} <= set(BACKENDS), reason="needs torch and tensorflow")
@pytest.mark.parametrize("name", ["planted-tiny", "planted-points", "planted-loss"])
def test_the_matrix_catches_a_planted_error_however_small_on_images_or_points(name, loaded):
    reg = wganx.plugins.Registry.from_plugins([Planted()])
    cases = [c for c in parity.default_cases(reg) if name in (c.regularizer, c.loss)]
    assert {c.data_kind for c in cases} == {"image", "points"}  # every plugin runs on both
    backends = {n: loaded[n] for n in ("tensorflow", "torch")}
    failed = {c.label: [k.quantity for k in parity.check_case(c, backends, reg) if not k.passed] for c in cases}
    caught = [label for label, quantities in failed.items() if quantities]
    assert caught, failed
    if name == "planted-tiny":
        assert all("critic penalty" in failed[label] for label in caught)
    if name == "planted-points":
        assert [label for label in caught] == [c.label for c in cases if c.data_kind == "points"]


@pytest.mark.parametrize("name", BACKENDS)
def test_every_built_in_regularizer_with_a_penalty_has_its_linear_critic_value(name, loaded):
    reg = wganx.registry()
    with_penalty = {n for n in reg.names("regularizer") if reg.get("regularizer", n).penalty is not None}
    checks = parity.linear_penalty_checks(name, loaded[name].compile, reg)
    assert {c.quantity.split(" = ")[0] for c in checks} == with_penalty  # gp-onesided of the example included
    assert all(c.passed for c in checks), [c.as_dict() for c in checks if not c.passed]
