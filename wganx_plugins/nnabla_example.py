"""The NNabla WGAN-GP example's checkpoints in and out (``wganx import`` / ``wganx export``).

The example (``sony/nnabla-examples``, ``image-generation/wgan/``, formerly
``GANs/wgan-gp/``) saves ``params_N.h5`` with ``nn.save_parameters``: one HDF5 dataset per
parameter, named by its NNabla scope, with attributes ``need_grad`` and ``index`` (creation
order). Its models are wganx's ``nnabla-cifar``; only the names and the batch-norm shapes
differ:

=========================================  ======================================
the example (``models.py``)                wganx (``nnabla-cifar``)
=========================================  ======================================
``generator/affine/{W,b}``                 ``generator/project/{W,b}``
``generator/bn/{beta,gamma,mean,var}``     ``generator/project/bn/...`` (C,) not (1,C,1,1)
``generator/convblock-i/conv/{W,b}``       ``generator/convblock-i/{W,b}``
(``deconv/`` for ``--up deconv``)
``generator/convblock-i/bn/...``           ``generator/convblock-i/bn/...``
``generator/to-RGB/conv/{W,b}``            ``generator/to-RGB/{W,b}``
``discriminator/conv-i/conv/{W,b}``        ``critic/conv-i/{W,b}``
``discriminator/affine/{W,b}``             ``critic/out/{W,b}``
=========================================  ======================================

The file holds weights only, so an imported checkpoint starts with fresh optimizer state;
``params_N.h5`` was saved after iteration ``N + 1`` and imports as that iteration. HDF5 is
read with h5py: no pickle, nothing executed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from wganx import __version__, checkpoint
from wganx.config import TrainConfig
from wganx.errors import WganxError
from wganx.notices import notice

EXAMPLE_UPSAMPLERS = ("nearest", "linear", "unpooling", "deconv")
H5_NAME = re.compile(r"params_(\d+)\.h5$")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise WganxError("reading and writing the NNabla example's .h5 files needs h5py: pip install h5py") from None
    return h5py


def example_name(name: str, up: str) -> str:
    """The example's scope name of a wganx ``nnabla-cifar`` parameter."""
    net, rest = name.split("/", 1)
    if net == "critic":
        rest = re.sub(r"^out/", "affine/", rest)
        return "discriminator/" + re.sub(r"^(conv-\d+)/", r"\1/conv/", rest)
    rest = re.sub(r"^project/bn/", "bn/", rest)
    rest = re.sub(r"^project/", "affine/", rest)
    rest = re.sub(r"^(convblock-\d+)/(W|b)$", rf"\1/{'deconv' if up == 'deconv' else 'conv'}/\2", rest)
    rest = re.sub(r"^to-RGB/(W|b)$", r"to-RGB/conv/\1", rest)
    return "generator/" + rest


def _is_running_stat(name: str) -> bool:
    return name.endswith("/bn/mean") or name.endswith("/bn/var")


def _config(maps: int, up: str, latent: int) -> TrainConfig:
    if up not in EXAMPLE_UPSAMPLERS:
        raise WganxError(f"the NNabla example has no upsampler {up!r}; choose one of: {', '.join(EXAMPLE_UPSAMPLERS)}")
    return TrainConfig(arch="nnabla-cifar", dataset="cifar10", image_size=32, maps=maps, up=up, latent=latent,
                       batch_size=64, lrd=1e-4, lrg=1e-4, beta1=0.5, beta2=0.9)


def _program(config: TrainConfig):
    from wganx.build import program_from_config

    return program_from_config(config, (3, 32, 32), "image", 0)


