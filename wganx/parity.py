"""The cross-backend parity matrix: same weights, same inputs, same numbers.

For every pair (reference backend, other backend) and every case — each architecture at a
small shape, each upsampler, each regularizer, each loss, a class-conditional model — it
compares, in float32:

* the critic's and the generator's objective scalars (loss, Wasserstein estimate):
  ``|a - b| <= 1e-4 * |b| + 1e-6``; the penalty relative to its own size alone,
  ``|a - b| <= 1e-4 * |b|``: it is a mean of non-negative terms, so its round-off is a
  fraction of itself however small it is, and a penalty of 1e-11 (WGAN-div on small
  images) is held to 1e-15 rather than to the loss's 1e-6;
* the gradient of each objective by every parameter of the stepped network, per tensor:
  ``max|a - b| <= 1e-4 * max(max|b|, 1e-2 * G) + 1e-7`` where ``G`` is the network's largest
  gradient entry (float32 round-off scales with what flows through the network, so a tensor
  whose gradient is nearly zero is compared at a hundredth of the network's scale);
* except a gradient that is zero in exact arithmetic (a conv bias followed by batch norm in
  training mode, as in the NNabla example's generator): what float32 gives there is the
  round-off of a cancelling sum, which no two summation orders share (measured: torch with
  1 or 2 threads against NNabla, 5e-8 and 1.8e-7 at a network scale of 0.086). Where a
  backend that computes in float64 finds it below ``1e-9 G``, every backend, the reference
  included, must give zero to ``1e-4 * G + 1e-7``, the network's scale: a backend whose
  batch norm failed to remove the shift gives a gradient of order ``G`` and fails it;
* the whole state after a short Adam trajectory (3 critic steps, 1 generator step,
  2 critic steps, 1 generator step, the same batches and noise from the core), the
  generator's moving average included where the case keeps one:
  ``max|a - b| <= 1e-4 * max|b| + 1e-5`` per tensor; 1e-5 is a tenth of one Adam step at
  the default learning rate, so a single diverging update fails it. The trajectory runs
  Adam with ``eps = 1e-4`` instead of 1e-8: a parameter whose gradient is zero in exact
  arithmetic (a conv bias followed by batch norm, as in the NNabla example's generator) receives
  float32 round-off of random sign, which Adam with a tiny epsilon turns into full-size
  steps of random direction on each backend (measured: torch float32 against torch float64
  fails the same way); a larger epsilon leaves real gradients' steps nearly unchanged.
  Optimizer slots (Adam's ``m`` and ``v``) are gradient statistics of the last steps and
  are held to ``1e-3 * max|b| + 1e-5``: the gradients themselves are held to 1e-4 above,
  and the weights the slots produced to the bound of the state.

Every regularizer and every loss runs on an image architecture (the CLI's default, the NNabla
example's model) and on an architecture of 2-D points (``mlp``); the cases come from the
records the plugins register, so the core names no plugin. Every augmentation runs on the
image architecture with every option it offers (an adaptive one at ``p = 0.5``, so that some
transforms of a batch are on and some off), through the critic's loss, its penalty and the
generator's loss.

And against mathematics, on every backend alone: a linear critic ``D(x) = w.x + b`` has
input gradient ``w`` everywhere, so each regularizer that states its ``linear_critic`` value
(gp ``(|w| - 1)^2``, gp0 ``|w|^2``, r1 ``|w|^2 / 2``, ...) is checked against it, to
``1e-4`` relative.

Plugins from third-party distributions are covered automatically: the matrix is built from
whatever the registry holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .algorithm import Program, step_inputs
from .build import initial_arrays, load_backend, make_program
from .config import default_of
from .errors import WganxError
from .optim import OptimizerConfig
from .plugins import Registry, registry as default_registry
from .records import ArchConfig, Architecture, Network, ParamSpec

SCALAR_RTOL, SCALAR_ATOL = 1e-4, 1e-6
PENALTY_ATOL = 0.0  # the penalty is compared relative to itself (see the module docstring)
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-7
STATE_RTOL, STATE_ATOL = 1e-4, 1e-5
SLOT_RTOL = 1e-3
EXACT_ZERO_RTOL = 1e-9  # a float64 gradient below this share of its network's scale is zero
TRAJECTORY = ("critic", "critic", "critic", "generator", "critic", "critic", "generator")
TRAJECTORY_ADAM_EPS = 1e-4
LR_DECAY_ITERS = 4  # the trajectory's two generator iterations run at 1 and 3/4 of the rate
BATCH = 4
AUGMENT_P = 0.5  # an adaptive augmentation's probability in the matrix: some transforms on, some off


@dataclass(frozen=True)
class Case:
    """One model configuration of the matrix."""

    arch: str
    regularizer: str = "gp"
    loss: str = "wasserstein"
    up: Optional[str] = None
    data_kind: str = "image"
    num_classes: int = 0
    critic_norm: str = "none"
    ema_decay: float = 0.0  # the generator's moving average, from its first average (ema_start 1)
    lr_decay: str = "constant"  # "linear": to 0 over LR_DECAY_ITERS, so the trajectory sees it move
    augment: str = "none"  # --augment's value; an adaptive one runs at AUGMENT_P, so its gates vary

    @property
    def label(self) -> str:
        parts = [self.arch + (f"[{self.up}]" if self.up else ""), self.regularizer, self.loss]
        if self.data_kind != "image":
            parts.append(self.data_kind)
        if self.num_classes:
            parts.append(f"{self.num_classes} classes")
        if self.critic_norm != "none":
            parts.append(f"{self.critic_norm} norm")
        if self.ema_decay:
            parts.append(f"ema {self.ema_decay}")
        if self.lr_decay != "constant":
            parts.append(f"{self.lr_decay} lr decay")
        if self.augment != "none":
            parts.append(f"augment {self.augment}")
        return "/".join(parts)

    def arch_config(self, registry: Registry) -> ArchConfig:
        up = registry.get("upsampler", self.up) if self.up else None
        if self.data_kind == "points":
            return ArchConfig(latent=4, maps=16, data_kind="points", data_dim=2,
                              num_classes=self.num_classes)
        return ArchConfig(image_size=32, channels=3, latent=8, maps=4, up=up,
                          num_classes=self.num_classes, critic_norm=self.critic_norm)


@dataclass
class Check:
    """One comparison: what, between which backends, the error and its bound."""

    case: str
    quantity: str
    backend: str
    reference: str
    error: float  # of the worst tensor (``where``): the one with the largest error / bound
    bound: float
    where: str = ""  # the worst tensor, for a report a person can act on
    largest: Optional[float] = None  # the largest error of all tensors compared (default: error)

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.bound)

    @property
    def ratio(self) -> float:
        """error / bound of the worst tensor: at most 1 when the check passes."""
        return _ratio(self.error, self.bound)

    @property
    def largest_error(self) -> float:
        return self.error if self.largest is None else self.largest

    def as_dict(self) -> dict:
        return {"case": self.case, "quantity": self.quantity, "backend": self.backend,
                "reference": self.reference, "error": float(self.error),
                "bound": float(self.bound), "ratio": float(self.ratio), "largest_error": float(self.largest_error),
                "where": self.where, "passed": self.passed}


@dataclass
class Report:
    backends: List[str]
    checks: List[Check] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict:
        return {"passed": self.passed, "backends": self.backends,
                "skipped": self.skipped, "cases": [c.as_dict() for c in self.checks]}


def default_cases(registry: Registry) -> List[Case]:
    """Each architecture (with each of its critic norms), upsampler, regularizer and loss at
    least once, at small shapes, from what the registry holds. Regularizers and losses run on
    the CLI's default architecture and upsampler (the NNabla example's model) and on the first
    architecture of 2-D points."""
    cases: List[Case] = []
    archs = {name: registry.get("architecture", name) for name in registry.names("architecture")}
    ups = registry.names("upsampler")
    default_up = default_of("up") if default_of("up") in ups else (ups[0] if ups else None)

    def up_for(arch: str):
        return default_up if archs[arch].uses_upsampler else None

    for name, spec in archs.items():
        for kind in spec.data_kinds:
            cases.append(Case(name, up=up_for(name), data_kind=kind))
        for norm in spec.critic_norms[1:]:
            cases.append(Case(name, up=up_for(name), critic_norm=norm))
    up_archs = [n for n, a in archs.items() if a.uses_upsampler]
    for up in ups:
        for arch in up_archs[:1]:
            cases.append(Case(arch, up=up))
    base = default_of("arch") if default_of("arch") in archs else next(iter(archs))
    points = next((n for n, a in archs.items() if "points" in a.data_kinds), None)
    for reg_name in registry.names("regularizer"):
        cases.append(Case(base, regularizer=reg_name, up=up_for(base)))
        if points:
            cases.append(Case(points, regularizer=reg_name, data_kind="points"))
    for loss in registry.names("loss"):
        cases.append(Case(base, loss=loss, up=up_for(base), regularizer="none"))
        if points:
            cases.append(Case(points, loss=loss, regularizer="none", data_kind="points"))
    for name in registry.names("augmentation"):  # every transform it offers, on images
        spec = registry.get("augmentation", name)
        cases.append(Case(base, up=up_for(base), augment=name + (":" + ",".join(spec.options) if spec.options else "")))
    cases.append(Case(base, up=up_for(base), num_classes=3))
    cases.append(Case(base, up=up_for(base), ema_decay=0.9))
    cases.append(Case(points, regularizer=default_of("regularizer"), data_kind="points", lr_decay="linear")
                 if points else Case(base, up=up_for(base), lr_decay="linear"))
    unique, seen = [], set()
    for c in cases:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def select_cases(texts: Sequence[str], registry: Optional[Registry] = None) -> List[Case]:
    """The default cases whose label contains any of ``texts`` (``wganx parity --case``);
    a text that selects none is an error listing the labels."""
    every = [OPS_CASE] + default_cases(registry or default_registry())
    for text in texts:
        if not any(text in c.label for c in every):
            raise WganxError(f"--case {text!r} matches no parity case; the cases: {', '.join(c.label for c in every)}")
    return [c for c in every if any(text in c.label for text in texts)]


def _relative(a, b, atol: float, rtol: float, floor: float = 0.0) -> tuple:
    """``(max|a - b|, allowed)`` so the check reads error <= bound; ``b`` is the reference and
    its scale is taken as at least ``floor``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf"), 0.0
    scale = max(float(np.max(np.abs(b), initial=0.0)), floor)
    return float(np.max(np.abs(a - b), initial=0.0)), atol + rtol * scale


