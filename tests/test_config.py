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
