"""Stand-in for the PQN authors' training script, used as the speed baseline for rlx's PQN.

The reference is purejaxql's ``purejaxql/pqn_gymnax.py`` (Gallici et al. 2024,
"Simplifying Deep Temporal Difference Learning") run with its ``pqn_cartpole``
config.  Its code is not copied; this module is an independent
re-implementation of the same structure and algorithm so that its run time is
representative of the reference:

* one ``jax.jit(jax.vmap(make_train(config)))(rngs)`` over seeds (the authors
  vmap even a single seed); ``train(rng)`` is a single ``jax.lax.scan`` over
  ``TOTAL_TIMESTEPS // NUM_STEPS // NUM_ENVS`` updates;
* each update: a ``lax.scan`` rollout of ``NUM_STEPS`` steps in ``NUM_ENVS``
  vmapped gymnax envs (auto-resetting ``step``, wrapped in gymnax's
  ``FlattenObservationWrapper`` + ``LogWrapper``), epsilon-greedy per env from
  the online Q-network (epsilon linear from ``EPS_START`` to ``EPS_FINISH``
  over ``EPS_DECAY`` of the updates), rewards scaled by ``REW_SCALE``; the
  transitions keep obs, action, reward, done, next obs and the Q-values;
* Q(lambda) targets by a backward ``lax.scan`` (the max of the stored next
  Q-values, masked by ``1 - done``, bootstrapping from the max Q of the last
  next obs), with the reference's quirk kept: the step before last also
  bootstraps from that last next obs, not from its own next obs;
* ``NUM_EPOCHS`` x ``NUM_MINIBATCHES`` updates (nested ``lax.scan``s; each
  epoch shuffles all ``NUM_STEPS * NUM_ENVS`` transitions and their targets
  with one permutation), loss ``0.5 * mean((Q(s, a) - target) ** 2)`` with
  ``train=True`` and mutable ``batch_stats``, on a flax ``TrainState`` with
  ``clip_by_global_norm(MAX_GRAD_NORM)`` + RAdam, its learning rate linear
  from ``LR`` to 1e-20 over all gradient steps of ``TOTAL_TIMESTEPS_DECAY``;
* network: an input BatchNorm whose output is unused (``NORM_INPUT`` false:
  the reference builds it anyway, so its running statistics are still
  updated every gradient step), then ``NUM_LAYERS`` x (Dense ``HIDDEN_SIZE``,
  LayerNorm, ReLU), then a linear head;
* greedy testing during training: once before the loop, then inside the loop
  whenever ``n_updates % int(NUM_UPDATES * TEST_INTERVAL) == 0`` (a
  ``lax.cond``; the predicate is not batched, so under vmap it stays a real
  branch): ``TEST_NUM_ENVS`` fresh envs run ``max_steps_in_episode`` (500)
  steps with epsilon ``EPS_TEST`` = 0, and the metric is the nan-mean of the
  infos at steps that finished an episode.  At the anchor settings that is
  244 updates with a test every 12 of them: 21 tests in all.

Adaptation: gymnax 1.0's ``step`` returns (obs, state, reward, terminated,
truncated, info); the reference (older gymnax) had one ``done``, which is
rebuilt here as ``terminated | truncated`` (so, as in the reference, CartPole's
time limit counts as terminal).  Info entries that are not one value per env
(gymnax 1.0's ``final_observation``) are left out of the metrics; the older
gymnax had no such entry.

Differences that do not change the work done: PRNG keys are split
differently (e.g. the reference's test reuses one key for actions and env
steps), and one permutation index is gathered per epoch instead of permuting
each leaf with the same key.  wandb logging is off, as in the config.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper
from timing import time_fresh

# The reference's pqn_cartpole settings (purejaxql/config/alg/pqn_cartpole.yaml).
CONFIG: dict[str, Any] = {
    "TOTAL_TIMESTEPS": 500_000,
    "TOTAL_TIMESTEPS_DECAY": 500_000,  # schedules keep this horizon whatever TOTAL_TIMESTEPS is
    "NUM_ENVS": 32,
    "NUM_STEPS": 64,
    "EPS_START": 1.0,
    "EPS_FINISH": 0.2,
    "EPS_DECAY": 0.2,
    "NUM_MINIBATCHES": 16,
    "NUM_EPOCHS": 4,
    "HIDDEN_SIZE": 256,
    "NUM_LAYERS": 2,
    "LR": 1e-4,
    "MAX_GRAD_NORM": 10.0,
    "REW_SCALE": 0.1,
    "GAMMA": 0.99,
    "LAMBDA": 0.95,
    "ENV_NAME": "CartPole-v1",
    "TEST_INTERVAL": 0.05,
    "TEST_NUM_ENVS": 128,
    "EPS_TEST": 0.0,
    "SEED": 0,
}

TEST_RETURN = "test/returned_episode_returns"


class QNetwork(nn.Module):
    """Unused input BatchNorm, then depth x (Dense, LayerNorm, ReLU), then one output per action."""

    num_actions: int
    width: int = 256
    depth: int = 2

    @nn.compact
    def __call__(self, obs: jnp.ndarray, train: bool) -> jnp.ndarray:
        nn.BatchNorm(use_running_average=not train)(obs)  # output discarded, statistics kept
        h = obs
        for _ in range(self.depth):
            h = nn.relu(nn.LayerNorm()(nn.Dense(self.width)(h)))
        return nn.Dense(self.num_actions)(h)


class Step(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    reward: jnp.ndarray
    done: jnp.ndarray
    next_obs: jnp.ndarray
    q_val: jnp.ndarray


class PQNState(TrainState):
    batch_stats: Any
    timesteps: int
    n_updates: int
    grad_steps: int


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def make_env(config):
    """The wrapped env and vmapped reset/step; step returns gymnax < 1.0's five values."""
    base_env, env_params = gymnax.make(config["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(base_env))

    def reset(rng, n):
        return jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(rng, n), env_params)

    def step(rng, env_state, action):
        keys = jax.random.split(rng, action.shape[0])
        obs, env_state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            keys, env_state, action, env_params
        )
        info = {k: v for k, v in info.items() if v.shape == action.shape}
        return obs, env_state, reward, jnp.logical_or(term, trunc), info

    return env, env_params, reset, step


