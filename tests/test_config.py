"""Config files and overrides: nested sections apply onto their section's default, unknown fields are
named with their full path, and the loop's training config holds the step's own optimizer and loss."""

import pytest

from read_jax.config import from_dict, override, to_dict
from read_jax.distill.losses import LossConfig
from read_jax.distill.train_step import OptimizerConfig
from read_jax.errors import ReadJaxError
from read_jax.loop import LoopConfig, TrainConfig


def test_a_partial_nested_section_keeps_the_loops_own_defaults():
    loop = from_dict(LoopConfig, {"train": {"rows": 4, "optimizer": {"warmup_steps": 2}}})
    default = TrainConfig().optimizer
    assert loop.train.rows == 4 and loop.train.optimizer.warmup_steps == 2
    # the loop's learning rate and weight decay, not OptimizerConfig's class defaults
    assert loop.train.optimizer.learning_rate == default.learning_rate != OptimizerConfig().learning_rate
    assert loop.train.optimizer.weight_decay == default.weight_decay != OptimizerConfig().weight_decay
    assert loop.train.loss == LossConfig()


def test_overrides_reach_nested_sections_and_round_trip():
    loop = override(LoopConfig(), ["train.optimizer.learning_rate=0.0005", "train.loss.kl=0.5"])
    assert loop.train.optimizer.learning_rate == 0.0005 and loop.train.loss.kl == 0.5
    assert from_dict(LoopConfig, to_dict(loop)) == loop


@pytest.mark.parametrize("data,match", [
    ({"train": {"optimizer": {"learnin_rate": 1.0}}}, "train.optimizer.learnin_rate"),
    ({"train": {"learning_rate": 1.0}}, "train.learning_rate"),  # the old flat field is refused by name
    ({"train": {"optimizer": {"learning_rate": 0}}}, "train.optimizer.learning_rate must be > 0"),
    ({"train": {"loss": {"topk_kl": 1.0}}}, "train.loss.topk_kl"),
    ({"train": {"loss": {"kl": -1}}}, "loss kl must be"),
])
def test_bad_training_config_is_one_line_naming_the_field(data, match):
    with pytest.raises(ReadJaxError, match=match) as info:
        from_dict(LoopConfig, data)
    assert "\n" not in str(info.value)
