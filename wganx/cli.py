"""The ``wganx`` command: train, generate, plugins, parity (and ``python -m wganx``)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import MISSING, fields
from typing import List, Optional

from . import __version__
from .config import TrainConfig, load_toml
from .errors import WganxError


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults stay out of the namespace so we can tell
    what the user said (flags override ``--config``, which overrides the defaults)."""
    for f in fields(TrainConfig):
        meta = f.metadata
        name = "--" + f.name.rstrip("_").replace("_", "-")
        flags = [*meta.get("flags", ())]
        if name not in flags:
            flags.append(name)
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = f"{meta.get('help', '')} (default: {default})"
        kw = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if f.type in ("bool", bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
            continue
        if "nargs" in meta:
            kw.update(nargs=meta["nargs"], const=meta["const"])
        base = f.type.replace("Optional[", "").rstrip("]") if isinstance(f.type, str) else f.type
        kw["type"] = {"int": int, "float": float, "str": str}.get(base, str)
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        parser.add_argument(*flags, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wganx", description="Train Wasserstein GANs with gradient penalty on PyTorch, TensorFlow or NNabla.")
    parser.add_argument("--version", action="version", version=f"wganx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train a GAN", description="Train a GAN; flags as in seed 000's train.py.")
    train.add_argument("--config", help="TOML file whose keys are the flag names (flags override it)")
    _add_config_flags(train)

    gen = sub.add_parser("generate", help="sample from a checkpoint",
                         description="Write an image tile and/or samples.npz from a checkpoint, on any backend.")
    gen.add_argument("--model-load-path", required=True, help="a params_*.safetensors checkpoint")
    gen.add_argument("--backend", help="backend to generate with (default: the one that trained)")
    gen.add_argument("-c", "--context", default="cpu", choices=("cpu", "cuda", "cudnn"))
    gen.add_argument("-d", "--device-id", type=int, default=0)
    gen.add_argument("-b", "--batch-size", type=int, default=64)
    gen.add_argument("--num-images", type=int, default=64)
    gen.add_argument("--monitor-path", required=True, help="output folder")
    gen.add_argument("--format", choices=("png", "npz", "both"), default="both")
    gen.add_argument("--seed", type=int, default=0)

    formats = ("nnabla-h5",)
    imp = sub.add_parser("import", help="turn another tool's checkpoint into a wganx checkpoint",
                         description="Import the NNabla WGAN-GP example's params_N.h5 (nn.save_parameters) as a wganx "
                                     "nnabla-cifar checkpoint; give the --maps, --up and --latent it was trained with.")
    imp.add_argument("source", metavar="FILE.h5")
    imp.add_argument("--format", choices=formats, default="nnabla-h5")
    imp.add_argument("--maps", type=int, default=128, help="the example's --maps (default: 128)")
    imp.add_argument("--up", default="nearest", help="the example's --up: nearest, linear, unpooling or deconv")
    imp.add_argument("--latent", type=int, default=128, help="the example's --latent (default: 128)")
    imp.add_argument("-o", "--output", required=True, metavar="CKPT.safetensors")
    imp.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    exp = sub.add_parser("export", help="write a wganx checkpoint in another tool's format",
                         description="Write an nnabla-cifar checkpoint as the NNabla example's params_N.h5, which its "
                                     "generate.py and nn.load_parameters read.")
    exp.add_argument("source", metavar="CKPT.safetensors")
    exp.add_argument("--format", choices=formats, default="nnabla-h5")
    exp.add_argument("-o", "--output", required=True, metavar="FILE.h5")
    exp.add_argument("--overwrite", action="store_true", help="replace --output if it exists")

    plugins = sub.add_parser("plugins", help="list installed plugins",
                             description="Every plugin of the wganx entry-point group, built-ins included.")
    plugins.add_argument("--json", action="store_true", help="print a JSON list")

    from . import bench, evaluate  # neither imports a framework

    evaluate.add_arguments(sub.add_parser(
        "evaluate", help="measure sample quality",
        description="FID/KID/IS/precision-recall/class coverage of images, or modes/energy of 2-D samples, "
                    "from a checkpoint, a samples.npz or a folder of images."))
    bench.add_arguments(sub.add_parser(
        "bench", help="measure training speed against plain hand-written loops",
        description="Generator iterations per second of wganx and of plain loops in each framework."))

    parity = sub.add_parser("parity", help="run the cross-backend parity matrix",
                            description="Compare losses, penalties, gradients and short trajectories across "
                                        "the installed backends; exits 1 on any mismatch.")
    parity.add_argument("--backend", action="append", dest="backends", default=[],
                        help="backend to include (repeatable; default: all available)")
    parity.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _cmd_train(args) -> int:
    from .training import train

    given = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    values = load_toml(args.config) if args.config else {}
    values.update(given)
    config = TrainConfig(**values).apply_recipe(set(values))
    result = train(config)
    last = result["losses"]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "iteration")
    print(f"{result['status']} at iteration {result['iteration']}: {summary}")
    print(f"results in {config.monitor_path} (checkpoint {result['checkpoint']})")
    return 128 + result["signal"] if result["status"] == "interrupted" else 0


def _cmd_generate(args) -> int:
    from .generate import generate

    fmt = ("png", "npz") if args.format == "both" else (args.format,)
    result = generate(args.model_load_path, args.monitor_path, backend=args.backend, context=args.context,
                      device_id=args.device_id, batch_size=args.batch_size, num_images=args.num_images,
                      fmt=fmt, seed=args.seed)
    for kind, path in result["written"].items():
        print(f"wrote {path}")
    return 0


def _cmd_plugins(args) -> int:
    from .plugins import registry

    rows = []
    reg = registry()
    for name, why in reg.missing_standard_backends().items():
        rows.append({"kind": "backend", "name": name, "package": f"wganx-{name}", "version": "",
                     "available": False, "reason": why, "description": ""})
    for entry in reg.entries():
        ok, why = entry.availability()
        rows.append({"kind": entry.kind, "name": entry.name, "package": entry.package,
                     "version": entry.version, "available": ok, "reason": why,
                     "description": getattr(entry.record, "description", "")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("kind", "name", "package", "version", "status")
    table = [header] + [(r["kind"], r["name"], r["package"], r["version"],
                         "available" if r["available"] else f"unavailable: {r['reason']}") for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
    return 0


def _cmd_parity(args) -> int:
    from . import parity

    def progress(label):
        if not args.json:
            print(f"  {label}", file=sys.stderr)

    report = parity.run(args.backends, progress=progress)
    print(json.dumps(report.as_dict(), indent=2) if args.json else parity.format_table(report))
    return 0 if report.passed else 1


def _cmd_evaluate(args) -> int:
    from .evaluate import main as evaluate_main

    return evaluate_main(args)


def _cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _cmd_import(args) -> int:
    from .nnabla_example import import_command

    written = import_command(args.source, args.output, maps=args.maps, up=args.up, latent=args.latent,
                             overwrite=args.overwrite)
    print(f"wrote {written}")
    return 0


def _cmd_export(args) -> int:
    from .nnabla_example import export_command

    print(f"wrote {export_command(args.source, args.output, overwrite=args.overwrite)}")
    return 0


COMMANDS = {"train": _cmd_train, "import": _cmd_import, "export": _cmd_export, "generate": _cmd_generate,
            "plugins": _cmd_plugins, "parity": _cmd_parity,
            "evaluate": _cmd_evaluate, "bench": _cmd_bench}


def _terminate(signum, frame):
    from .training import Interrupted

    raise Interrupted(signum)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; an input or environment error is one line on stderr and exit 2, and
    Ctrl-C or SIGTERM outside the training loop (which handles them itself) exits 130 or 143."""
    from .training import Interrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return COMMANDS[args.command](args)
    except WganxError as exc:
        print(f"wganx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment: a folder in the way, a full or read-only disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"wganx {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"wganx {args.command}: stopped by {signal.Signals(signum).name}; files already written are intact",
              file=sys.stderr)
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
