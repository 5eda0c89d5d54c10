"""bench/anchors.py without the authors' sources or a network: the gymnax five-value adapter against gymnax's own
step, the stub modules, the path checks of bench.py, and the whole subprocess path on small fake source trees
written here (their layout, their import lines and API shapes, none of their code)."""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_anchors():
    """bench/anchors.py as a module; bench/ is on sys.path only while it imports its sibling `timing`, so no other
    test can pick up a bench module by accident."""
    spec = importlib.util.spec_from_file_location("bench_anchors", ROOT / "bench" / "anchors.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


anchors = _load_anchors()


@pytest.mark.slow
def test_legacy_step_is_gymnax_step_with_done_the_union_of_terminated_and_truncated():
    import gymnax
    from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

    base, params = gymnax.make("CartPole-v1")
    params = params.replace(max_steps_in_episode=15)  # truncations as well as terminations within the rollout
    new = LogWrapper(FlattenObservationWrapper(base))
    old = anchors.legacy_log_wrapper()(FlattenObservationWrapper(base))
    n = 16
    _, state = jax.vmap(new.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), n), params)

    def body(carry, key):
        s_new, s_old = carry
        k_act, k_step = jax.random.split(key)
        keys = jax.random.split(k_step, n)
        action = jax.random.randint(k_act, (n,), 0, 2)
        six = jax.vmap(new.step, in_axes=(0, 0, 0, None))(keys, s_new, action, params)
        five = jax.vmap(old.step, in_axes=(0, 0, 0, None))(keys, s_old, action, params)
        return (six[1], five[1]), (six, five)

    keys = jax.random.split(jax.random.PRNGKey(1), 60)
    _, (six, five) = jax.jit(lambda s, k: jax.lax.scan(body, (s, s), k))(state, keys)
    assert len(five) == 5
    obs, _, reward, terminated, truncated, info = six
    obs5, _, reward5, done, info5 = five
    np.testing.assert_array_equal(obs5, obs)
    np.testing.assert_array_equal(reward5, reward)
    np.testing.assert_array_equal(done, terminated | truncated)
    assert terminated.any() and (truncated & ~terminated).any()
    # Old gymnax's info keys: the ones 1.0 added are gone, every entry is per env (as pqn_gymnax masks them).
    assert set(info5) == set(info) - set(anchors.NEW_INFO_KEYS)
    assert {"returned_episode", "returned_episode_returns"} <= set(info5)
    for value in info5.values():
        assert value.shape == done.shape
    np.testing.assert_array_equal(info5["returned_episode"], done)


def test_stubs_stand_in_only_for_what_is_missing():
    modules = {}
    inserted = anchors.install_stubs(modules)
    assert set(inserted) == set(modules)
    for name in inserted:
        assert modules[name].__spec__.name == name
    for name in ("wandb", "hydra", "omegaconf", "safetensors"):
        assert (name in inserted) == (importlib.util.find_spec(name) is None)
    if "hydra" in modules:

        def f():
            return 1

        assert modules["hydra"].main(version_base=None, config_path="./config")(f) is f
    if "wandb" in modules:
        assert modules["wandb"].log({"x": 1}) is None
    if "safetensors" in modules:
        assert modules["safetensors"].flax is modules["safetensors.flax"]
        with pytest.raises(NotImplementedError):
            modules["safetensors.flax"].save_file({}, "x")
    # A package already in sys.modules is never replaced.
    assert anchors.install_stubs({"wandb": "real", "hydra": "real", "omegaconf": "real", "safetensors": "real"}) == []


