"""The ``wganx`` command on typer and rich: help panels, completion, fail-fast order, the
plugins' recommended defaults, plugin-contributed commands and output that is not a terminal."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wganx import cli
from wganx.config import SECTIONS, TrainConfig, from_user
from wganx.errors import WganxError
from wganx.plugins import Registry

from conftest import run_cli

WGANX = Path(sys.executable).with_name("wganx")


def wganx(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # rich wraps help text to the terminal's width


def test_train_help_has_a_panel_per_section_examples_and_each_default_once(capsys, wide):
    code, out, _ = wganx(capsys, "train", "--help")
    assert code == 0
    for section in SECTIONS:
        assert f"─ {section} " in out, section
    assert "Examples" in out and "wganx train --backend nnabla -c cudnn -d 0 -b 64" in out
    batch_line = next(line for line in out.splitlines() if "--batch-size" in line)
    assert "-b" in batch_line and batch_line.count("default") == 1 and "[default: 64]" in batch_line
    assert "(default" not in out  # no second default in the help texts
    arch_line = next(line for line in out.splitlines() if "--arch " in line)
    assert "conv-small" in arch_line  # a third-party architecture, listed from the registry


@pytest.mark.parametrize("flags", [["-c", "cudnn", "-d", "1", "-b", "64", "-i", "1000", "-t", "half"],
                                   ["-cb"]])
def test_the_nnabla_examples_short_flags(flags):
    given = vars(cli.parse("train", flags))
    if flags == ["-cb"]:  # click reads it as -c b, as argparse did
        assert given["context"] == "b"
        return
    assert (given["context"], given["device_id"], given["batch_size"], given["max_iter"],
            given["type_config"]) == ("cudnn", 1, 64, 1000, "half")
    assert given["lrd"] is None  # not given: the file, the plugins or TrainConfig decide


def test_resume_without_a_value_means_the_newest_checkpoint():
    assert cli._resume_takes_latest(["train", "--resume", "-i", "5"]) == ["train", "--resume", "latest", "-i", "5"]
    assert cli._resume_takes_latest(["train", "--resume"]) == ["train", "--resume", "latest"]
    assert cli._resume_takes_latest(["train", "--resume", "a.safetensors"]) == ["train", "--resume", "a.safetensors"]


def test_shell_completion_lists_plugins_from_the_registry(tmp_path):
    env = dict(os.environ, _WGANX_COMPLETE="complete_bash", COMP_WORDS="wganx train --arch co", COMP_CWORD="3")
    out = subprocess.run([str(WGANX)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["conv-small"], out.stderr
    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash")
    # typer finds the shell among the parent processes; "; exit $?" keeps bash from exec-ing wganx
    out = subprocess.run(["bash", "-c", f"'{WGANX}' --install-completion; exit $?"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "wganx" in (tmp_path / ".bash_completions" / "wganx.sh").read_text()
    assert ".bash_completions/wganx.sh" in (tmp_path / ".bashrc").read_text()


def test_usage_errors_exit_2_in_one_line(capsys):
    code, _, err = wganx(capsys, "train", "--no-such-flag")
    assert code == 2 and err == "wganx train: error: No such option: --no-such-flag (see: wganx train --help)\n"
    code, _, err = wganx(capsys, "train", "-b", "many")
    assert code == 2 and "'-b' / '--batch-size'" in err and len(err.splitlines()) == 1, err
    code, _, err = wganx(capsys, "nosuch")
    assert code == 2 and err == "wganx: error: No such command 'nosuch'. (see: wganx --help)\n"
    code, _, _ = wganx(capsys)
    assert code == 2  # no command: the help, and a usage status


# -- fail fast -----------------------------------------------------------------------------------

def test_names_are_checked_before_any_download_or_folder(tmp_path, capsys):
    """The default dataset is CIFAR-10: an unknown backend must be named before it is fetched."""
    code, _, err = wganx(capsys, "train", "--backend", "nosuchbackend", "--data-dir", tmp_path / "data",
                         "--monitor-path", tmp_path / "run")
    assert code == 2 and "unknown backend 'nosuchbackend'; choose one of:" in err
    assert "downloading" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_check_order_names_then_values_then_metrics_then_features_then_data(tmp_path, capsys):
    """Each error is the first of the checks it fails, in the order wganx makes them: the
    dataset and architecture (they recommend settings), the values, the other plugin names,
    the metrics, the optional dependencies, and only then the data."""
    run, data = tmp_path / "run", tmp_path / "nodata"
    cases = [
        (["--dataset", "nosuch", "--arch", "vgg", "-b", "0"], "unknown dataset 'nosuch'"),
        (["--arch", "vgg", "--regularizer", "nosuch", "-b", "0"], "unknown architecture 'vgg'"),
        (["-b", "0", "--regularizer", "nosuch"], "--batch-size must be at least 1"),
        (["--regularizer", "nosuch", "--eval-interval", "2", "--eval-metrics", "nosuch"],
         "unknown regularizer 'nosuch'"),
        (["--eval-interval", "2", "--eval-metrics", "nosuch"], "unknown metric 'nosuch'"),
    ]
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:  # an optional dependency, before any data
        # SVHN has no domain classifier, so its metrics take Inception's features
        cases.append((["--dataset", "svhn", "--eval-interval", "2"], "need torch-fidelity: pip install torch-fidelity"))
    for flags, message in cases:
        code, _, err = wganx(capsys, "train", "--data-dir", data, "--no-download", "--monitor-path", run, *flags)
        assert code == 2 and message in err, (flags, err)
        assert not run.exists() and not data.exists()
    code, _, err = wganx(capsys, "train", "--data-dir", data, "--no-download", "--monitor-path", run)
    assert code == 2 and "cifar-10" in err.lower()  # only now the data


# -- recommended defaults ------------------------------------------------------------------------

def test_a_toy_gets_the_papers_toy_settings_unless_given():
    config, recommended = from_user({"dataset": "8gaussians", "latent": 3})
    assert recommended == {"arch": "mlp", "maps": 512, "lambda_": 0.1, "batch_size": 256, "lrg": 1e-3, "lrd": 1e-3, "lr_decay": "linear", "ema_decay": 0.99}
    assert (config.arch, config.maps, config.latent, config.lambda_, config.batch_size) == ("mlp", 512, 3, 0.1, 256)
    config, recommended = from_user({"dataset": "cifar10"})
    assert recommended == {} and config == TrainConfig()  # images: the CIFAR-10 recipe
    config, _ = from_user({"dataset": "8gaussians", "recipe": "wgan"})
    assert config.regularizer == "clip" and config.optimizer == "rmsprop"


def test_an_architecture_record_recommends_too_and_bad_keys_are_named():
    import wganx
    from wganx.records import ArchitectureSpec

    base = wganx.registry().get("architecture", "mlp")

    class Wide:
        @wganx.hookimpl
        def wganx_architectures(self):
            return [ArchitectureSpec("wide-mlp", base.build, base.data_kinds, defaults={"maps": 1024, "n_critic": 3}),
                    ArchitectureSpec("broken", base.build, base.data_kinds, defaults={"no_such_setting": 1})]

    reg = Registry.from_plugins([Wide()])
    config, recommended = from_user({"dataset": "8gaussians", "arch": "wide-mlp"}, reg)
    assert (config.maps, config.n_critic, config.latent) == (512, 3, 2)  # the dataset's maps come first
    assert recommended == {"maps": 512, "latent": 2, "lambda_": 0.1, "batch_size": 256, "n_critic": 3}
    with pytest.raises(WganxError, match="'broken' recommends an unknown setting 'no_such_setting'"):
        from_user({"dataset": "8gaussians", "arch": "broken"}, reg)


def test_recommended_defaults_are_printed_and_recorded(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = wganx(capsys, "train", "--dataset", "8gaussians", "--maps", "8", "-b", "16", "-i", "2",
                           "--save-interval", "2", "--no-progress", "--monitor-path", run)
    assert code == 0, err
    assert ("8gaussians / mlp recommend: arch mlp, latent 2, lambda 0.1, lrg 0.001, lrd 0.001, lr-decay linear, "
            "ema-decay 0.99 (a flag overrides each)") in err
    info = json.loads((run / "config.json").read_text())
    assert info["recommended_by_plugins"] == {"arch": "mlp", "latent": 2, "lambda_": 0.1, "lrg": 1e-3, "lrd": 1e-3, "lr_decay": "linear", "ema_decay": 0.99}
    assert info["config"]["maps"] == 8 and info["penalty_weight"] == 0.1


# -- output --------------------------------------------------------------------------------------

def test_progress_in_a_log_file_is_plain_lines(tmp_path):
    out = run_cli("train", "--dataset", "8gaussians", "--maps", "8", "-b", "16", "-i", "6", "--save-interval", "3",
                  "--log-interval", "1", "--monitor-path", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("wganx: iteration")]
    assert [ln.split()[2] for ln in lines] == ["3/6", "6/6"], out.stderr
    assert "wrote params_000003.safetensors" in lines[0] and "it/s" in lines[0] and "D " in lines[0]
    assert "\r" not in out.stderr


def test_quiet_prints_nothing_on_success(tmp_path):
    out = run_cli("train", "--dataset", "8gaussians", "--maps", "8", "-b", "16", "-i", "2", "--save-interval", "2",
                  "--quiet", "--monitor-path", tmp_path / "run")
    assert out.returncode == 0 and out.stdout == "", out.stderr
    assert "wganx: iteration" not in out.stderr


def test_plugins_table_has_descriptions(capsys):
    code, out, _ = wganx(capsys, "plugins")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["kind", "name", "package", "version", "status", "description"]
    assert any("conv-small" in ln and "wganx-example-plugin" in ln and "small all-conv" in ln for ln in out.splitlines())


# -- commands from plugins -----------------------------------------------------------------------

def test_a_plugin_contributes_a_command(capsys):
    code, out, err = wganx(capsys, "conv-small-shapes", "--image-size", "16", "--maps", "8", "--channels", "1")
    assert code == 0, err
    assert "generator/" in out and "critic: " in out and "parameters" in out
    code, _, err = wganx(capsys, "conv-small-shapes", "--maps", "0")
    assert code == 2 and err.strip() == "wganx conv-small-shapes: error: --maps and --channels must be at least 1"
    code, out, _ = wganx(capsys, "--help")
    assert "conv-small-shapes" in out and "bench" in out


def test_a_plugin_command_cannot_take_a_built_in_name(capsys):
    import wganx
    from wganx.records import CommandSpec

    class Clash:
        @wganx.hookimpl
        def wganx_commands(self):
            return [CommandSpec("train", lambda: 0), CommandSpec("hello-demo", lambda: print("hello"))]

    group = cli.command("", Registry.from_plugins([Clash()]))
    assert "hello-demo" in group.commands and group.commands["train"].callback.__doc__.startswith("Train a GAN")
    assert "clashes with a built-in command" in capsys.readouterr().err


def test_importing_the_cli_imports_no_framework():
    code = ("import sys, wganx.cli; wganx.cli.build_app(); "
            "print([m for m in ('torch', 'tensorflow', 'nnabla') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_up_for_an_architecture_without_upsamplers_is_an_error():
    with pytest.raises(WganxError, match="architecture 'mlp' has no upsampling blocks"):
        from_user({"dataset": "8gaussians", "up": "deconv"})
    assert from_user({"arch": "resnet", "up": "deconv"})[0].up == "deconv"
