"""What only the PyTorch backend can show on a CPU: mixed precision. ``-t half`` is refused
on the CPU (slow, and not what anyone trains with), but PyTorch computes float16 there, so
these tests run the real torch backend with that refusal lifted: a backend plugin registered
in-process, as a third party would add one. A resumed ``-t half`` run must equal an
uninterrupted one, the loss scale's state included."""
import csv
from dataclasses import replace

import numpy as np
import pytest

from wganx import checkpoint, hookimpl
from wganx.config import TrainConfig
from wganx.plugins import Registry
from wganx.records import BackendSpec
from wganx.session import LossScale
from wganx.training import train

pytest.importorskip("wganx_torch")
pytest.importorskip("torch")


def read_losses(folder):
    with open(folder / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


from wganx_torch.backend import TorchBackend  # noqa: E402


class CpuHalfTorch(TorchBackend):
    """The torch backend with float16 autocast allowed on the CPU."""

    name = "torch-half-cpu"
    half_on_cpu = True


class _Plugin:
    @hookimpl
    def wganx_backends(self):
        return [BackendSpec("torch-half-cpu", factory="test_torch_backend:CpuHalfTorch", requires=("torch",),
                            capabilities=frozenset({"cpu", "half"}))]


def test_half_resume_equals_an_uninterrupted_run(tmp_path):
    reg = Registry.from_plugins([_Plugin()])
    base = TrainConfig(backend="torch-half-cpu", type_config="half", dataset="8gaussians", arch="mlp", maps=16,
                       latent=2, batch_size=16, n_critic=2, max_iter=6, save_interval=3, log_interval=1,
                       num_samples=16, progress=False, threads=1, monitor_path=str(tmp_path / "whole"))
    assert train(base, reg)["status"] == "finished"
    split = replace(base, max_iter=3, monitor_path=str(tmp_path / "split"))
    train(split, reg)
    train(replace(split, max_iter=6, resume="latest"), reg)
    a, b = read_losses(tmp_path / "whole"), read_losses(tmp_path / "split")
    assert [r["iteration"] for r in b] == [str(i) for i in range(1, 7)]
    for ra, rb in zip(a, b):
        for key in ("critic_loss", "generator_loss", "penalty"):
            assert float(rb[key]) == float(ra[key]), (key, ra, rb)
    sa, _ = checkpoint.load(tmp_path / "whole" / "params_000006.safetensors")
    sb, _ = checkpoint.load(tmp_path / "split" / "params_000006.safetensors")
    # the scale moved (float16 overflowed early on) and counts finite steps: both went through the checkpoint
    assert float(sa["loss_scale"]) < LossScale.MAX and float(sa["loss_scale_finite_steps"]) > 0
    assert sorted(sa) == sorted(sb)
    for key in sa:
        np.testing.assert_array_equal(sb[key], sa[key], err_msg=key)


def test_half_skips_a_step_whose_gradients_overflow_and_halves_the_scale():
    """A loss scale too large for float16 makes every gradient infinite: the step changes no
    weight and the policy halves the scale, exactly as its rule says."""
    from wganx.algorithm import step_inputs
    from wganx.build import initial_arrays, make_program
    from wganx.records import ArchConfig

    program = make_program(arch="mlp", arch_config=ArchConfig(data_kind="points", latent=2, maps=8), batch_size=8)
    session = CpuHalfTorch(type_config="half").compile(program)
    rng = np.random.default_rng(0)
    session.set_state(dict(initial_arrays(program, rng), loss_scale=np.float32(2.0 ** 40)))
    before = session.get_state()
    real = rng.uniform(-1, 1, (8, 2)).astype(np.float32)
    session.critic_step(step_inputs(program, "critic", rng, real))
    after = session.get_state()
    assert after["loss_scale"] == 2.0 ** 39 and after["loss_scale_finite_steps"] == 0
    for key in before:
        if key.startswith("critic/") or key.startswith("optimizer/critic"):
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)