def test_yaml_reads_exponents_as_numbers_as_hydra_does(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("A: 5e5\nB: 1e-4\nC: 0.0001\nD: 32\nE: '5e5'\nF: CartPole-v1\n")
    assert anchors.load_yaml(path) == {"A": 500000.0, "B": 1e-4, "C": 1e-4, "D": 32, "E": "5e5", "F": "CartPole-v1"}


def test_bad_source_paths_give_one_line_and_exit_2(tmp_path):
    with pytest.raises(anchors.AnchorError, match="purejaxrl/dqn.py"):
        anchors.check_source("dqn", tmp_path)
    (tmp_path / "purejaxql").mkdir()
    (tmp_path / "purejaxql" / "pqn_gymnax.py").write_text("")
    with pytest.raises(anchors.AnchorError, match="pqn_cartpole.yaml"):
        anchors.check_source("pqn", tmp_path)
    env = {"PATH": "/usr/bin:/bin", "RLX_PUREJAXQL": str(tmp_path / "nowhere")}
    cmd = [sys.executable, "bench/bench.py", "--part", "pqn"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stdout == "" and p.stderr.strip().count("\n") == 0 and "RLX_PUREJAXQL" in p.stderr, p.stderr


# Fake checkouts: the files and shapes anchors.py relies on (their import lines, make_train(config) -> train(rng)
# returning {"metrics": ...}, the old five-value step through LogWrapper, jax.tree_map, yaml configs).
FAKE_DQN = """
import jax
import jax.numpy as jnp
import gymnax
import wandb
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper


def make_train(config):
    config["NUM_UPDATES"] = config["TOTAL_TIMESTEPS"] // config["NUM_ENVS"]
    basic_env, env_params = gymnax.make(config["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(basic_env))
    n = config["NUM_ENVS"]

    def train(rng):
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(rng, n), env_params)
        env_state = jax.tree_map(lambda x: x, env_state)

        def update(carry, _):
            env_state, rng = carry
            rng, key = jax.random.split(rng)
            action = jnp.zeros(n, jnp.int32)  # always push left: episodes of about ten steps
            obs, env_state, reward, done, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key, n), env_state, action, env_params
            )
            return (env_state, rng), {"returns": info["returned_episode_returns"].mean(), "done": done}

        _, metrics = jax.lax.scan(update, (env_state, rng), None, config["NUM_UPDATES"])
        return {"metrics": metrics}

    return train


def main():
    config = {
        "NUM_ENVS": 4,
        "TOTAL_TIMESTEPS": 5e5,
        "ENV_NAME": "CartPole-v1",
        "SEED": 0,
        "NUM_SEEDS": 1,
    }
    wandb.init(config=config)
"""

FAKE_PQN = """
import jax
import jax.numpy as jnp
import gymnax
import hydra
import wandb
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper
from omegaconf import OmegaConf
from safetensors.flax import load_file, save_file


def make_train(config):
    assert isinstance(config["TOTAL_TIMESTEPS_DECAY"], float) and config["WANDB_MODE"] == "disabled"
    assert config["alg"]["WANDB_LOG_ALL_SEEDS"] is False
    config["NUM_UPDATES"] = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
    env, env_params = gymnax.make(config["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(env))
    n = config["NUM_ENVS"]

    def train(rng):
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(rng, n), env_params)

        def step(carry, _):
            env_state, rng = carry
            rng, key = jax.random.split(rng)
            obs, env_state, reward, done, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key, n), env_state, jnp.ones(n, jnp.int32), env_params
            )
            return (env_state, rng), info

        def update(carry, _):
            carry, infos = jax.lax.scan(step, carry, None, config["NUM_STEPS"])
            test = jax.tree_util.tree_map(
                lambda x: jnp.nanmean(jnp.where(infos["returned_episode"], x, jnp.nan)), infos
            )
            metrics = {k: v.mean() for k, v in infos.items()}
            metrics.update({f"test/{k}": v for k, v in test.items()}, update_steps=0)
            return carry, metrics

        _, metrics = jax.lax.scan(update, (env_state, rng), None, config["NUM_UPDATES"])
        return {"metrics": metrics}

    return train


@hydra.main(version_base=None, config_path="./config", config_name="config")
def main(config):
    OmegaConf.to_container(config)
"""


def _fake_tree(root: Path) -> Path:
    """Both fake checkouts in one folder (each kind only looks for its own files)."""
    files = {
        "purejaxrl/dqn.py": FAKE_DQN,
        "purejaxql/__init__.py": "",
        "purejaxql/pqn_gymnax.py": FAKE_PQN,
        "purejaxql/config/config.yaml": 'NUM_SEEDS: 1\nSEED: 0\nWANDB_MODE: "disabled"\nalg:\n  WANDB_LOG_ALL_SEEDS: False\n',
        "purejaxql/config/alg/pqn_cartpole.yaml": textwrap.dedent("""\
            TOTAL_TIMESTEPS: 5e5
            TOTAL_TIMESTEPS_DECAY: 5e5
            NUM_ENVS: 4
            NUM_STEPS: 8
            ENV_NAME: "CartPole-v1"
            """),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.slow
def test_fake_sources_run_end_to_end_in_a_subprocess(tmp_path):
    root = _fake_tree(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    dqn = anchors.run_real("dqn", root, seeds=2, steps=400, timeout=120)
    assert dqn["label"] == "reference (PureJaxRL dqn.py, real)" and dqn["seeds"] == 2 and dqn["steps"] == 400
    assert dqn["wall_seconds"] > 0 and dqn["compile_seconds"] > 0 and dqn["run_seconds"] > 0
    assert len(dqn["final_return_per_seed"]) == 2
    assert 5 <= dqn["final_return_mean"] <= 30  # always pushing left ends CartPole episodes in about ten steps

    pqn = anchors.run_real("pqn", root, seeds=2, steps=320, timeout=120)
    assert pqn["label"] == "reference (pqn_gymnax.py, real)" and pqn["updates"] == 10
    assert len(pqn["final_return_per_seed"]) == 2 and 5 <= pqn["final_return_mean"] <= 30
    assert pqn["wall_seconds"] > 0 and pqn["compile_seconds"] > 0

    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written into their tree


@pytest.mark.slow
def test_their_failure_is_one_line(tmp_path):
    (tmp_path / "purejaxrl").mkdir()
    (tmp_path / "purejaxrl" / "dqn.py").write_text("import no_such_module_for_rlx\n")
    with pytest.raises(anchors.AnchorError, match="imports no_such_module_for_rlx, which is not installed"):
        anchors.run_real("dqn", tmp_path, seeds=1, steps=100, timeout=120)