def explore(rng, q_values, eps):
    """One env's epsilon-greedy action (vmapped over envs)."""
    rng_action, rng_coin = jax.random.split(rng)
    random_action = jax.random.randint(rng_action, (), 0, q_values.shape[-1])
    return jnp.where(jax.random.uniform(rng_coin) < eps, random_action, jnp.argmax(q_values, axis=-1))


def lambda_targets(steps: Step, last_q: jnp.ndarray, gamma: float, lam: float) -> jnp.ndarray:
    """Q(lambda) returns, computed backward over the rollout's time axis."""
    boot = last_q * (1.0 - steps.done[-1].astype(jnp.float32))
    # Max Q of each step's successor; like the reference, the step before last uses the final next obs too.
    next_q = jnp.concatenate([steps.q_val[1:-1].max(axis=-1), boot[None], boot[None]])

    def backward(g_next, x):
        reward, done, q_next = x
        g = reward + (1.0 - done) * gamma * ((1.0 - lam) * q_next + lam * g_next)
        return g, g

    _, targets = jax.lax.scan(backward, boot, (steps.reward, steps.done.astype(jnp.float32), next_q), reverse=True)
    return targets


def make_train(config):
    config = dict(config)
    num_envs, num_steps = int(config["NUM_ENVS"]), int(config["NUM_STEPS"])
    batch = num_envs * num_steps
    num_minibatches, num_epochs = int(config["NUM_MINIBATCHES"]), int(config["NUM_EPOCHS"])
    num_updates = int(config["TOTAL_TIMESTEPS"]) // num_steps // num_envs
    decay_updates = int(config["TOTAL_TIMESTEPS_DECAY"]) // num_steps // num_envs
    assert batch % num_minibatches == 0, "minibatches must divide the rollout"
    test_every = max(1, int(num_updates * config["TEST_INTERVAL"]))
    num_test = int(config["TEST_NUM_ENVS"])

    env, env_params, reset_envs, step_envs = make_env(config)
    test_len = int(env_params.max_steps_in_episode)
    network = QNetwork(env.action_space(env_params).n, config["HIDDEN_SIZE"], config["NUM_LAYERS"])
    eps_schedule = optax.linear_schedule(config["EPS_START"], config["EPS_FINISH"], config["EPS_DECAY"] * decay_updates)
    lr_schedule = optax.linear_schedule(config["LR"], 1e-20, decay_updates * num_minibatches * num_epochs)

    def q_values(state, obs):
        return network.apply({"params": state.params, "batch_stats": state.batch_stats}, obs, train=False)

    def act(state, rng, obs, eps):
        keys = jax.random.split(rng, obs.shape[0])
        q = q_values(state, obs)
        return jax.vmap(explore)(keys, q, jnp.full(obs.shape[0], eps)), q

    def greedy_test(state, rng):
        rng_reset, rng_loop = jax.random.split(rng)
        obs, env_state = reset_envs(rng_reset, num_test)

        def body(carry, _):
            obs, env_state, rng = carry
            rng, rng_act, rng_env = jax.random.split(rng, 3)
            action, _ = act(state, rng_act, obs, config["EPS_TEST"])
            obs, env_state, _, _, info = step_envs(rng_env, env_state, action)
            return (obs, env_state, rng), info

        _, infos = jax.lax.scan(body, (obs, env_state, rng_loop), None, test_len)
        ended = infos["returned_episode"]
        return jax.tree.map(lambda x: jnp.nanmean(jnp.where(ended, x, jnp.nan)), infos)

    def rollout(state, obs, env_state, rng):
        eps = eps_schedule(state.n_updates)

        def body(carry, _):
            obs, env_state, rng = carry
            rng, rng_act, rng_env = jax.random.split(rng, 3)
            action, q = act(state, rng_act, obs, eps)
            next_obs, env_state, reward, done, info = step_envs(rng_env, env_state, action)
            step = Step(obs, action, config["REW_SCALE"] * reward, done, next_obs, q)
            return (next_obs, env_state, rng), (step, info)

        (obs, env_state, _), (steps, infos) = jax.lax.scan(body, (obs, env_state, rng), None, num_steps)
        return obs, env_state, steps, infos

    def sgd_step(state, minibatch):
        steps, target = minibatch

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            q, mutated = network.apply(variables, steps.obs, train=True, mutable=["batch_stats"])
            q_taken = jnp.take_along_axis(q, steps.action[:, None], axis=-1)[:, 0]
            return 0.5 * jnp.mean(jnp.square(q_taken - target)), (mutated["batch_stats"], q_taken)

        (loss, (stats, q_taken)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads)
        return state.replace(batch_stats=stats, grad_steps=state.grad_steps + 1), (loss, q_taken)

    def epoch(carry, _):
        state, steps, targets, rng = carry
        rng, rng_perm = jax.random.split(rng)
        order = jax.random.permutation(rng_perm, batch)

        def shuffle(x):
            x = x.reshape(batch, *x.shape[2:])[order]
            return x.reshape(num_minibatches, -1, *x.shape[1:])

        minibatches = jax.tree.map(shuffle, (steps, targets))
        state, (loss, q_taken) = jax.lax.scan(sgd_step, state, minibatches)
        return (state, steps, targets, rng), (loss, q_taken)

    def update(carry, _):
        state, obs, env_state, test_metrics, rng = carry
        rng, rng_roll, rng_learn, rng_test = jax.random.split(rng, 4)
        obs, env_state, steps, infos = rollout(state, obs, env_state, rng_roll)
        state = state.replace(timesteps=state.timesteps + batch)
        last_q = q_values(state, steps.next_obs[-1]).max(axis=-1)
        targets = lambda_targets(steps, last_q, config["GAMMA"], config["LAMBDA"])
        (state, *_), (loss, q_taken) = jax.lax.scan(epoch, (state, steps, targets, rng_learn), None, num_epochs)
        state = state.replace(n_updates=state.n_updates + 1)
        test_metrics = jax.lax.cond(
            state.n_updates % test_every == 0, lambda: greedy_test(state, rng_test), lambda: test_metrics
        )
        metrics = {
            "env_step": state.timesteps,
            "update_steps": state.n_updates,
            "grad_steps": state.grad_steps,
            "td_loss": loss.mean(),
            "qvals": q_taken.mean(),
            **{k: v.mean() for k, v in infos.items()},
            **{f"test/{k}": v for k, v in test_metrics.items()},
        }
        return (state, obs, env_state, test_metrics, rng), metrics

    def train(rng):
        rng_init, rng_test, rng_reset, rng_loop = jax.random.split(rng, 4)
        variables = network.init(rng_init, jnp.zeros((1, *env.observation_space(env_params).shape)), train=False)
        tx = optax.chain(optax.clip_by_global_norm(config["MAX_GRAD_NORM"]), optax.radam(learning_rate=lr_schedule))
        state = PQNState.create(
            apply_fn=network.apply,
            params=variables["params"],
            batch_stats=variables["batch_stats"],
            tx=tx,
            timesteps=0,
            n_updates=0,
            grad_steps=0,
        )
        test_metrics = greedy_test(state, rng_test)
        obs, env_state = reset_envs(rng_reset, num_envs)
        carry = (state, obs, env_state, test_metrics, rng_loop)
        carry, metrics = jax.lax.scan(update, carry, None, num_updates)
        return {"runner_state": carry, "metrics": metrics}

    return train


