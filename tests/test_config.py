import re

import pytest

from rlx import config as C
from rlx.errors import UserError


def test_overrides_are_type_checked_and_applied():
    cfg = C.apply_overrides(C.Config(), {"optim.lr": "1e-3", "net.hidden": "64,32", "dqn.double": "false", "steps": "1e5"})
    assert cfg.optim.lr == 1e-3 and cfg.net.hidden == (64, 32) and cfg.dqn.double is False and cfg.steps == 100_000


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("optim.lr", "fast", "expects a number"),
        ("steps", "1.5", "expects an integer"),
        ("dqn.double", "maybe", "true or false"),
        ("net.hidden", "64,x", "expects an integer"),
        ("td.gamma", "1.5", "gamma must be in [0, 1]"),
        ("steps", "-5", "steps must be positive"),
        ("optim.name", "adamw", "unknown optim.name 'adamw'"),
        ("noise", "paramm", "Did you mean 'param'"),
        ("net.activation", "gelu", "unknown net.activation"),
        ("param.scope", "last", "unknown param.scope"),
        ("agent", "ppo", "unknown agent"),
        ("dqn.loss", "l1", "unknown dqn.loss"),
        ("dqn.train_every", "3", "must divide one another"),
        ("param.smoothing", "1", "smoothing must be in [0, 1)"),
    ],
)
def test_bad_values_raise_user_error(key, value, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        C.apply_overrides(C.Config(), {key: value})


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(UserError) as e:
        C.apply_overrides(C.Config(), {"optim.lrr": 1})
    msg = str(e.value)
    assert "Did you mean 'optim.lr'" in msg and "explore.eps_end" in msg


def test_parse_set_requires_key_value():
    assert C.parse_set(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(UserError, match="key=value"):
        C.parse_set(["optim.lr"])


def test_round_trip_through_dict():
    cfg = C.apply_overrides(C.Config(), {"env": "chain-10", "net.hidden": (16, 16)})
    assert C.from_dict(C.to_dict(cfg)) == cfg


def test_hparams_are_exactly_the_shape_free_fields():
    # Derived from the field declarations: every batched key exists, none changes shapes or the loop, and the
    # program's HParams carries exactly those fields.
    assert C.HPARAMS == ("optim.lr", "td.gamma", "dqn.tau", "explore.eps_start", "explore.eps_end",
                         "explore.eps_decay_steps")
    assert C.HParams._fields == ("lr", "gamma", "tau", "eps_start", "eps_end", "eps_decay_steps")
    static = {"dqn.num_envs", "dqn.buffer_size", "dqn.batch_size", "net.hidden", "dqn.target_every"}
    assert not static & set(C.HPARAMS)


def test_static_part_ignores_exactly_the_batched_fields_and_seed():
    base = C.Config()
    for key, value in (("optim.lr", 1e-3), ("td.gamma", 0.9), ("explore.eps_end", 0.1), ("seed", 3)):
        assert C.static_part(C.apply_overrides(base, {key: value})) == C.static_part(base)
    for key, value in (("dqn.batch_size", 64), ("optim.name", "radam"), ("noise", "param")):
        assert C.static_part(C.apply_overrides(base, {key: value})) != C.static_part(base)


@pytest.mark.parametrize("old,new", sorted(C.RENAMED.items()))
def test_renamed_keys_name_the_new_key(old, new):
    with pytest.raises(UserError, match=re.escape(f"'{old}' was renamed: write {new}=")):
        C.apply_overrides(C.Config(), {old: "1"})
    assert new in C.keys()


def test_saved_configs_with_old_key_names_still_load():
    old = C.to_dict(C.Config())
    old["dqn"]["lr"] = old["optim"].pop("lr")
    old["dqn"]["gamma"] = 0.9
    cfg = C.from_dict(old)
    assert cfg.optim.lr == C.Config().optim.lr and cfg.td.gamma == 0.9


def test_a_registered_choice_is_valid_without_touching_the_config(monkeypatch):
    from rlx.agents import core

    monkeypatch.setitem(core.OPTIMIZERS, "lion", core.OPTIMIZERS["sgd"])
    assert C.apply_overrides(C.Config(), {"optim.name": "lion"}).optim.name == "lion"


# Every refusal of validate() and of the agents' checks: the settings, and the keys its message must name.
REFUSED = [
    *[({k: 0}, [k]) for k in C.POSITIVE],
    *[({k: 1.5}, [k]) for k in C.UNIT_INTERVAL],
    *[({k: -1}, [k]) for k in ("dqn.learning_starts", "optim.max_grad_norm", "param.delta", "langevin.damping",
                               "pptb.boost", "path.every_updates")],
    *[({k: 1}, [k]) for k in ("param.smoothing", "langevin.decay", "pptb.beta", "diag.delta", "diag.eps")],
    ({"net.hidden": "64,0"}, ["net.hidden"]),
    ({"dqn.tau": 0}, ["dqn.tau"]),
    ({"param.alpha": 1}, ["param.alpha"]),
    ({"param.sigma0": 20}, ["param.sigma0", "param.sigma_max"]),
    ({"param.sigma_min": 0.5}, ["param.sigma_min", "param.sigma0"]),
    ({"pptb.window": 1}, ["pptb.window"]),
    ({"pptb.k": 0}, ["pptb.k"]),
    ({"pptb.every_updates": 2505}, ["pptb.every_updates", "pptb.window"]),
    ({"optim.name": "adamw"}, ["optim.name"]),
    ({"noise": "paramm"}, ["noise"]),
    ({"dqn.train_every": 3}, ["dqn.train_every", "dqn.num_envs"]),
    ({"dqn.target_every": 505}, ["dqn.target_every", "dqn.num_envs", "dqn.train_every"]),
    ({"dqn.batch_size": 512, "dqn.buffer_size": 256}, ["dqn.batch_size", "dqn.buffer_size"]),
    ({"path.every_updates": 7}, ["path.every_updates", "dqn.target_every", "dqn.train_every"]),
    ({"pptb.enabled": True, "pptb.every_updates": 30, "pptb.window": 10}, ["pptb.every_updates", "pptb.window"]),
    ({"agent": "pqn", "path.every_updates": 50}, ["path.every_updates", "--agent dqn"]),
    ({"agent": "pqn", "pptb.enabled": True}, ["pptb", "--agent dqn"]),
    *[({"agent": "pqn", k: 0}, [k]) for k in ("pqn.num_envs", "pqn.rollout", "pqn.epochs", "pqn.minibatches")],
    ({"agent": "pqn", "pqn.lam": 2}, ["pqn.lam"]),
    ({"agent": "pqn", "pqn.num_envs": 2, "pqn.rollout": 1, "pqn.minibatches": 4},
     ["pqn.minibatches", "pqn.num_envs", "pqn.rollout"]),
]


@pytest.mark.parametrize("settings,named", REFUSED, ids=lambda v: ",".join(v) if isinstance(v, dict) else None)
def test_every_refusal_names_its_keys_and_a_value_that_works(settings, named):
    with pytest.raises(UserError) as e:
        C.apply_overrides(C.Config(), settings)
    msg = str(e.value)
    assert all(k in msg for k in named), msg
    fix = re.findall(r"--set (\S+?)=(\S+?)(?=\s|\.$)", msg.split(" Try ")[-1])
    assert fix, msg
    # The suggested flags, given on top of the refused ones, are accepted.
    C.apply_overrides(C.Config(), {**settings, **dict(fix)})


def test_every_key_has_a_meaning_and_the_units_follow_the_naming_rule():
    docs = C.key_docs()
    assert list(docs) == C.keys() and all(docs.values()), [k for k in C.keys() if not docs.get(k)]
    assert "discount" in docs["td.gamma"] and "LayerNorm" in docs["param.layer_norm"]
    assert C.unit("steps") == C.unit("eval.every") == C.unit("explore.eps_decay_steps") == "env steps"
    assert C.unit("pptb.every_updates") == "gradient updates" and C.unit("optim.lr") == ""
