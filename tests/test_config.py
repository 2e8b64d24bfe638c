"""Run settings (:mod:`wganx.config`): a TOML file under the flags, the original WGAN's recipe."""
import pytest

from wganx.config import TrainConfig, load_toml
from wganx.errors import WganxError


def test_toml_config_and_flag_precedence(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('batch-size = 16\nlambda = 5.0\nn_critic = 3\n')
    values = load_toml(str(path))
    assert values == {"batch_size": 16, "lambda_": 5.0, "n_critic": 3}
    (tmp_path / "bad.toml").write_text("batch = 3\n")
    with pytest.raises(WganxError, match=r"unknown setting 'batch'; did you mean 'batch_size'\?"):
        load_toml(str(tmp_path / "bad.toml"))


def test_wgan_recipe_is_one_flag_away():
    config = TrainConfig(recipe="wgan").apply_recipe(explicit={"recipe"})
    assert (config.regularizer, config.optimizer, config.lrd, config.lrg, config.critic_schedule) == \
        ("clip", "rmsprop", 5e-5, 5e-5, "wgan")
    kept = TrainConfig(recipe="wgan", lrd=1e-3).apply_recipe(explicit={"recipe", "lrd"})
    assert kept.lrd == 1e-3 and kept.lrg == 5e-5


def test_original_wgan_critic_schedule():
    from wganx.algorithm import critic_steps

    assert [critic_steps("wgan", 5, i) for i in (0, 24, 25, 499, 500, 501, 1000)] == [100, 100, 5, 5, 100, 5, 100]
    assert critic_steps("constant", 5, 0) == 5


def test_every_number_has_its_range_and_the_programs_settings_share_the_programs():
    """A setting the program also holds is bounded once: the flag is checked against the
    program's own range, before any data is read."""
    from dataclasses import fields

    from wganx import algorithm

    ranges = {f.name: f.metadata.get("range") for f in fields(TrainConfig)
              if f.type in ("int", "float", "Optional[float]")}
    assert all(ranges.values()), [name for name, r in ranges.items() if r is None]
    assert ranges["batch_size"] is algorithm.BATCH_SIZE and ranges["lrd"] is ranges["lrg"] is algorithm.LEARNING_RATE
    assert ranges["ema_decay"] is algorithm.EMA_DECAY and ranges["ema_start"] is algorithm.EMA_START
    with pytest.raises(WganxError, match=r"^--beta2 must be in \[0, 1\), got 1.0$"):
        TrainConfig(beta2=1.0).validate()
    TrainConfig(lambda_=None).validate()  # the regularizer's own weight