def _ratio(error: float, bound: float) -> float:
    if not np.isfinite(error):
        return float("inf")
    return error / bound if bound > 0 else (float("inf") if error > 0 else 0.0)


def _worst(bounds_for, other: dict, reference: dict) -> tuple:
    """``(error, bound, name, largest)``: the tensor with the largest error / bound, and the
    largest error of any tensor (NaN counts as infinite)."""
    rows = []
    for name in reference:
        value = other.get(name, np.full(np.shape(reference[name]), np.nan))
        atol, rtol, floor = bounds_for(name)
        rows.append((*_relative(value, reference[name], atol, rtol, floor), name))
    error, bound, name = max(rows, key=lambda r: (_ratio(r[0], r[1]), r[0]))
    largest = max(float(np.nan_to_num(r[0], nan=np.inf)) for r in rows)
    return error, bound, name, largest


def _largest(arrays: dict) -> float:
    return max((float(np.max(np.abs(v), initial=0.0)) for v in arrays.values()), default=0.0)


def _exact_zeros(grads64: dict) -> set:
    """The parameters whose float64 gradient is zero at the network's scale."""
    scale = _largest(grads64)
    return {k for k, v in grads64.items() if float(np.max(np.abs(v), initial=0.0)) <= EXACT_ZERO_RTOL * scale}


