"""What every agent shares: the Agent contract, typed carries, one env step, the optimizer, evaluation, hooks.

An agent module (dqn.py, pqn.py) keeps only what is its own (its loss and its update schedule) and builds
on these pieces:

- `Parts`: the static things an agent is made of (config, env spec, strategy, network, optimizer, envs per
  seed), built once by `build`;
- `TrainState` (everything one seed carries between chunks) and `Sums` (running sums inside a chunk);
- `env_step`: one step of all envs with the strategy's actions, reward clipping, host-env reset steps
  masked and episode bookkeeping; `apply_update`: one optimizer step with the (decaying) batched lr;
- `greedy_evaluator`, `diagnoser`, `episode_restarter`, and `solve_tracker`, the hook that tracks whether
  the greedy policy is optimal on fixed-length envs with a known optimum (the N-chain).

`make_train(cfg, spec) -> Agent`; the runner calls `jax.jit(jax.vmap(agent.chunk, in_axes=(0, 0, None,
None)))` over seeds: the state and hyperparameters are per seed, the step counter is shared. Because the step
counter is not batched, schedule decisions taken from it are real `lax.cond` branches under vmap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlx import config as C
from rlx import exploration
from rlx.envs import EnvSpec
from rlx.nets import greedy, make_q_network


class Agent(NamedTuple):
    """The pure functions of one agent, for one seed (the runner vmaps them)."""

    init: Callable  # (key, hp) -> TrainState
    # (state, hp, step0, num_blocks) -> (state, metrics, snapshots); num_blocks an int32 scalar, a Python int
    # when static_blocks. snapshots: the params every path.every_updates updates, stacked on a leading axis (()
    # when there are none)
    chunk: Callable
    evaluate: Callable  # (params, key) -> returns of cfg.eval.episodes greedy episodes
    block_steps: int  # env steps per block; chunks are whole blocks
    restart_episodes: Callable  # (state, key) -> state with every env at the start of a new episode
    diagnose: Callable  # (params, probe_obs) -> dict of representation-health scalars (rlx.diagnostics)
    # True when the chunk's outputs depend on num_blocks (stacked snapshots): one program per chunk length. Else
    # one program serves every length, and the last, shorter chunk of a run costs no second compile.
    static_blocks: bool = False


class TrainState(NamedTuple):
    """Everything one seed carries between chunks (all arrays: checkpointable as is)."""

    params: Any
    target: Any  # the target network's parameters (() without one)
    opt_state: Any
    buffer: Any  # rlx.replay.Buffer (() without replay)
    env_state: Any
    obs: jax.Array
    explore: Any  # the strategy's state
    ep_return: jax.Array  # running undiscounted return of each env's current episode
    solve: jax.Array  # int32 [greedy-optimal streak, episodes, episode when solved or -1] (see solve_tracker)
    key: jax.Array
    pptb: Any = ()  # rlx.pptb.PPTBState when pptb.enabled


class Sums(NamedTuple):
    """Running sums a chunk carries. Scan bodies add to these instead of stacking per-step outputs: stacked
    outputs under vmap made each step cost O(scan length) (measured: 36 us/step at 50 steps per block, 364 at 500)."""

    return_sum: jax.Array  # returns of the episodes that finished
    episodes: jax.Array
    loss_sum: jax.Array
    q_sum: jax.Array
    updates: jax.Array
    acts: jax.Array  # acting steps (all envs at once)
    explore: dict  # the strategy's act metrics, summed; reported as means per acting step
    extra: dict  # the agent's own sums (DQN: PPTB)


class Parts(NamedTuple):
    """The static pieces an agent is built from."""

    cfg: C.Config
    spec: EnvSpec
    strategy: exploration.Strategy
    net: Any  # the flax Q-network
    tx: optax.GradientTransformationExtraArgs
    num_envs: int  # envs per seed

    def q_apply(self, params, obs, key=None):
        """Q-values; a key samples fresh network noise (NoisyNets), None uses the mean weights."""
        return self.net.apply(params, obs, rngs=None if key is None else {"noise": key})


def hparams(cfg) -> C.HParams:
    """The batched hyperparameters of a config, as float32 scalars."""
    return C.HParams(*(jnp.asarray(C.get(cfg, k), jnp.float32) for k in C.HPARAMS))


def q_network(cfg, spec: EnvSpec, strategy: exploration.Strategy, agent_options: dict):
    """The Q-network. Network options are resolved in one order, later wins: the config's net.*, then what the
    agent requires (PQN: layer_norm=True), then what the strategy requires (parameter noise: its param.layer_norm;
    NoisyNets: noisy layers)."""
    options = {**agent_options, **strategy.net}
    return make_q_network(cfg.net, spec.obs_shape, spec.num_actions, **options)


def build(cfg, spec: EnvSpec, num_envs: int, agent_options: dict | None = None) -> Parts:
    """The strategy, network and optimizer of an agent with num_envs envs per seed."""
    strategy = exploration.make(cfg, spec.num_actions)
    net = q_network(cfg, spec, strategy, agent_options or {})
    return Parts(cfg, spec, strategy, net, make_optimizer(cfg.optim, strategy), num_envs)


# ---------------------------------------------------------------------------------------------
# Optimizer


# optim.name -> the optimizer's scaling (without the learning rate, which the agent applies)
OPTIMIZERS = {
    "adam": lambda o: optax.scale_by_adam(eps=o.eps),
    "radam": lambda o: optax.scale_by_radam(eps=o.eps),
    "rmsprop": lambda o: optax.scale_by_rms(decay=0.95, eps=o.eps),
    "sgd": lambda o: optax.identity(),
}


def make_optimizer(o: C.OptimConfig, strategy=None) -> optax.GradientTransformationExtraArgs:
    """Gradient clipping plus the optimizer's scaling, wrapped by the strategy's optimizer if it has one; the
    (batched, decaying) lr is applied by `apply_update`, which passes it (eta) and a key to every update."""
    tx = OPTIMIZERS[o.name](o)
    if o.max_grad_norm > 0:  # 0 turns clipping off (the anchor does not clip)
        tx = optax.chain(optax.clip_by_global_norm(o.max_grad_norm), tx)
    if strategy is not None and strategy.optimizer is not None:
        tx = strategy.optimizer(tx)
    return optax.with_extra_args_support(tx)


def budget_schedules(cfg) -> dict[str, str]:
    """{key: what it does} for the config keys, switched on in cfg, whose schedule spans the whole budget `steps`.
    Every other schedule counts absolute env steps (explore.eps_decay_steps, dqn.learning_starts, the *every*
    periods), so it does not change when a run is continued past its budget."""
    return {"optim.lr_decay": "the lr falls linearly to 0 at the budget"} if cfg.optim.lr_decay else {}


def apply_update(parts: Parts, params, opt_state, grads, hp, step, key):
    """One optimizer step at env step `step`: returns (params, opt_state). With optim.lr_decay the lr falls
    linearly to 0 over the run."""
    lr = hp.lr * (1.0 - step / parts.cfg.steps) if parts.cfg.optim.lr_decay else hp.lr
    updates, opt_state = parts.tx.update(grads, opt_state, params, eta=lr, key=key)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state


# ---------------------------------------------------------------------------------------------
# State and one env step


def init_state(parts: Parts, key) -> TrainState:
    """A fresh seed: initial network, envs reset, strategy state; no target, replay or PPTB (agents add theirs)."""
    k_net, k_env, k_explore, key = jax.random.split(key, 4)
    params = parts.net.init(k_net, jnp.zeros((1,) + tuple(parts.spec.obs_shape), jnp.float32))
    obs, env_state = parts.spec.reset_batch(jax.random.split(k_env, parts.num_envs))
    return TrainState(
        params=params,
        target=(),
        opt_state=parts.tx.init(params),
        buffer=(),
        env_state=env_state,
        obs=obs,
        explore=parts.strategy.init(k_explore, params, parts.num_envs),
        ep_return=jnp.zeros((parts.num_envs,), jnp.float32),
        solve=jnp.array([0, 0, -1], jnp.int32),
        key=key,
    )


def env_step(parts: Parts, ts: TrainState, sums: Sums, hp, step):
    """One env step of all envs with the strategy's actions; returns (state, sums, transition).

    The transition holds obs, action, reward (clipped where the env asks, then times td.reward_scale), next_obs (the true one, also at
    a time limit), terminated and truncated. A host env's reset step (see envs.atari) is stored as terminal
    with reward 0: its "action" was ignored, so it only teaches Q(final observation) = 0, which no target
    ever bootstraps from; it is not counted as an episode end.
    """
    key, k_act, k_env, k_obs = jax.random.split(ts.key, 4)
    actions, explore, ex = parts.strategy.act(ts.explore, k_act, parts.q_apply, ts.params, ts.obs, step, hp)
    out = parts.spec.step_batch(jax.random.split(k_env, parts.num_envs), ts.env_state, actions)
    reward = jnp.sign(out.reward) if parts.spec.clip_reward else out.reward
    if parts.cfg.td.reward_scale != 1.0:  # static: unscaled runs keep their exact numbers
        reward = reward * parts.cfg.td.reward_scale
    transition = dict(
        obs=ts.obs,
        action=actions,
        reward=jnp.where(out.reset_step, 0.0, reward),
        next_obs=out.next_obs,
        terminated=out.terminated | out.reset_step,
        truncated=out.truncated,
    )
    done = out.terminated | out.truncated  # never set on a reset step
    ep_return = ts.ep_return + out.reward
    sums = sums._replace(
        return_sum=sums.return_sum + jnp.sum(jnp.where(done, ep_return, 0.0)),
        episodes=sums.episodes + jnp.sum(done).astype(jnp.float32),
        acts=sums.acts + 1.0,
        explore={k: sums.explore[k] + v for k, v in ex.items()},
    )
    explore = parts.strategy.observe(explore, k_obs, ts.params, done)
    ts = ts._replace(env_state=out.state, obs=out.obs, explore=explore, ep_return=jnp.where(done, 0.0, ep_return),
                     key=key)  # fmt: skip
    return ts, sums, transition


# ---------------------------------------------------------------------------------------------
# Sums and chunk metrics


def zero_sums(parts: Parts, ts: TrainState, hp, extra: tuple = ()) -> Sums:
    """Zero sums for a chunk: the loop's own, the strategy's act metrics (by shape) and the agent's `extra`."""
    ex = jax.eval_shape(lambda: parts.strategy.act(ts.explore, ts.key, parts.q_apply, ts.params, ts.obs, 0, hp)[2])
    zero = jnp.float32(0.0)
    return Sums(zero, zero, zero, zero, zero, zero, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ex),
                {k: zero for k in extra})


