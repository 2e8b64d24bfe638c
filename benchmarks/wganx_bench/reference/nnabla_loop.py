"""A plain NNabla WGAN-GP loop with the structure of ``sony/nnabla-examples``
``GANs/wgan-gp/train.py``: PF layers in the global parameter scope, one static graph built
once, the penalty through ``nn.grad``, ``S.Adam``, and per step ``forward(clear_no_need_grad=
True)`` / ``backward(clear_buffer=True)`` / ``update``.

Seed 000's models (``models.py``: generator affine -> BN -> ReLU, conv3x3 + nearest 2x + BN
+ ReLU blocks, to-RGB conv, tanh; critic unpadded conv3x3 + avgpool2 + leaky_relu(0.01),
affine) and the WGAN-GP toy MLP. Real batches are assigned from a numpy pool with
``x_real.d = ...`` as the example assigns its data iterator's batches; ``z`` and ``eps`` are
``F.randn`` / ``F.rand`` nodes of the graph, as in the example.
"""
from __future__ import annotations

import numpy as np

from wganx.backend import prefer_python_protobuf

prefer_python_protobuf()  # before NNabla imports protobuf: TensorFlow may load beside it

import nnabla as nn  # noqa: E402
import nnabla.functions as F  # noqa: E402
import nnabla.parametric_functions as PF  # noqa: E402
import nnabla.solvers as S  # noqa: E402
from nnabla.ext_utils import get_extension_context  # noqa: E402

POOL = 8


def generator(z, maps, channels, image_size, test=False):
    n_up = int(np.log2(image_size // 4))
    first = maps * 2 ** (n_up - 1)
    with nn.parameter_scope("generator"):
        h = PF.affine(z, (first, 4, 4), name="project")
        h = F.relu(PF.batch_normalization(h, batch_stat=not test, name="project/bn"))
        for i in range(n_up):
            name = f"convblock-{i + 1}"
            h = PF.convolution(h, maps * 2 ** (n_up - 1 - i), (3, 3), pad=(1, 1), name=name)
            h = F.interpolate(h, scale=(2, 2), mode="nearest")
            h = F.relu(PF.batch_normalization(h, batch_stat=not test, name=f"{name}/bn"))
        return F.tanh(PF.convolution(h, channels, (3, 3), pad=(1, 1), name="to-RGB"))


def discriminator(x, maps):
    with nn.parameter_scope("discriminator"):
        h = x
        for i, mult in enumerate((1, 2, 4)):
            h = PF.convolution(h, maps * mult, (3, 3), name=f"conv-{i + 1}")
            h = F.leaky_relu(F.average_pooling(h, (2, 2)), 0.01)
        return PF.affine(h, 1, name="out")


def mlp(x, out, width, scope, depth=3):
    with nn.parameter_scope(scope):
        h = x
        for i in range(depth):
            h = F.relu(PF.affine(h, width, name=f"fc-{i + 1}"))
        return PF.affine(h, out, name="out")


class Step:
    def __init__(self, spec):
        ctx = get_extension_context(spec.get("context", "cpu"), device_id=str(spec.get("device_id", 0)),
                                    type_config=spec.get("type_config", "float"))
        nn.set_default_context(ctx)
        nn.clear_parameters()
        np.random.seed(spec.get("seed", 0))
        n, latent, maps = spec["batch_size"], spec["latent"], spec["maps"]
        self.n_critic = spec["n_critic"]
        image = spec["arch"] == "nnabla-cifar"
        if image:
            shape = (spec["channels"], spec["image_size"], spec["image_size"])
            G = lambda z: generator(z, maps, spec["channels"], spec["image_size"])  # noqa: E731
            D = lambda x: discriminator(x, maps)  # noqa: E731
        elif spec["arch"] == "mlp":
            shape = (spec["data_dim"],)
            G = lambda z: mlp(z, spec["data_dim"], maps, "generator")  # noqa: E731
            D = lambda x: mlp(x, 1, maps, "discriminator")  # noqa: E731
        else:
            raise ValueError(f"no plain NNabla loop for architecture {spec['arch']!r}")

        # Model (train.py)
        self.x_real = nn.Variable((n,) + shape)
        z = F.randn(shape=[n, latent])
        self.x_fake = G(z).apply(persistent=True)
        p_fake = D(self.x_fake)
        self.loss_gen = (-F.mean(p_fake)).apply(persistent=True)
        x_fake_unlinked = self.x_fake.get_unlinked_variable(need_grad=False)
        p_real = D(self.x_real)
        p_fake_unlinked = D(x_fake_unlinked)
        loss_dis = F.mean(p_fake_unlinked) - F.mean(p_real)
        if spec.get("regularizer", "gp") == "gp":
            eps = F.rand(shape=[n] + [1] * len(shape))
            x_rmix = eps * self.x_real + (1.0 - eps) * x_fake_unlinked
            x_rmix.need_grad = True
            p_rmix = D(x_rmix)
            grads = nn.grad([p_rmix], [x_rmix])
            axes = list(range(1, 1 + len(shape)))
            l2norms = [(F.sum(g ** 2.0, axes) + 1e-12) ** 0.5 for g in grads]
            gp = sum(F.mean((l2 - 1.0) ** 2.0) for l2 in l2norms)
            loss_dis = loss_dis + 10.0 * gp
        self.loss_dis = loss_dis.apply(persistent=True)

        # Solvers
        self.solver_gen = S.Adam(1e-4, 0.5, 0.9)
        self.solver_dis = S.Adam(1e-4, 0.5, 0.9)
        with nn.parameter_scope("generator"):
            self.solver_gen.set_parameters(nn.get_parameters())
        with nn.parameter_scope("discriminator"):
            self.solver_dis.set_parameters(nn.get_parameters())

        rng = np.random.default_rng(spec.get("seed", 0))
        self.pool = [rng.uniform(-1, 1, (n,) + shape).astype(np.float32) for _ in range(POOL)]
        self.k = 0

    def critic_step(self):
        self.x_fake.need_grad = False  # no backward into the generator
        self.solver_dis.zero_grad()
        self.x_real.d = self.pool[self.k % POOL]
        self.k += 1
        self.x_fake.forward(clear_no_need_grad=True)
        self.loss_dis.forward(clear_no_need_grad=True)
        self.loss_dis.backward(clear_buffer=True)
        self.solver_dis.update()

    def generator_step(self):
        self.x_fake.need_grad = True
        self.solver_gen.zero_grad()
        self.loss_gen.forward(clear_no_need_grad=True)
        self.loss_gen.backward(clear_buffer=True)
        self.solver_gen.update()

    def iteration(self):
        for _ in range(self.n_critic):
            self.critic_step()
        self.generator_step()

    def sync(self):
        float(self.loss_gen.d)  # reading .d waits for the device


def make_step(spec) -> Step:
    return Step(spec)


def versions():
    import nnabla

    return {"nnabla": nnabla.__version__}
