"""The ``wganx`` command (and ``python -m wganx``), on typer and rich.

``wganx train``'s options are generated from :class:`wganx.config.TrainConfig`, one per
field, grouped in the panels of :data:`wganx.config.SECTIONS`; plugin names are listed from
the registry (so a third-party architecture appears in ``--arch``'s help and completion).
Every option of ``train`` defaults to "not given", so flags can override ``--config`` and
the plugins' recommended defaults can fill what neither gave. Plugins add subcommands
through ``wganx_commands``.

Exit status: 0, 1 when ``wganx parity`` finds a mismatch, 2 for a usage or input error
(one line, no traceback), 128 + the signal when interrupted (130 Ctrl-C, 143 SIGTERM).
"""
from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, List, Optional

import typer
from typing_extensions import Annotated

from . import __version__
from .config import CONTEXTS, PLUGIN_FIELDS, SECTIONS, TrainConfig, base_type, default_of, field_choices, flag_name
from .errors import Interrupted, WganxError, check_choice
from .options import (Backend, Context, DeviceId, RawWeights, Threads, complete_choices, complete_plugin_names,
                      plugin_names, plugin_registry)

BUILT_IN = ("train", "generate", "evaluate", "plugins", "parity")

TRAIN_EXAMPLES = """[bold]Examples[/bold]

  wganx train --dataset 8gaussians -i 1500                       [dim]# the paper's toy, its recommended settings[/dim]
  wganx train --backend nnabla -c cudnn -d 0 -b 64 --up nearest  [dim]# the NNabla example's CIFAR-10 job[/dim]
  wganx train --config run.toml -i 200 --resume                  [dim]# a TOML file of the same names; flags win[/dim]
"""


# -- train: one option per TrainConfig field ----------------------------------------------------

def _train_option(f) -> inspect.Parameter:
    meta = f.metadata
    flags = list(dict.fromkeys([*meta.get("flags", ()), "--" + flag_name(f.name)]))
    kind = {"int": int, "float": float, "str": str, "bool": bool}[base_type(f.name)]
    default = default_of(f.name)
    shown = meta.get("shown_default") or ("off" if default is None or default is False
                                          else "on" if default is True else default)
    help_text = meta.get("help", "")
    choices = field_choices(f) or (plugin_names(PLUGIN_FIELDS[f.name]) if f.name in PLUGIN_FIELDS else None)
    if choices:
        help_text += f" [dim]\\[{' | '.join(choices)}][/dim]"
    help_text += f" [dim]\\[default: {shown}][/dim]"
    extra = {}
    if kind is bool:
        flags = [f"--{flag_name(f.name)}/--no-{flag_name(f.name)}"]
    if f.name in PLUGIN_FIELDS:
        extra["autocompletion"] = complete_plugin_names(PLUGIN_FIELDS[f.name])
    elif choices:
        extra["autocompletion"] = complete_choices(choices)
    option = typer.Option(*flags, help=help_text, show_default=False, rich_help_panel=_panel(f.name), **extra)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[kind], option])


def _panel(name: str) -> str:
    return next(section for section, names in SECTIONS.items() if name in names)


def train(config_file: Optional[Path] = None, quiet: bool = False, **given) -> int:
    """Train a GAN. Options mean what they mean in the NNabla WGAN-GP example's train.py."""
    from .api import TrainingInterrupted, train_with

    if quiet:
        given["progress"] = False
    try:
        result, code = train_with(config_file, given), 0
    except TrainingInterrupted as stop:
        result, code = stop.result, 128 + stop.signum
    if not quiet and result.writer:  # one summary per data-parallel job
        summary = ", ".join(f"{k} {v:.4g}" for k, v in result.last_losses.items() if k != "iteration")
        print(f"{result.status} at iteration {result.iteration}: {summary}")
        print(f"results in {result.run_folder} (checkpoint {result.checkpoint})")
    return code


def _train_signature() -> inspect.Signature:
    """``--config``, ``--quiet``, then one option per TrainConfig field (choices from the registry)."""
    config_file = typer.Option("--config", help="TOML file of the same names (dashes or underscores); flags "
                                                "override it", rich_help_panel="Output", show_default=False)
    quiet = typer.Option("--quiet", "-q", help="no progress and no summary", rich_help_panel="Output")
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [_train_option(f) for f in fields(TrainConfig)]
        + [inspect.Parameter("config_file", keyword, default=None, annotation=Annotated[Optional[Path], config_file]),
           inspect.Parameter("quiet", keyword, default=False, annotation=Annotated[bool, quiet])])