# --------------------------------------------------------------------------
# Benchmark entry point
# --------------------------------------------------------------------------


def _build(num_seeds: int, total_timesteps: int):
    """Fresh ``jax.jit(jax.vmap(train))`` and its keys (new closure: no cache hits)."""
    config = dict(CONFIG, TOTAL_TIMESTEPS=int(total_timesteps))
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), num_seeds)
    return jax.jit(jax.vmap(make_train(config))), rngs


def run(num_seeds: int, total_timesteps: int = 500_000) -> dict:
    """Time the reference-style PQN on CartPole-v1 for ``num_seeds`` seeds (always vmapped, like the reference).

    Timings (seconds, all blocked with ``jax.block_until_ready``):

    * ``compile_seconds``: ``jax.jit(jax.vmap(train)).lower(rngs).compile()`` on a
      freshly built train function (tracing + lowering + XLA compile).
    * ``run_seconds``: one call of that compiled executable (pure execution).
    * ``wall_seconds``: one call of another freshly built jitted train
      (trace + compile + execute, i.e. what a user of the reference waits).

    ``final_return_per_seed``: the last greedy test during training (the
    reference's ``test/returned_episode_returns``: mean return of the episodes
    that 128 greedy envs finished in 500 steps), per seed; at 500k steps it is
    the test after update 240 of 244.  ``final_return_mean`` is its mean over
    seeds.  ``final_train_return_per_seed`` is the exploring policy's return
    (the mean over the last update's rollout of ``returned_episode_returns``).
    """
    num_seeds = int(num_seeds)
    steps = int(total_timesteps)

    out, timings = time_fresh(lambda: _build(num_seeds, steps))

    metrics = out["metrics"]
    per_seed = metrics[TEST_RETURN][:, -1]
    return {
        "seeds": num_seeds,
        "steps": steps,
        "updates": int(metrics["update_steps"].shape[1]),
        **timings,
        "final_return_mean": float(jnp.mean(per_seed)),
        "final_return_per_seed": [float(x) for x in per_seed],
        "final_train_return_per_seed": [float(x) for x in metrics["returned_episode_returns"][:, -1]],
        "backend": jax.default_backend(),
    }


def main() -> None:
    """Print one JSON line: the result of ``run(--seeds, --steps)``."""
    ap = argparse.ArgumentParser(description="Time the reference-style PQN (purejaxql pqn_cartpole) on CartPole-v1.")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=CONFIG["TOTAL_TIMESTEPS"])
    args = ap.parse_args()
    print(json.dumps(run(args.seeds, args.steps)))


if __name__ == "__main__":
    main()