def add_update(sums: Sums, loss, q_mean) -> Sums:
    """Count one gradient update with its loss and mean Q(s, a)."""
    return sums._replace(loss_sum=sums.loss_sum + loss, q_sum=sums.q_sum + q_mean, updates=sums.updates + 1.0)


def loop_metrics(sums: Sums) -> dict:
    """The chunk's loop metrics (NaN where nothing happened: no episode finished, no update yet)."""
    return {
        "episodes": sums.episodes,
        "return_mean": sums.return_sum / sums.episodes,
        "loss": sums.loss_sum / sums.updates,
        "q_mean": sums.q_sum / sums.updates,
        "updates": sums.updates,
    }


def explore_metrics(sums: Sums) -> dict:
    """The strategy's metrics as means over the chunk's acting steps."""
    return {k: v / sums.acts for k, v in sums.explore.items()}


# ---------------------------------------------------------------------------------------------
# Evaluation, diagnostics, restarts and the solve hook


def greedy_evaluator(parts: Parts) -> Callable:
    """evaluate(params, key): greedy returns of cfg.eval.episodes episodes on the clean parameters (ε = 0)."""
    e, spec = parts.cfg.eval.episodes, parts.spec

    def evaluate(params, key):
        k_reset, key = jax.random.split(key)
        obs, state = spec.reset_batch(jax.random.split(k_reset, e), "eval")

        def cond(c):
            t, _, _, _, alive, _ = c
            return (t < spec.max_steps) & jnp.any(alive)

        def body(c):
            t, obs, state, ret, alive, key = c
            key, k = jax.random.split(key)
            out = spec.step_batch(jax.random.split(k, e), state, greedy(parts.q_apply(params, obs)), "eval")
            ret = ret + jnp.where(alive, out.reward, 0.0)
            alive = alive & ~(out.terminated | out.truncated)
            return t + 1, out.obs, out.state, ret, alive, key

        init = (0, obs, state, jnp.zeros((e,), jnp.float32), jnp.ones((e,), bool), key)
        return jax.lax.while_loop(cond, body, init)[3]

    return evaluate