def _resume_takes_latest(argv: List[str]) -> List[str]:
    """``--resume`` without a path means ``--resume latest`` (click options take one value)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--resume" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, "latest")
            return out
    return out


# -- the other built-in commands ------------------------------------------------------------------

def generate(model_load_path: Annotated[Path, typer.Option("--model-load-path", help="a params_*.safetensors checkpoint")],
             monitor_path: Annotated[Path, typer.Option("--monitor-path", help="output folder")],
             backend: Backend = None, context: Context = "cpu", device_id: DeviceId = 0, threads: Threads = 0,
             batch_size: Annotated[int, typer.Option("-b", "--batch-size")] = 64,
             num_images: Annotated[int, typer.Option("--num-images")] = 64,
             format: Annotated[str, typer.Option("--format", help="png, npz or both")] = "both",
             raw_weights: RawWeights = False,
             overwrite: Annotated[bool, typer.Option(
                 "--overwrite", help="replace generated.png / samples.npz already in --monitor-path")] = False,
             seed: Annotated[int, typer.Option("--seed")] = 0) -> int:
    """Sample from a checkpoint on any backend: an image tile and/or samples.npz."""
    from .generate import generate as run

    check_choice("--context", context, CONTEXTS)
    check_choice("--format", format, ("png", "npz", "both"))
    result = run(model_load_path, monitor_path, backend=backend, context=context, device_id=device_id,
                 batch_size=batch_size, num_images=num_images, fmt=("png", "npz") if format == "both" else (format,),
                 seed=seed, raw=raw_weights, threads=threads, overwrite=overwrite)
    for path in result["written"].values():
        print(f"wrote {path}")
    return 0


def plugins(json_output: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False) -> int:
    """List every plugin of the wganx entry-point group, built-ins included."""
    from .plugins import KINDS

    reg = plugin_registry()
    rows = [{"kind": "backend", "name": name, "package": f"wganx-{name}", "version": "", "available": False,
             "reason": why, "description": ""} for name, why in reg.missing_standard_backends().items()]
    conflicts = reg.conflicts()
    claimed = [e for entries in conflicts.values() for e in entries[1:]]
    for entry in sorted(reg.entries() + claimed, key=lambda e: (list(KINDS).index(e.kind), e.name)):
        ok, why = entry.availability()
        if (entry.kind, entry.name) in conflicts:
            packages = " and ".join(e.package for e in conflicts[(entry.kind, entry.name)])
            ok, why = False, f"conflict: {entry.name!r} is registered by {packages}"
        rows.append({"kind": entry.kind, "name": entry.name, "package": entry.package, "version": entry.version,
                     "available": ok, "reason": why, "description": getattr(entry.record, "description", "")})
    rows += [{"kind": "plugin", "name": f.name, "package": f.package, "version": f.version, "available": False,
              "reason": f"failed to load: {f.error}", "description": ""} for f in reg.failures]
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("kind", "name", "package", "version", "status", "description", box=None, pad_edge=False)
    for r in rows:
        status = "available" if r["available"] else f"[red]unavailable[/red]: {r['reason']}"
        table.add_row(r["kind"], r["name"], r["package"], r["version"], status, r["description"])
    Console(width=max(200, _terminal_width())).print(table)
    return 0


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((200, 24)).columns


def parity(backends: Annotated[Optional[List[str]], typer.Option(
               "--backend", help="backend to include (repeatable; default: all available)",
               autocompletion=complete_plugin_names("backend"))] = None,
           case: Annotated[Optional[List[str]], typer.Option(
               "--case", help="only the cases whose label contains this text (repeatable; default: every case)")
           ] = None,
           json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> int:
    """Compare losses, penalties, gradients and short trajectories across the installed backends."""
    from . import parity as P

    def progress(label):
        if not json_output:
            print(f"  {label}", file=sys.stderr)

    report = P.run(backends or [], cases=P.select_cases(case) if case else None, progress=progress)
    print(json.dumps(report.as_dict(), indent=2) if json_output else P.format_table(report))
    return 0 if report.passed else 1


# -- the app ------------------------------------------------------------------------------------

def _version(value: bool):
    if value:
        print(f"wganx {__version__}")
        raise typer.Exit(0)


def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="show the version and exit")] = False,
          verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                                help="let the frameworks print their start-up logs")] = False):
    """Train Wasserstein GANs with gradient penalty on PyTorch, TensorFlow or NNabla."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


def _guarded(function: Callable[..., int]) -> Callable[..., int]:
    """A command whose return value is the exit status. Ctrl-C becomes ``Interrupted`` on
    the way out, since click would turn a KeyboardInterrupt into "Aborted!" and exit 1."""
    def run(**kwargs):
        try:
            code = function(**kwargs)
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT) from None
        raise typer.Exit(int(code or 0))

    run.__signature__ = _resolved_signature(function)
    run.__doc__, run.__name__ = function.__doc__, function.__name__
    return run


def _resolved_signature(function) -> inspect.Signature:
    """``function``'s signature with its annotations evaluated (modules that use
    ``from __future__ import annotations`` hold them as strings, which typer cannot read)."""
    signature = inspect.signature(function)
    if getattr(function, "__signature__", None) is not None:
        return signature
    namespace = getattr(inspect.unwrap(function), "__globals__", {})

    def evaluated(annotation):  # not typing.get_type_hints: before 3.11 it wraps None defaults in Optional
        return eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307

    return signature.replace(parameters=[p.replace(annotation=evaluated(p.annotation))
                                         for p in signature.parameters.values()],
                             return_annotation=evaluated(signature.return_annotation))


