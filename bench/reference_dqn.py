"""Stand-in for the usual pure-JAX reference DQN, used as the speed baseline.

The reference is PureJaxRL's ``purejaxrl/dqn.py`` (Lu et al., itself a port of
CleanRL's ``dqn_jax.py``).  It cannot be downloaded here and its code is not
copied; this module is an independent re-implementation of the same structure
and algorithm so that its run time is representative of the reference:

* one ``jax.jit(make_train(config))``; ``train(rng)`` is a single
  ``jax.lax.scan`` over ``TOTAL_TIMESTEPS // NUM_ENVS`` iterations;
* each iteration: epsilon-greedy actions from the online Q-network for
  ``NUM_ENVS`` vmapped gymnax envs (auto-resetting ``step``, wrapped in
  gymnax's ``FlattenObservationWrapper`` + ``LogWrapper``), the transition is
  added to a flashbax flat item buffer, then ``lax.cond(is_learn_time, ...)``
  does one DQN update (target-net max over next-obs Q values, one-step TD
  target masked by ``1 - done``, mean-squared error on the chosen action's Q,
  one Adam step on a flax ``TrainState``), then a second ``lax.cond`` updates
  the target net every ``TARGET_UPDATE_INTERVAL`` timesteps with
  ``optax.incremental_update(..., TAU)``;
* several seeds run as ``jax.jit(jax.vmap(make_train(config)))(rngs)``.

If flashbax cannot be imported, a small on-device ring buffer with the same
sampling semantics (uniform (t, t+1) pairs from one env's time axis) is used
instead; ``run()`` reports which one was used under ``"buffer"``.

Deliberate difference: the reference overwrites the training key with
``PRNGKey(0)`` while building its dummy buffer item, which makes network init
and exploration identical across seeds.  Here a separate dummy key is used, so
seeds really differ.  This does not change the amount of work done.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper
from timing import time_fresh

try:
    import flashbax as fbx
except ImportError:  # pragma: no cover - depends on the environment
    fbx = None

# The anchor settings of the reference DQN on CartPole-v1.
CONFIG: dict[str, Any] = {
    "NUM_ENVS": 10,
    "BUFFER_SIZE": 10_000,
    "BUFFER_BATCH_SIZE": 128,
    "TOTAL_TIMESTEPS": 500_000,
    "EPSILON_START": 1.0,
    "EPSILON_FINISH": 0.05,
    "EPSILON_ANNEAL_TIME": 250_000,
    "TARGET_UPDATE_INTERVAL": 500,
    "LR": 2.5e-4,
    "LEARNING_STARTS": 10_000,
    "TRAINING_INTERVAL": 10,
    "GAMMA": 0.99,
    "TAU": 1.0,
    "ENV_NAME": "CartPole-v1",
    "SEED": 0,
}

# Window (in env steps, summed over envs) for the reported final return.
FINAL_RETURN_WINDOW = 10_000


class QNetwork(nn.Module):
    """MLP Q-function: 120 -> 84 hidden units (ReLU), one output per action."""

    num_actions: int

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        h = nn.relu(nn.Dense(120)(obs))
        h = nn.relu(nn.Dense(84)(h))
        return nn.Dense(self.num_actions)(h)


class Transition(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    reward: jnp.ndarray
    done: jnp.ndarray


class DQNState(TrainState):
    target_params: flax.core.FrozenDict
    timesteps: int
    n_updates: int


# --------------------------------------------------------------------------
# Replay buffer
# --------------------------------------------------------------------------


class _Pair(NamedTuple):
    first: Any
    second: Any


class _Sample(NamedTuple):
    experience: _Pair


class _RingState(NamedTuple):
    data: Any  # pytree, leaves shaped (num_envs, time_len, ...)
    index: jnp.ndarray  # next time slot to write
    full: jnp.ndarray  # whether the time axis has wrapped around


class _RingBuffer(NamedTuple):
    init: Any
    add: Any
    sample: Any
    can_sample: Any


def _make_ring_buffer(max_length, min_length, sample_batch_size, add_batch_size):
    """Fallback with flashbax flat-buffer semantics (used only without flashbax).

    Storage is (add_batch_size, max_length // add_batch_size) per leaf; one
    ``add`` writes one time slot for every env; ``sample`` draws uniform
    (t, t + 1) pairs from a random env's row, never straddling the write head.
    """
    time_len = max_length // add_batch_size
    min_time = max(min_length // add_batch_size, 2)

    def init(item):
        data = jax.tree.map(
            lambda x: jnp.zeros((add_batch_size, time_len) + jnp.shape(x), jnp.asarray(x).dtype),
            item,
        )
        return _RingState(data, jnp.array(0, jnp.int32), jnp.array(False))

    def add(state, batch):
        data = jax.tree.map(lambda buf, x: buf.at[:, state.index].set(x), state.data, batch)
        index = (state.index + 1) % time_len
        return _RingState(data, index, state.full | (index == 0))

    def can_sample(state):
        return state.full | (state.index >= min_time)

    def sample(state, rng):
        rng_env, rng_t = jax.random.split(rng)
        env_idx = jax.random.randint(rng_env, (sample_batch_size,), 0, add_batch_size)
        # Valid starts: any slot whose successor was written after it.
        num_valid = jnp.where(state.full, time_len - 1, state.index - 1)
        offset = jax.random.randint(rng_t, (sample_batch_size,), 0, jnp.maximum(num_valid, 1))
        start = jnp.where(state.full, state.index, 0)
        t0 = (start + offset) % time_len
        t1 = (t0 + 1) % time_len
        first = jax.tree.map(lambda buf: buf[env_idx, t0], state.data)
        second = jax.tree.map(lambda buf: buf[env_idx, t1], state.data)
        return _Sample(_Pair(first, second))

    return _RingBuffer(init, add, sample, can_sample)


def _make_buffer(config):
    kwargs = {
        "max_length": config["BUFFER_SIZE"],
        "min_length": config["BUFFER_BATCH_SIZE"],
        "sample_batch_size": config["BUFFER_BATCH_SIZE"],
        "add_batch_size": config["NUM_ENVS"],
    }
    if fbx is None:
        return _make_ring_buffer(**kwargs)
    buffer = fbx.make_flat_buffer(add_sequences=False, **kwargs)
    # The reference wraps the buffer functions in jax.jit (nested inside the
    # outer jit); kept for structural fidelity.
    return buffer.replace(
        init=jax.jit(buffer.init),
        add=jax.jit(buffer.add, donate_argnums=0),
        sample=jax.jit(buffer.sample),
        can_sample=jax.jit(buffer.can_sample),
    )


def buffer_name() -> str:
    if fbx is None:
        return "fallback on-device ring buffer (flashbax not importable)"
    try:
        version = importlib.metadata.version("flashbax")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "?"
    return f"flashbax {version} make_flat_buffer"


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def make_train(config):
    config = dict(config)
    num_envs = int(config["NUM_ENVS"])
    num_updates = int(config["TOTAL_TIMESTEPS"]) // num_envs

    base_env, env_params = gymnax.make(config["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(base_env))
    num_actions = env.action_space(env_params).n

    def reset_envs(rng):
        keys = jax.random.split(rng, num_envs)
        return jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)

    def step_envs(rng, env_state, action):
        keys = jax.random.split(rng, num_envs)
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, env_state, action, env_params)

    network = QNetwork(num_actions=num_actions)
    buffer = _make_buffer(config)

    eps_start = config["EPSILON_START"]
    eps_finish = config["EPSILON_FINISH"]
    eps_slope = (eps_finish - eps_start) / config["EPSILON_ANNEAL_TIME"]

    def select_actions(rng, q_values, timesteps):
        rng_random, rng_coin = jax.random.split(rng)
        epsilon = jnp.maximum(eps_start + eps_slope * timesteps, eps_finish)
        greedy = jnp.argmax(q_values, axis=-1)
        random_actions = jax.random.randint(rng_random, greedy.shape, 0, q_values.shape[-1])
        explore = jax.random.uniform(rng_coin, greedy.shape) < epsilon
        return jnp.where(explore, random_actions, greedy)

    def train(rng):
        rng, rng_reset, rng_init, rng_loop = jax.random.split(rng, 4)
        obs, env_state = reset_envs(rng_reset)

        # The buffer is initialised from one single-env transition.
        dummy_key = jax.random.PRNGKey(0)
        dummy_action = base_env.action_space().sample(dummy_key)
        _, dummy_state = env.reset(dummy_key, env_params)
        dummy_obs, _, dummy_reward, dummy_term, dummy_trunc, _ = env.step(
            dummy_key, dummy_state, dummy_action, env_params
        )
        dummy_done = jnp.logical_or(dummy_term, dummy_trunc)
        buffer_state = buffer.init(Transition(dummy_obs, dummy_action, dummy_reward, dummy_done))

        params = network.init(rng_init, jnp.zeros(env.observation_space(env_params).shape))
        train_state = DQNState.create(
            apply_fn=network.apply,
            params=params,
            target_params=jax.tree.map(jnp.copy, params),
            tx=optax.adam(learning_rate=config["LR"]),
            timesteps=0,
            n_updates=0,
        )

        def learn(train_state, buffer_state, rng):
            batch = buffer.sample(buffer_state, rng).experience
            now, nxt = batch.first, batch.second
            next_q = network.apply(train_state.target_params, nxt.obs).max(axis=-1)
            td_target = now.reward + (1.0 - now.done) * config["GAMMA"] * next_q

            def loss_fn(p):
                q = network.apply(p, now.obs)
                q_taken = jnp.take_along_axis(q, now.action[:, None], axis=-1)[:, 0]
                return jnp.mean(jnp.square(q_taken - td_target))

            loss, grads = jax.value_and_grad(loss_fn)(train_state.params)
            train_state = train_state.apply_gradients(grads=grads)
            return train_state.replace(n_updates=train_state.n_updates + 1), loss

        def skip_learn(train_state, buffer_state, rng):
            return train_state, jnp.array(0.0)

        def sync_target(train_state):
            new_target = optax.incremental_update(train_state.params, train_state.target_params, config["TAU"])
            return train_state.replace(target_params=new_target)

        def iteration(carry, _):
            train_state, buffer_state, env_state, obs, rng = carry

            # Act in all envs.
            rng, rng_act, rng_step, rng_learn = jax.random.split(rng, 4)
            q_values = network.apply(train_state.params, obs)
            action = select_actions(rng_act, q_values, train_state.timesteps)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(rng_step, env_state, action)
            # gymnax >= 1.0 splits the old ``done``; the reference (older
            # gymnax) stores and masks with their union, as done here.
            done = jnp.logical_or(terminated, truncated)
            train_state = train_state.replace(timesteps=train_state.timesteps + num_envs)

            # Store (obs, action, reward, done); next obs is the next slot.
            buffer_state = buffer.add(buffer_state, Transition(obs, action, reward, done))

            # Learn every TRAINING_INTERVAL steps once warm-up is over.
            t = train_state.timesteps
            should_learn = (
                buffer.can_sample(buffer_state)
                & (t > config["LEARNING_STARTS"])
                & (t % config["TRAINING_INTERVAL"] == 0)
            )
            train_state, loss = jax.lax.cond(should_learn, learn, skip_learn, train_state, buffer_state, rng_learn)

            # Target network update.
            train_state = jax.lax.cond(
                train_state.timesteps % config["TARGET_UPDATE_INTERVAL"] == 0,
                sync_target,
                lambda s: s,
                train_state,
            )

            metrics = {
                "timesteps": train_state.timesteps,
                "updates": train_state.n_updates,
                "loss": loss.mean(),
                "returns": info["returned_episode_returns"].mean(),
            }
            return (train_state, buffer_state, env_state, next_obs, rng), metrics

        carry = (train_state, buffer_state, env_state, obs, rng_loop)
        carry, metrics = jax.lax.scan(iteration, carry, None, num_updates)
        return {"runner_state": carry, "metrics": metrics}

    return train


# --------------------------------------------------------------------------
# Benchmark entry point
# --------------------------------------------------------------------------


def _build(num_seeds: int, total_timesteps: int, vmap_single: bool):
    """Fresh jitted train function and its argument (new closure: no cache hits)."""
    config = dict(CONFIG, TOTAL_TIMESTEPS=int(total_timesteps))
    rng = jax.random.PRNGKey(config["SEED"])
    train = make_train(config)
    if num_seeds == 1 and not vmap_single:
        return jax.jit(train), rng
    return jax.jit(jax.vmap(train)), jax.random.split(rng, num_seeds)


def run(num_seeds: int, total_timesteps: int = 500_000, vmap_single: bool = False) -> dict:
    """Time the reference-style DQN on CartPole-v1 for ``num_seeds`` seeds.

    Timings (seconds, all blocked with ``jax.block_until_ready``):

    * ``compile_seconds``: ``jax.jit(train).lower(args).compile()`` on a freshly
      built train function (tracing + lowering + XLA compile).
    * ``run_seconds``: one call of that compiled executable (pure execution).
    * ``wall_seconds``: one call of another freshly built ``jax.jit(train)``
      (trace + compile + execute, i.e. what a user of the reference waits).

    One seed uses ``jax.jit(train)(rng)``; several seeds use
    ``jax.jit(jax.vmap(train))(jax.random.split(rng, n))``.

    ``final_return_mean``: per seed, the mean over the last
    ``FINAL_RETURN_WINDOW`` env steps of the scan's ``returns`` metric (mean
    over envs of the last completed episode return); then averaged over seeds.
    """
    num_seeds = int(num_seeds)
    steps = int(total_timesteps)

    out, timings = time_fresh(lambda: _build(num_seeds, steps, vmap_single))

    returns = out["metrics"]["returns"]
    if returns.ndim == 1:
        returns = returns[None]
    window = max(1, FINAL_RETURN_WINDOW // CONFIG["NUM_ENVS"])
    per_seed = jnp.mean(returns[:, -window:], axis=1)
    return {
        "seeds": num_seeds,
        "steps": steps,
        **timings,
        "final_return_mean": float(jnp.mean(per_seed)),
        "final_return_per_seed": [float(x) for x in per_seed],
        "buffer": buffer_name(),
        "backend": jax.default_backend(),
    }


def main() -> None:
    print(f"reference DQN (PureJaxRL-style), buffer: {buffer_name()}")
    for n in (1, 8):
        r = run(n)
        print(
            f"seeds={r['seeds']} steps={r['steps']} "
            f"compile={r['compile_seconds']:.2f}s run={r['run_seconds']:.2f}s "
            f"wall(fresh jit call)={r['wall_seconds']:.2f}s "
            f"final_return_mean={r['final_return_mean']:.1f} "
            f"per_seed={[round(x, 1) for x in r['final_return_per_seed']]}"
        )


if __name__ == "__main__":
    main()
