import re

import pytest

from rlx import config as C
from rlx.errors import UserError


def test_overrides_are_type_checked_and_applied():
    cfg = C.apply_overrides(C.Config(), {"dqn.lr": "1e-3", "net.hidden": "64,32", "dqn.double": "false", "steps": "1e5"})
    assert cfg.dqn.lr == 1e-3 and cfg.net.hidden == (64, 32) and cfg.dqn.double is False and cfg.steps == 100_000


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("dqn.lr", "fast", "expects a number"),
        ("steps", "1.5", "expects an integer"),
        ("dqn.double", "maybe", "true or false"),
        ("net.hidden", "64,x", "expects an integer"),
        ("dqn.gamma", "1.5", "gamma must be in [0, 1]"),
        ("steps", "-5", "steps must be positive"),
        ("dqn.optimizer", "adamw", "unknown dqn.optimizer"),
        ("dqn.train_every", "3", "must divide one another"),
        ("param.smoothing", "1", "smoothing must be in [0, 1)"),
    ],
)
def test_bad_values_raise_user_error(key, value, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        C.apply_overrides(C.Config(), {key: value})


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(UserError) as e:
        C.apply_overrides(C.Config(), {"dqn.lrr": 1})
    msg = str(e.value)
    assert "Did you mean 'dqn.lr'" in msg and "explore.eps_end" in msg


def test_parse_set_requires_key_value():
    assert C.parse_set(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(UserError, match="key=value"):
        C.parse_set(["dqn.lr"])


def test_round_trip_through_dict():
    cfg = C.apply_overrides(C.Config(), {"env": "chain-10", "net.hidden": (16, 16)})
    assert C.from_dict(C.to_dict(cfg)) == cfg


def test_hparams_are_exactly_the_shape_free_fields():
    # Every batched key must exist; none of them may be a field that changes shapes or the loop.
    assert set(C.HPARAMS) <= set(C.keys())
    static = {"dqn.num_envs", "dqn.buffer_size", "dqn.batch_size", "net.hidden", "dqn.target_every"}
    assert not static & set(C.HPARAMS)