def import_h5(path, *, maps: int, up: str, latent: int) -> Tuple[Dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a wganx checkpoint made from the example's ``params_N.h5``,
    whose model was trained with ``--maps``, ``--up`` and ``--latent``."""
    from wganx.algorithm import state_shapes
    from wganx.build import initial_arrays

    h5py, path = _h5py(), Path(path)
    config = _config(maps, up, latent)
    program = _program(config)
    try:
        with h5py.File(path, "r") as f:
            stored = {}
            f.visititems(lambda name, obj: stored.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                         else None)
    except OSError as exc:
        raise WganxError(f"{path} is not a readable HDF5 file ({exc})") from None
    arrays = initial_arrays(program, np.random.default_rng(0))  # fresh optimizer state
    missing, misfit = [], []
    for name, shape in state_shapes(program).items():
        source = example_name(name, up)
        if source not in stored:
            missing.append(source)
            continue
        value = np.asarray(stored[source], np.float32)
        if value.size != int(np.prod(shape)) or (value.shape != tuple(shape) and "/bn/" not in name):
            needs = (1, shape[0], 1, 1) if "/bn/" in name else tuple(shape)
            misfit.append(f"{source} {value.shape}, needs {needs}")
            continue
        arrays[name] = value.reshape(shape)
    if missing or misfit:
        problems = ([f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"] if missing else []) + \
                   ([f"shapes differ: {'; '.join(misfit[:3])}{' ...' if len(misfit) > 3 else ''}"] if misfit else [])
        raise WganxError(f"{path} is not the NNabla example's model for --maps {maps} --up {up} --latent {latent}: "
                         f"{'; '.join(problems)}")
    match = H5_NAME.search(path.name)
    iteration = int(match.group(1)) + 1 if match else 0
    meta = {"iteration": iteration, "batches_read": iteration * config.n_critic,
            "rng_state": np.random.default_rng(config.seed).bit_generator.state, "config": config.as_dict(),
            "sample_shape": [3, 32, 32], "data_kind": "image", "num_classes": 0, "backend": "nnabla",
            "wganx": __version__, "imported_from": str(path)}
    return arrays, meta


def export_h5(arrays: Dict[str, np.ndarray], meta: dict, path) -> Path:
    """Write a wganx ``nnabla-cifar`` checkpoint as the example's ``params_N.h5`` (what
    ``nn.load_parameters`` and the example's ``generate.py`` read), atomically."""
    from wganx.algorithm import NETWORKS

    h5py = _h5py()
    cfg = meta["config"]
    if cfg.get("arch") != "nnabla-cifar" or cfg.get("conditional") or cfg.get("image_size") != 32 \
            or list(meta.get("sample_shape", [])) != [3, 32, 32]:
        raise WganxError("only an unconditional nnabla-cifar checkpoint of 3x32x32 images is the NNabla example's "
                         f"model; this one is {cfg.get('arch')!r} at {meta.get('sample_shape')}")
    config = _config(int(cfg["maps"]), cfg["up"], int(cfg["latent"]))
    program = _program(config)
    # generator, then critic, each in the order its layers are made: the example's ``index`` order
    names = [f"{net}/{name}" for net in NETWORKS for name in program.network(net).params]

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for index, name in enumerate(names):
                value = np.asarray(arrays[name], np.float32)
                if "/bn/" in name:
                    value = value.reshape(1, -1, 1, 1)
                target = example_name(name, config.up)
                f[target] = value
                f[target].attrs["need_grad"] = not _is_running_stat(name)
                f[target].attrs["index"] = index

    checkpoint.atomic_write(Path(path), write)
    return Path(path)


def import_command(source, output, *, maps: int, up: str, latent: int, overwrite: bool = False) -> Path:
    """``wganx import --format nnabla-h5``: the example's file as a wganx checkpoint."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise WganxError(f"--output {output} must end in .safetensors")
    _refuse_existing(output, overwrite)
    arrays, meta = import_h5(source, maps=maps, up=up, latent=latent)
    checkpoint.save(output, arrays, meta)
    notice(f"imported {source} (iteration {meta['iteration']}, fresh optimizer state)")
    return output


def export_command(source, output, *, overwrite: bool = False) -> Path:
    """``wganx export --format nnabla-h5``: a wganx checkpoint as the example's file."""
    output = Path(output)
    if output.suffix != ".h5":
        raise WganxError(f"--output {output} must end in .h5 (nn.load_parameters reads the format by its suffix)")
    _refuse_existing(output, overwrite)
    arrays, meta = checkpoint.load(source)
    return export_h5(arrays, meta, output)


def _refuse_existing(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise WganxError(f"{output} exists; give --overwrite to replace it")