def diagnoser(parts: Parts) -> Callable:
    """diagnose(params, obs): rlx.diagnostics.measure of the network's sown hidden layers on a probe batch."""
    from rlx import diagnostics

    cfg, net = parts.cfg, parts.net

    def order(name):  # convolutions first, then the hidden Dense layers, each by index
        return (not name.startswith("c"), int(name.lstrip("ch")))

    def diagnose(params, obs):
        _, state = net.apply(params, obs, mutable=["intermediates"])
        sown = {k: v[0] for k, v in state["intermediates"].items() if isinstance(v, tuple)}
        layers = {k: sown[k] for k in sorted((k for k in sown if k[0] in "ch"), key=order)}
        saturating = {k.removeprefix("tanh_"): v for k, v in sown.items() if k.startswith("tanh_")}
        return diagnostics.measure(layers, saturating, delta=cfg.diag.delta, eps=cfg.diag.eps)

    return diagnose


def episode_restarter(parts: Parts) -> Callable:
    """restart(state, key): every env starts a new episode (host envs lose their emulators with the process)."""

    def restart(ts: TrainState, key):
        obs, env_state = parts.spec.reset_batch(jax.random.split(key, parts.num_envs))
        return ts._replace(obs=obs, env_state=env_state, ep_return=jnp.zeros_like(ts.ep_return))

    return restart