def program_for(case: Case, registry: Registry):
    """The program a case compiles: small shapes, Adam with the trajectory's epsilon."""
    adam = OptimizerConfig("adam", eps=TRAJECTORY_ADAM_EPS)
    return make_program(arch=case.arch, regularizer=case.regularizer, loss=case.loss,
                        arch_config=case.arch_config(registry), batch_size=BATCH, critic_optimizer=adam,
                        generator_optimizer=adam, ema_decay=case.ema_decay, ema_start=1 if case.ema_decay else 0,
                        lr_decay=case.lr_decay, decay_iters=LR_DECAY_ITERS, augment=case.augment,
                        augment_p=AUGMENT_P, reg=registry)


def _data(program, rng):
    shape = (BATCH,) + tuple(program.arch.sample_shape)
    real = rng.uniform(-1, 1, shape).astype(np.float32)
    labels = rng.integers(0, max(program.num_classes, 1), BATCH).astype(np.int64)
    return real, labels


def run_case(case: Case, sessions: Dict[str, object], program, exact=None) -> List[Check]:
    """Compare every backend's session with the first one on ``case``; ``exact``, a float64
    session of the same program (optional), tells which gradients are zero in exact
    arithmetic (see the module docstring)."""
    names = list(sessions)
    ref = names[0]
    checks: List[Check] = []
    init = initial_arrays(program, np.random.default_rng(1234))
    for s in list(sessions.values()) + ([exact] if exact is not None else []):
        s.set_state(init)
    # 1. objectives and gradients, no update
    rng = np.random.default_rng(99)
    real, labels = _data(program, rng)
    inputs = {"critic": step_inputs(program, "critic", rng, real, labels),
              "generator": step_inputs(program, "generator", rng)}
    results = {n: {step: s.gradients(step, inputs[step]) for step in inputs} for n, s in sessions.items()}
    for step in inputs:
        ref_grads = results[ref][step][1]
        zero = _exact_zeros(exact.gradients(step, inputs[step])[1]) if exact is not None else set()
        if zero:
            bound = GRAD_ATOL + GRAD_RTOL * _largest(ref_grads)
            for name in names:
                error, where = max((float(np.max(np.abs(results[name][step][1][k]))), k) for k in sorted(zero))
                checks.append(Check(case.label, f"{step} gradients zero in exact arithmetic ({len(zero)} params)",
                                    name, "float64", error, bound, where))
        for name in names[1:]:
            ref_scalars = results[ref][step][0]
            scalars, grads = results[name][step]
            for key, value in ref_scalars.items():
                err = abs(scalars.get(key, np.nan) - value)
                atol = PENALTY_ATOL if key == "penalty" else SCALAR_ATOL
                checks.append(Check(case.label, f"{step} {key}", name, ref, err, atol + SCALAR_RTOL * abs(value)))
            floor = 1e-2 * _largest(ref_grads)
            compared = {k: v for k, v in ref_grads.items() if k not in zero}
            error, bound, where, largest = _worst(lambda k: (GRAD_ATOL, GRAD_RTOL, floor), grads, compared)
            checks.append(Check(case.label, f"{step} gradients ({len(compared)} params)",
                                name, ref, error, bound, where, largest))
    # 2. a short trajectory
    states = {}
    for n, s in sessions.items():
        s.set_state(init)
        rng = np.random.default_rng(7)
        for step in TRAJECTORY:
            real, labels = _data(program, rng)
            s.critic_step(step_inputs(program, "critic", rng, real, labels)) if step == "critic" \
                else s.generator_step(step_inputs(program, "generator", rng))
        states[n] = s.get_state()
    for name in names[1:]:
        error, limit, where, largest = _worst(
            lambda k: (STATE_ATOL, SLOT_RTOL if k.startswith("optimizer/") else STATE_RTOL, 0.0),
            states[name], states[ref])
        checks.append(Check(case.label, f"state after {len(TRAJECTORY)} Adam steps", name, ref,
                            error, limit, where, largest))
    return checks