def build_app(reg=None) -> typer.Typer:
    """The ``wganx`` typer app, with every plugin-contributed command."""
    from . import evaluate

    train.__signature__ = _train_signature()
    app = typer.Typer(name="wganx", no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]}, add_completion=True)
    app.callback()(_root)
    app.command("train", epilog=TRAIN_EXAMPLES, no_args_is_help=False)(_guarded(train))
    app.command("generate")(_guarded(generate))
    app.command("evaluate")(_guarded(evaluate.command))
    app.command("plugins")(_guarded(plugins))
    app.command("parity")(_guarded(parity))
    try:
        commands = (reg or plugin_registry()).entries("command")
    except WganxError:
        commands = []
    for entry in commands:
        if entry.name in BUILT_IN:
            print(f"wganx: the command {entry.name!r} of {entry.package!r} clashes with a built-in command; "
                  "skipped", file=sys.stderr)
            continue
        app.command(entry.name, help=entry.record.help or None)(_guarded(entry.record.command))
    return app


def command(name: str, reg=None):
    """The click command behind ``wganx NAME`` (for parsing, completion and the docs)."""
    import typer.main

    group = typer.main.get_command(build_app(reg))
    return group.commands[name] if name else group


def parse(name: str, argv: List[str]) -> SimpleNamespace:
    """The options ``wganx NAME ARGV`` would run with, without running it (for tests and tools)."""
    cmd = command(name)
    ctx = cmd.make_context(name, list(argv))
    return SimpleNamespace(**ctx.params)


def reference_rst(reg=None) -> str:
    """The CLI reference as reStructuredText (``docs/cli.rst`` includes it at build time):
    every command of the app, its options in their help panels, as ``--help`` shows them."""
    import re

    from rich.text import Text

    def plain(text: str) -> str:
        text = Text.from_markup(text or "").plain
        return re.sub(r"([|*`_\\])", r"\\\1", text)  # as plain text, not reST markup

    group = command("", reg)
    lines: List[str] = []
    for name, cmd in [("", group)] + list(group.commands.items()):
        title = f"wganx {name}".strip()
        panels: dict = {}
        for param in cmd.params:
            if getattr(param, "hidden", False):
                continue
            default = "Arguments" if param.param_type_name == "argument" else "Options"
            panels.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(param)
        usage = f"{title} [OPTIONS]" + (" COMMAND [ARGS]..." if not name else "")
        usage += "".join(f" {p.metavar or p.name.upper()}" for p in cmd.params if p.param_type_name == "argument")
        lines += [title, "-" * len(title), "", plain(cmd.help or "").strip(), "", ".. code-block:: console", "",
                  f"   $ {usage}", ""]
        if cmd.epilog:
            lines += [".. code-block:: console", ""] + [f"   {line}" for line in Text.from_markup(
                cmd.epilog).plain.strip().splitlines()[1:] if line.strip()] + [""]
        for panel, params in panels.items():
            lines += [f"**{panel}**", ""]
            for param in params:
                flags = ", ".join(f"``{o}``" for o in [*param.opts, *getattr(param, "secondary_opts", [])])
                if param.param_type_name == "argument":
                    flags = f"``{param.metavar or param.name.upper()}``"
                lines += [flags, f"   {plain(getattr(param, 'help', '') or '(required)')}", ""]
        if not name:
            lines += ["**Commands**", ""] + [f"``{n}``\n   {plain(c.get_short_help_str(200))}\n"
                                             for n, c in group.commands.items()]
    return "\n".join(lines) + "\n"


def _terminate(signum, frame):
    raise Interrupted(signum)


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``wganx ARGV``; returns the exit status. An input or environment error is one
    line on stderr and exit 2, and Ctrl-C or SIGTERM outside the training loop (which
    handles them itself) exits 130 or 143."""
    argv = _resume_takes_latest(sys.argv[1:] if argv is None else [str(a) for a in argv])
    name = next((a for a in argv if not a.startswith("-")), "wganx")
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        code = build_app()(args=argv, prog_name="wganx", standalone_mode=False)
        return code if isinstance(code, int) else 0  # every command raises typer.Exit(status)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except WganxError as exc:
        print(f"wganx {name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment: a folder in the way, a full or read-only disk
        from .runfolder import describe_os_error

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"wganx {name}: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"wganx {name}: stopped by {signal.Signals(signum).name}; files already written are intact",
              file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 - click's usage errors (typer vendors its own click)
        if not callable(getattr(exc, "format_message", None)) or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain "wganx": the help itself
            exc.show()
            return exc.exit_code
        path = getattr(getattr(exc, "ctx", None), "command_path", None) or "wganx"
        print(f"{path}: error: {' '.join(exc.format_message().split())} (see: {path} --help)", file=sys.stderr)
        return exc.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
