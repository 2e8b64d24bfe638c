"""A plain hand-written PyTorch WGAN-GP loop: what a user writes without wganx.

``nn.Module`` generator and critic of the NNabla example's architecture (``nnabla-cifar``: affine ->
BN -> ReLU, three conv3x3 + nearest 2x + BN + ReLU blocks, to-RGB conv, tanh; critic: three
unpadded conv3x3 + avgpool2 + leaky_relu(0.01), affine), the WGAN-GP toy MLP (3 x width
ReLU, 2-D data) and giakou4/gans' DCGAN (64x64). ``torch.optim.Adam(lr=1e-4, betas=(0.5,
0.9))``; the penalty through ``torch.autograd.grad(create_graph=True)``.

Data: the real batches come from a pool of numpy arrays made once and converted with
``torch.from_numpy(...).to(device)`` per step, as a ``DataLoader``-fed loop does; ``z`` and
the interpolation weights are drawn on the device with ``torch.randn`` / ``torch.rand``.

``make_step(spec)`` returns a :class:`Step` with ``iteration()`` (``n_critic`` critic steps,
then one generator step), ``critic_step()`` and ``sync()``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

POOL = 8  # distinct real batches cycled through


class CifarGenerator(nn.Module):
    """The NNabla example's generator (NNabla GANs/wgan-gp models.py), upsample = conv3x3 + nearest 2x."""

    def __init__(self, latent=128, maps=128, channels=3, image_size=32):
        super().__init__()
        n_up = int(np.log2(image_size // 4))
        first = maps * 2 ** (n_up - 1)
        self.first = first
        self.project = nn.Linear(latent, first * 16)
        self.project_bn = nn.BatchNorm2d(first)
        blocks, in_maps = [], first
        for i in range(n_up):
            out_maps = maps * 2 ** (n_up - 1 - i)
            blocks.append(nn.ModuleDict({"conv": nn.Conv2d(in_maps, out_maps, 3, padding=1),
                                         "bn": nn.BatchNorm2d(out_maps)}))
            in_maps = out_maps
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(in_maps, channels, 3, padding=1)

    def forward(self, z):
        h = self.project(z).view(z.shape[0], self.first, 4, 4)
        h = F.relu(self.project_bn(h))
        for block in self.blocks:
            h = F.interpolate(block["conv"](h), scale_factor=2, mode="nearest")
            h = F.relu(block["bn"](h))
        return torch.tanh(self.to_rgb(h))


class CifarCritic(nn.Module):
    """The NNabla example's critic: unpadded 3x3 convs, 2x2 average pooling, leaky ReLU 0.01."""

    def __init__(self, maps=128, channels=3, image_size=32):
        super().__init__()
        convs, in_maps, size = [], channels, image_size
        for mult in (1, 2, 4):
            convs.append(nn.Conv2d(in_maps, maps * mult, 3))
            in_maps, size = maps * mult, (size - 2) // 2
        self.convs = nn.ModuleList(convs)
        self.out = nn.Linear(in_maps * size * size, 1)

    def forward(self, x):
        h = x
        for conv in self.convs:
            h = F.leaky_relu(F.avg_pool2d(conv(h), 2), 0.01)
        return self.out(torch.flatten(h, 1))


class MLP(nn.Module):
    """The WGAN-GP toy networks: 3 hidden ReLU layers of ``width``, linear output."""

    def __init__(self, d_in, d_out, width=512, depth=3):
        super().__init__()
        dims = [d_in] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(width, d_out)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


class DCGANGenerator(nn.Module):
    """Giakou4/gans' generator: transposed convs 4x4 with BN, 1x1 -> 64x64."""

    def __init__(self, latent=128, maps=64, channels=3, image_size=64):
        super().__init__()
        n = int(np.log2(image_size // 4))
        g_maps = [maps * 2 ** (n - i) for i in range(n)]
        layers = [nn.ConvTranspose2d(latent, g_maps[0], 4, bias=False), nn.BatchNorm2d(g_maps[0]), nn.ReLU()]
        for a, b in zip(g_maps[:-1], g_maps[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        layers += [nn.ConvTranspose2d(g_maps[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANCritic(nn.Module):
    """Giakou4/gans' critic: strided 4x4 convs, instance norm (affine), leaky ReLU 0.2."""

    def __init__(self, maps=64, channels=3, image_size=64):
        super().__init__()
        n = int(np.log2(image_size // 4))
        layers, in_maps = [], channels
        for i in range(n):
            out_maps = maps * 2 ** i
            layers.append(nn.Conv2d(in_maps, out_maps, 4, 2, 1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.InstanceNorm2d(out_maps, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            in_maps = out_maps
        layers.append(nn.Conv2d(in_maps, 1, 4))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return torch.flatten(self.net(x), 1)


def build_models(spec):
    arch = spec["arch"]
    if arch == "nnabla-cifar":
        g = CifarGenerator(spec["latent"], spec["maps"], spec["channels"], spec["image_size"])
        d = CifarCritic(spec["maps"], spec["channels"], spec["image_size"])
        shape = (spec["channels"], spec["image_size"], spec["image_size"])
    elif arch == "mlp":
        g, d = MLP(spec["latent"], spec["data_dim"], spec["maps"]), MLP(spec["data_dim"], 1, spec["maps"])
        shape = (spec["data_dim"],)
    elif arch == "dcgan":
        g = DCGANGenerator(spec["latent"], spec["maps"], spec["channels"], spec["image_size"])
        d = DCGANCritic(spec["maps"], spec["channels"], spec["image_size"])
        shape = (spec["channels"], spec["image_size"], spec["image_size"])
    else:
        raise ValueError(f"no plain torch loop for architecture {arch!r}")
    return g, d, shape


class Step:
    """One training job's steps, the way a plain PyTorch script writes them."""

    def __init__(self, spec):
        torch.manual_seed(spec.get("seed", 0))
        ctx = spec.get("context", "cpu")
        self.device = torch.device("cpu") if ctx == "cpu" else torch.device("cuda", spec.get("device_id", 0))
        if ctx == "cudnn":
            torch.backends.cudnn.benchmark = True
        self.half = spec.get("type_config", "float") == "half"
        self.n, self.latent, self.n_critic = spec["batch_size"], spec["latent"], spec["n_critic"]
        self.gp = spec.get("regularizer", "gp") == "gp"
        self.lam = 10.0
        g, d, self.shape = build_models(spec)
        self.G, self.D = g.to(self.device), d.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.scaler = torch.amp.GradScaler("cuda") if self.half else None
        if spec.get("compile"):
            self._compile(spec["compile"])
        rng = np.random.default_rng(spec.get("seed", 0))
        self.pool = [rng.uniform(-1, 1, (self.n,) + self.shape).astype(np.float32) for _ in range(POOL)]
        self.k = 0
        self.last = None

    def _compile(self, what):
        # Double backward through a compiled critic raises in aot_autograd, so with the penalty
        # only the generator can be compiled; "all" compiles the critic too (regularizer none).
        if what in ("generator", "all"):
            self.G = torch.compile(self.G)
        if what in ("critic", "all"):
            self.D = torch.compile(self.D)

    def _real(self):
        x = self.pool[self.k % POOL]
        self.k += 1
        return torch.from_numpy(x).to(self.device, non_blocking=True)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half)

    def critic_step(self):
        real = self._real()
        z = torch.randn(self.n, self.latent, device=self.device)
        with torch.no_grad(), self._autocast():
            fake = self.G(z)
        fake = fake.float()
        with self._autocast():
            loss = self.D(fake).float().mean() - self.D(real).float().mean()
            if self.gp:
                eps = torch.rand((self.n,) + (1,) * len(self.shape), device=self.device)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                out = self.D(x_hat).float().sum()
                if self.half:  # scale before the input gradient, unscale after
                    (g,) = torch.autograd.grad(self.scaler.scale(out), x_hat, create_graph=True)
                    g = g.float() / self.scaler.get_scale()
                else:
                    (g,) = torch.autograd.grad(out, x_hat, create_graph=True)
                norm = torch.sqrt(g.pow(2).flatten(1).sum(1) + 1e-12)
                loss = loss + self.lam * ((norm - 1) ** 2).mean()
        self.opt_d.zero_grad(set_to_none=True)
        if self.half:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt_d)
            self.scaler.update()
        else:
            loss.backward()
            self.opt_d.step()
        self.last = loss.detach()

    def generator_step(self):
        z = torch.randn(self.n, self.latent, device=self.device)
        self.D.requires_grad_(False)  # the usual idiom: no critic gradients in the G step
        with self._autocast():
            loss = -self.D(self.G(z)).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        if self.half:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt_g)
            self.scaler.update()
        else:
            loss.backward()
            self.opt_g.step()
        self.D.requires_grad_(True)
        self.last = loss.detach()

    def iteration(self):
        for _ in range(self.n_critic):
            self.critic_step()
        self.generator_step()

    def sync(self):
        if self.last is not None:
            float(self.last)  # waits for the device, as logging a loss does
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak_device_bytes(self):
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None


def make_step(spec) -> Step:
    return Step(spec)


def versions():
    return {"torch": torch.__version__}