# -- against mathematics -----------------------------------------------------------------------
def linear_architecture(dim: int = 6) -> Architecture:
    """``D(x) = w.x + b`` and a linear generator: the penalty is exactly ``(|w| - 1)^2``."""
    def gen(ops, p, z, *, training, labels=None):
        return ops.affine(z, p["W"], p["b"])

    def critic(ops, p, x, *, training, labels=None):
        return ops.affine(x, p["W"], p["b"])

    g = {"W": ParamSpec((dim, dim), fan_in=dim, fan_out=dim), "b": ParamSpec((dim,), "zeros")}
    d = {"W": ParamSpec((dim, 1), fan_in=dim, fan_out=1), "b": ParamSpec((1,), "normal", std=1.0)}
    return Architecture(Network(g, gen), Network(d, critic), (dim,))


# -- the ops contract ---------------------------------------------------------------------------
OPS_SAMPLE = (3, 8, 8)
OPS_LATENT = 8


def ops_architecture() -> Architecture:
    """The tensor ops that the standard layers do not exercise, in one small model, so every
    backend is held to each of them and a penalty differentiates through each twice.

    Generator: affine, ``depth_to_space`` (sub-pixel convolution), reflect ``pad``, conv.
    Critic: reflect ``pad``, conv, ``depth_to_space``, zero ``pad``, strided conv, a
    self-attention block (``reshape``, ``transpose``, ``matmul``, ``softmax``; Zhang et al.
    2019), a channel ``slice``, a 4-D ``transpose`` and a ``flip``, affine.
    """
    c, h, w = OPS_SAMPLE

    def gen(ops, p, z, *, training, labels=None):
        x = ops.reshape(ops.affine(z, p["fc/W"], p["fc/b"]), (ops.shape(z)[0], 4 * c, h // 2, w // 2))
        x = ops.pad(ops.depth_to_space(x, 2), ((1, 1), (1, 1)), "reflect")
        return ops.tanh(ops.conv2d(x, p["conv/W"], p["conv/b"]))

    def attention(ops, x):
        n, maps, hh, ww = ops.shape(x)
        f = ops.reshape(x, (n, maps, hh * ww))
        weights = ops.softmax(ops.matmul(ops.transpose(f, (0, 2, 1)), f) * 0.5, axis=2)
        return x + ops.reshape(ops.matmul(f, ops.transpose(weights, (0, 2, 1))), (n, maps, hh, ww))

    def critic(ops, p, x, *, training, labels=None):
        y = ops.leaky_relu(ops.conv2d(ops.pad(x, ((1, 1), (1, 2)), "reflect"), p["c1/W"], p["c1/b"]), 0.2)
        y = ops.pad(ops.depth_to_space(y, 2), ((0, 1), (1, 1)))
        y = attention(ops, ops.leaky_relu(ops.conv2d(y, p["c2/W"], p["c2/b"], stride=2), 0.2))
        y = ops.flip(ops.transpose(ops.slice(y, 1, 1, 3), (0, 1, 3, 2)), 2)
        return ops.affine(y, p["out/W"], p["out/b"])

    from .params import affine, conv
    g = {**affine("fc", OPS_LATENT, 4 * c * h * w // 4), **conv("conv", c, c, 3)}
    d = {**conv("c1", c, 8, 3), **conv("c2", 2, 4, 3), **affine("out", 2 * 8 * 9, 1)}
    return Architecture(Network(g, gen), Network(d, critic), OPS_SAMPLE)


OPS_CASE = Case("ops contract")


def program_around(arch: Architecture, latent: int, registry: Registry, regularizer: Optional[str] = None) -> Program:
    """A program of the matrix's shape (batch, the trajectory's Adam, the default loss and
    ``regularizer``) around a model the core builds itself, not a plugin's."""
    from .config import default_of

    adam = OptimizerConfig("adam", eps=TRAJECTORY_ADAM_EPS)
    spec = registry.get("regularizer", regularizer or default_of("regularizer"))
    return Program(arch=arch, loss=registry.get("loss", default_of("loss")), regularizer=spec,
                   penalty_weight=spec.weight, critic_optimizer=adam, generator_optimizer=adam,
                   batch_size=BATCH, latent=latent)


def ops_program(registry: Registry) -> Program:
    """The ``ops contract`` case's program: :func:`ops_architecture` under the default penalty."""
    return program_around(ops_architecture(), OPS_LATENT, registry)


def linear_penalty_checks(backend_name: str, session_factory, registry: Registry) -> List[Check]:
    """Each regularizer with a ``linear_critic`` value, on a linear critic of three sizes of
    ``|w|`` (below, near and above 1, so one-sided penalties are seen on both sides of their
    threshold)."""
    arch = linear_architecture()
    checks = []
    for name in registry.names("regularizer"):
        spec = registry.get("regularizer", name)
        if spec.linear_critic is None:
            continue
        program = program_around(arch, arch.sample_shape[0], registry, name)  # a linear G of square W
        session = session_factory(program)
        for seed, scale in ((0, 1.0), (1, 0.2), (2, 3.0)):
            rng = np.random.default_rng(seed)
            arrays = initial_arrays(program, rng)
            arrays["critic/W"] = arrays["critic/W"] * np.float32(scale)
            session.set_state(arrays)
            real = rng.standard_normal((BATCH, 6)).astype(np.float32)
            scalars, _ = session.gradients("critic", step_inputs(program, "critic", rng, real))
            norm = float(np.linalg.norm(arrays["critic/W"].astype(np.float64)))
            exact = float(spec.linear_critic(norm))
            # 1e-7: float32 round-off of |w| itself, which a penalty near its threshold (|w| ~ 1) squares
            checks.append(Check(f"linear critic |w|={norm:.3f}", f"{name} = exact", backend_name, "mathematics",
                                abs(scalars["penalty"] - exact), 1e-7 + SCALAR_RTOL * exact))
    return checks


def run(backends: Sequence[str] = (), cases: Optional[Sequence[Case]] = None,
        registry: Optional[Registry] = None, progress=None) -> Report:
    """Run the matrix on ``backends`` (default: every available one)."""
    reg = registry or default_registry()
    if not backends:
        backends = [e.name for e in reg.entries("backend") if e.availability()[0]]
    if not backends:
        raise WganxError("no backend is available; install one: pip install wganx[torch]")
    loaded = {name: load_backend(name, reg=reg) for name in backends}
    report = Report(list(backends))
    for name, backend in loaded.items():
        report.checks += linear_penalty_checks(name, backend.compile, reg)
    for case in ([OPS_CASE] + default_cases(reg) if cases is None else cases):
        try:
            program = ops_program(reg) if case == OPS_CASE else program_for(case, reg)
        except WganxError as exc:  # e.g. a plugin architecture that refuses the small shape
            report.skipped[case.label] = str(exc)
            continue
        if progress:
            progress(case.label)
        report.checks += check_case(case, loaded, reg, program)
    return report


def check_case(case: Case, backends: Dict[str, object], registry: Registry, program=None) -> List[Check]:
    """One case of the matrix on loaded ``backends`` (name -> Backend): the program of
    :func:`program_for`, compiled on each and compared. ``wganx parity`` and
    :func:`wganx.testing.run_parity` both come here, so they cannot disagree."""
    program = program if program is not None else program_for(case, registry)
    sessions = {name: backend.compile(program) for name, backend in backends.items()}
    exact = _float64_backend(backends, registry)
    return run_case(case, sessions, program, exact.compile(program) if exact is not None else None)


_FLOAT64: Dict[tuple, object] = {}


def _float64_backend(backends: Dict[str, object], registry: Registry):
    """A float64 instance of the first of ``backends`` whose record offers ``double`` (kept
    for the next case), or None."""
    for name, backend in backends.items():
        if "double" in registry.get("backend", name).capabilities:
            key = (name, backend.context, backend.device_id)
            if key not in _FLOAT64:
                _FLOAT64[key] = load_backend(name, backend.context, backend.device_id, "double", registry)
            return _FLOAT64[key]
    return None


def format_table(report: Report) -> str:
    rows = [("case", "quantity", "backend vs reference", "largest error", "worst error/bound", "")]
    for c in report.checks:
        rows.append((c.case, c.quantity, f"{c.backend} vs {c.reference}", f"{c.largest_error:.2e}",
                     f"{c.ratio:.3f}", "ok" if c.passed else f"MISMATCH in {c.where}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not c.passed for c in report.checks)
    lines.append("")
    lines.append(f"backends: {', '.join(report.backends)}; {len(report.checks)} checks, {failed} mismatches"
                 + ("" if len(report.backends) > 1 else " (one backend: only checks against mathematics)"))
    for label, why in report.skipped.items():
        lines.append(f"skipped {label}: {why}")
    return "\n".join(lines)