class EpisodeHook(NamedTuple):
    """Called by an agent after its envs stepped from env step `step` for `iters` iterations, and asked for
    its metrics at the end of a chunk. The default does nothing and reports nothing."""

    after_steps: Callable = lambda ts, step, iters: ts
    metrics: Callable = lambda ts: {}


def solve_tracker(parts: Parts) -> EpisodeHook:
    """On envs whose episodes all last max_steps and whose optimum is known (EnvSpec.optimal_return: the
    N-chain), run one greedy episode after every episode and track how long the greedy policy has been optimal;
    "solved" once that streak reaches eval.solve_streak. Elsewhere the hook does nothing."""
    spec, cfg, n = parts.spec, parts.cfg, parts.num_envs
    if spec.optimal_return is None:
        return EpisodeHook()

    def greedy_return(params, key):
        obs, state = spec.reset(key)

        def body(c, k):
            obs, state, ret = c
            out = spec.step(k, state, greedy(parts.q_apply(params, obs[None]))[0])
            return (out.obs, out.state, ret + out.reward), None

        return jax.lax.scan(body, (obs, state, 0.0), jax.random.split(key, spec.max_steps))[0][2]

    def check(ts):
        key, k = jax.random.split(ts.key)
        ret = greedy_return(ts.params, k)
        streak, episodes, solved_at = ts.solve[0], ts.solve[1] + n, ts.solve[2]
        streak = jnp.where(ret >= spec.optimal_return - 1e-4, streak + 1, 0)
        solved_at = jnp.where((solved_at < 0) & (streak >= cfg.eval.solve_streak), episodes, solved_at)
        return ts._replace(solve=jnp.stack([streak, episodes, solved_at]).astype(jnp.int32), key=key)

    def after_steps(ts, step, iters):
        # Every env's episode lasts exactly max_steps iterations, so "an episode just ended" depends only on the
        # shared step counter: a real branch, taken once per episode.
        it0 = step // n
        ended = (it0 + iters) // spec.max_steps > it0 // spec.max_steps
        return jax.lax.cond(ended, check, lambda ts: ts, ts)

    return EpisodeHook(after_steps, lambda ts: {"greedy_streak": ts.solve[0], "solved_at_episode": ts.solve[2]})
