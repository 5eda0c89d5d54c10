"""Configs as frozen dataclasses, and `--set a.b=value` overrides parsed and type-checked against them.

Which fields are which (this decides what a sweep can batch into one compiled program):
- *batched* (`HPARAMS`): plain numbers that enter the jitted program as arrays, so runs that differ only in
  these share one compile and are vmapped together: lr, gamma, tau, eps_start, eps_end, eps_decay_steps.
- everything else is *static*: it changes array shapes or the loop structure (network width, number of envs,
  buffer and batch size, update and target periods, optimizer, env) and forces a separate compile.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from rlx.errors import UserError, did_you_mean


@dataclass(frozen=True)
class NetConfig:
    """Q-network shape."""

    hidden: tuple[int, ...] = (120, 84)  # MLP widths (the Nature CNN has its own)
    layer_norm: bool = False
    # auto: the Nature CNN (32x8x8/4, 64x4x4/2, 64x3x3/1, dense 512) for stacks of 84x84 frames, the MinAtar
    # CNN (16x3x3/1, then the dense `hidden` layers) for 10x10xC grids, else an MLP
    torso: str = "auto"
    activation: str = "relu"  # of the hidden Dense layers (relu or tanh); convolutions are always ReLU
    # The last hidden Dense layer, the representation the head reads (Kooi et al. 2024): plain (activation),
    # hadamard (act(W1 x + b1) * act(W2 x + b2)) or wide (plain, widened to the hadamard layer's parameter count)
    head: str = "plain"


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters; `steps` everywhere means env steps summed over the envs of one seed."""

    num_envs: int = 10
    buffer_size: int = 10_000
    batch_size: int = 128
    learning_starts: int = 10_000
    train_every: int = 10  # env steps per gradient update
    target_every: int = 500  # env steps per target-network update
    tau: float = 1.0  # 1.0 = hard copy, <1 = Polyak averaging
    gamma: float = 0.99
    lr: float = 2.5e-4
    lr_decay: bool = False  # linear decay to 0 over the run
    optimizer: str = "adam"
    adam_eps: float = 1e-8
    max_grad_norm: float = 10.0
    double: bool = True
    # MSE is the anchor's loss; with these CartPole settings Huber (available) let Q diverge (see README).
    loss: str = "mse"


@dataclass(frozen=True)
class PQNConfig:
    """PQN (agent=pqn): parallel envs, short rollouts, λ-returns, no replay and no target network.

    lr, gamma, the optimizer and gradient clipping come from dqn.* (dqn.optimizer=radam is the paper's).
    """

    num_envs: int = 16
    rollout: int = 32  # env steps per env between updates; one block = num_envs * rollout env steps
    lam: float = 0.65  # λ of the λ-returns
    epochs: int = 2  # passes over each rollout
    minibatches: int = 4  # minibatches per pass


@dataclass(frozen=True)
class ExploreConfig:
    """Exploration schedule shared by all strategies (ε-greedy uses it directly)."""

    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 250_000


@dataclass(frozen=True)
class ParamNoiseConfig:
    """Adaptive parameter-space noise (Plappert et al. 2018); used when noise=param."""

    sigma0: float = 0.01  # initial σ of the perturbation θ̃ = θ + σ·ξ
    adaptive: bool = True  # adapt σ towards the target distance δ; false keeps σ = sigma0
    alpha: float = 1.01  # σ ← σ·α when the distance is below δ, σ/α above
    adapt_every: int = 50  # env steps between adaptations
    smoothing: float = 0.9  # σ follows a running mean of d (weight of the past); 0 = the paper's single d
    distance: str = "kl"  # kl: KL(softmax Q_θ || softmax Q_θ̃); disagree: fraction of argmax changes
    delta: float = 0.0  # fixed target distance; 0 = derive δ from the ε schedule
    eps_floor: float = 0.01  # ε-greedy on top of the perturbed policy (the paper's Atari setting); 0 allowed
    scope: str = "all_dense"  # which Dense layers are perturbed: all_dense or head
    layer_norm: bool = True  # LayerNorm between perturbed layers (turn off for the ablation)
    sigma_min: float = 1e-4
    sigma_max: float = 10.0


@dataclass(frozen=True)
class NoisyConfig:
    """NoisyNets (Fortunato et al. 2018); used when noise=noisy."""

    sigma0: float = 0.5  # factorised noise scale: σ = sigma0 / sqrt(fan_in)


@dataclass(frozen=True)
class LangevinConfig:
    """Natural Langevin dynamics (Marceau-Caron & Ollivier); used when noise=langevin. Each update adds
    sqrt(2·lr/beta)·F^(-1/2)·xi to the parameters, F a running mean of squared gradients (diagonal Fisher)."""

    # inverse temperature: larger is less noise. At 1e5 the median noise per update is about 5x the Adam step on
    # CartPole (1e4: 35x, and the parameters' RMS tripled in 5k updates); see docs/dynamics.md
    beta: float = 1e5
    decay: float = 0.99  # weight of the past in the running mean of squared gradients
    # added to F before the inverse square root: caps the noise of parameters whose gradient is 0 (dead ReLUs)
    damping: float = 1e-4


@dataclass(frozen=True)
class DiagConfig:
    """Representation health (rlx.diagnostics), measured after every chunk (eval.every env steps)."""

    enabled: bool = True
    batch: int = 256  # probe states, collected once per seed by a uniform-random policy
    delta: float = 0.01  # srank threshold: smallest k whose singular values hold 1 - delta of the total
    eps: float = 0.01  # a tanh unit is saturated when |h| >= 1 - eps on every probe state


@dataclass(frozen=True)
class PathConfig:
    """Policy-path snapshots for `rlx analyze path` (Tang et al. 2024)."""

    every: int = 0  # gradient updates between parameter snapshots; 0 = no snapshots


@dataclass(frozen=True)
class PPTBConfig:
    """Policy Path Trimming and Boosting (Tang et al. 2024); see docs/dynamics.md for exactly what runs."""

    enabled: bool = False
    every: int = 2_500  # T_p: gradient updates between applications
    window: int = 10  # n: snapshots (every T_p / n updates) the temporal SVD runs over
    k: int = 2  # major directions kept per layer
    beta: float = 0.0  # if > 0, k per layer = fewest directions holding this share of the singular values
    boost: float = 0.5  # c_b: extrapolate the major coordinates by c_b times their latest change


@dataclass(frozen=True)
class EvalConfig:
    """Greedy evaluation on the clean parameters."""

    every: int = 50_000  # env steps between evaluations; also the chunk size of the compiled loop
    episodes: int = 10
    # Fixed-length envs with a known optimum (the N-chain): solved once the greedy policy, checked after
    # every episode, has been optimal this many episodes in a row.
    solve_streak: int = 100


@dataclass(frozen=True)
class Config:
    """Everything one run needs; serialised to config.json."""

    env: str = "cartpole"
    agent: str = "dqn"
    noise: str = "eps"
    steps: int = 500_000
    seed: int = 0
    net: NetConfig = field(default_factory=NetConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    pqn: PQNConfig = field(default_factory=PQNConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    param: ParamNoiseConfig = field(default_factory=ParamNoiseConfig)
    noisy: NoisyConfig = field(default_factory=NoisyConfig)
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    path: PathConfig = field(default_factory=PathConfig)
    pptb: PPTBConfig = field(default_factory=PPTBConfig)


AGENTS = ("dqn", "pqn")
NOISES = ("none", "eps", "param", "noisy", "langevin")
ACTIVATIONS = ("relu", "tanh")
HEADS = ("plain", "hadamard", "wide")
OPTIMIZERS = ("adam", "rmsprop", "radam", "sgd")
LOSSES = ("huber", "mse")
HPARAMS = ("dqn.lr", "dqn.gamma", "dqn.tau", "explore.eps_start", "explore.eps_end", "explore.eps_decay_steps")


def static_part(cfg: Config) -> Config:
    """cfg with the batched hyperparameters and the seed reset to defaults: configs with equal static parts
    run in one compiled program."""
    return apply_overrides(dataclasses.replace(cfg, seed=Config.seed), {k: _default(k) for k in HPARAMS})


def _default(key: str):
    v = Config()
    for part in key.split("."):
        v = getattr(v, part)
    return v


def to_dict(cfg) -> dict:
    """Nested plain dict (tuples become lists), for JSON."""
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> Config:
    """Rebuild a Config from `to_dict` output, type-checking every leaf."""
    return apply_overrides(Config(), flatten(d))


def flatten(d: dict, prefix: str = "") -> dict:
    """{'dqn': {'lr': 1}} -> {'dqn.lr': 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def keys(cfg=None, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a config."""
    cfg = Config() if cfg is None else cfg
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out += keys(v, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _field_type(cls, name):
    return typing.get_type_hints(cls)[name]


def coerce(key: str, tp, value):
    """Convert a CLI string (or a Python value from an experiment module) to type `tp`, or raise UserError."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (elem, _) = typing.get_args(tp)
        if isinstance(value, str):
            parts = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise UserError(f"{key} expects a comma-separated list of {elem.__name__}, got {value!r}.")
        return tuple(coerce(key, elem, p) for p in parts)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - no unions in configs
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise UserError(f"{key} expects true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{key} expects an integer, got {value!r}.")
        if isinstance(value, int):
            return value
        try:
            f = float(str(value).replace("_", ""))
        except ValueError:
            raise UserError(f"{key} expects an integer, got {value!r}.") from None
        if not f.is_integer():
            raise UserError(f"{key} expects an integer, got {value!r}.")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{key} expects a number, got {value!r}.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key} expects a number, got {value!r}.") from None
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{key} expects a string, got {value!r}.")
        return value.strip()
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover


def apply_overrides(cfg: Config, overrides: dict) -> Config:
    """Return cfg with dotted-key overrides applied; unknown keys and wrong types raise UserError."""
    valid = keys(cfg)
    for key, value in overrides.items():
        if key not in valid:
            raise UserError(f"unknown config key '{key}'.{did_you_mean(key, valid)}")
        cfg = _replace(cfg, key.split("."), value, key)
    validate(cfg)
    return cfg


def resolve_key(name: str) -> str:
    """A dotted config key from a full key or an unambiguous last part ("lr" -> "dqn.lr"); UserError otherwise."""
    valid = keys()
    if name in valid:
        return name
    matches = [k for k in valid if k.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"'{name}' is ambiguous: write one of {', '.join(matches)}.")
    raise UserError(f"unknown config key '{name}'.{did_you_mean(name, valid)}")


def _replace(obj, path, value, key):
    name = path[0]
    if len(path) == 1:
        return dataclasses.replace(obj, **{name: coerce(key, _field_type(type(obj), name), value)})
    return dataclasses.replace(obj, **{name: _replace(getattr(obj, name), path[1:], value, key)})


def parse_set(items: list[str]) -> dict:
    """Parse repeated `--set key=value` strings into a dict (values stay strings; types are checked later)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r} (e.g. --set dqn.lr=1e-3).")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def validate(cfg: Config) -> None:
    """Impossible values raise UserError with the fix."""
    d = cfg.dqn

    def need(ok, msg):
        if not ok:
            raise UserError(msg)

    need(cfg.agent in AGENTS, f"unknown agent '{cfg.agent}'.{did_you_mean(cfg.agent, AGENTS)}")
    need(cfg.noise in NOISES, f"unknown noise '{cfg.noise}'.{did_you_mean(cfg.noise, NOISES)}")
    need(cfg.steps > 0, f"steps must be positive, got {cfg.steps}.")
    need(d.optimizer in OPTIMIZERS, f"unknown dqn.optimizer '{d.optimizer}'.{did_you_mean(d.optimizer, OPTIMIZERS)}")
    need(d.loss in LOSSES, f"unknown dqn.loss '{d.loss}'.{did_you_mean(d.loss, LOSSES)}")
    for name in ("num_envs", "buffer_size", "batch_size", "train_every", "target_every"):
        need(getattr(d, name) > 0, f"dqn.{name} must be positive, got {getattr(d, name)}.")
    need(d.learning_starts >= 0, f"dqn.learning_starts must be >= 0, got {d.learning_starts}.")
    need(all(h > 0 for h in cfg.net.hidden) and cfg.net.hidden, "net.hidden needs positive widths, e.g. 120,84.")
    need(0.0 <= d.gamma <= 1.0, f"dqn.gamma must be in [0, 1], got {d.gamma}.")
    need(0.0 < d.tau <= 1.0, f"dqn.tau must be in (0, 1], got {d.tau}.")
    need(d.lr > 0, f"dqn.lr must be positive, got {d.lr}.")
    need(d.max_grad_norm >= 0, f"dqn.max_grad_norm must be >= 0 (0 = no clipping), got {d.max_grad_norm}.")
    e = cfg.explore
    need(0.0 <= e.eps_end <= 1.0 and 0.0 <= e.eps_start <= 1.0, "explore.eps_start and eps_end must be in [0, 1].")
    need(e.eps_decay_steps > 0, f"explore.eps_decay_steps must be positive, got {e.eps_decay_steps}.")
    torsos = ("auto", "mlp", "nature_cnn", "minatar_cnn")
    need(cfg.net.torso in torsos, f"net.torso must be one of {', '.join(torsos)}, got {cfg.net.torso!r}.")
    need(cfg.net.activation in ACTIVATIONS, f"net.activation must be relu or tanh, got {cfg.net.activation!r}.")
    need(cfg.net.head in HEADS, f"net.head must be plain, hadamard or wide, got {cfg.net.head!r}.")
    lg = cfg.langevin
    need(lg.beta > 0 and lg.damping >= 0, "langevin.beta must be positive and langevin.damping >= 0.")
    need(0 <= lg.decay < 1, f"langevin.decay must be in [0, 1), got {lg.decay}.")
    g = cfg.diag
    need(g.batch > 0, f"diag.batch must be positive, got {g.batch}.")
    need(0 < g.delta < 1 and 0 < g.eps < 1, "diag.delta and diag.eps must be in (0, 1).")
    need(cfg.path.every >= 0, f"path.every must be >= 0 (0 = off), got {cfg.path.every}.")
    b = cfg.pptb
    need(b.window >= 2, f"pptb.window must be at least 2 snapshots, got {b.window}.")
    need(b.every > 0 and b.every % b.window == 0,
         f"pptb.every ({b.every}) must be a positive multiple of pptb.window ({b.window}).")
    need(b.k >= 1 and 0 <= b.beta < 1, "pptb.k must be >= 1 and pptb.beta in [0, 1) (0 = use k).")
    need(b.boost >= 0, f"pptb.boost must be >= 0, got {b.boost}.")
    p = cfg.param
    need(p.distance in ("kl", "disagree"), f"param.distance must be kl or disagree, got {p.distance!r}.")
    need(p.scope in ("all_dense", "head"), f"param.scope must be all_dense or head, got {p.scope!r}.")
    need(p.sigma0 > 0 and p.alpha > 1.0, "param.sigma0 must be positive and param.alpha > 1.")
    need(0 < p.sigma_min <= p.sigma0 <= p.sigma_max, "need 0 < param.sigma_min <= param.sigma0 <= param.sigma_max.")
    need(p.adapt_every > 0, f"param.adapt_every must be positive, got {p.adapt_every}.")
    need(0 <= p.smoothing < 1, f"param.smoothing must be in [0, 1), got {p.smoothing}.")
    need(p.delta >= 0 and 0 <= p.eps_floor <= 1, "param.delta must be >= 0 and param.eps_floor in [0, 1].")
    need(cfg.noisy.sigma0 > 0, f"noisy.sigma0 must be positive, got {cfg.noisy.sigma0}.")
    need(cfg.eval.every > 0, f"eval.every must be positive, got {cfg.eval.every}.")
    need(cfg.eval.solve_streak > 0, f"eval.solve_streak must be positive, got {cfg.eval.solve_streak}.")
    need(cfg.eval.episodes > 0, f"eval.episodes must be positive, got {cfg.eval.episodes}.")
    if cfg.agent == "pqn":
        need(cfg.path.every == 0 and not cfg.pptb.enabled, "path.every and pptb are DQN options; use --agent dqn.")
        q = cfg.pqn
        for name in ("num_envs", "rollout", "epochs", "minibatches"):
            need(getattr(q, name) > 0, f"pqn.{name} must be positive, got {getattr(q, name)}.")
        need(0.0 <= q.lam <= 1.0, f"pqn.lam must be in [0, 1], got {q.lam}.")
        block = q.num_envs * q.rollout
        need(q.minibatches <= block, f"pqn.minibatches ({q.minibatches}) cannot exceed num_envs * rollout ({block}).")
        need(cfg.eval.every % block == 0, f"eval.every ({cfg.eval.every}) must be a multiple of pqn.num_envs * pqn.rollout ({block}).")
        need(cfg.steps % block == 0, f"steps ({cfg.steps}) must be a multiple of pqn.num_envs * pqn.rollout ({block}).")
        return
    # The compiled loop steps all envs together, updates on a fixed beat and copies the target on a
    # fixed beat; these must line up or the schedule would silently differ from what was asked.
    n, tr = d.num_envs, d.train_every
    need(
        tr % n == 0 or n % tr == 0,
        f"dqn.train_every ({tr}) and dqn.num_envs ({n}) must divide one another (one env step moves {n} steps).",
    )
    need(
        d.target_every % max(n, tr) == 0,
        f"dqn.target_every ({d.target_every}) must be a multiple of max(num_envs, train_every) = {max(n, tr)}.",
    )
    need(cfg.eval.every % d.target_every == 0, f"eval.every ({cfg.eval.every}) must be a multiple of dqn.target_every ({d.target_every}).")
    need(cfg.steps % d.target_every == 0, f"steps ({cfg.steps}) must be a multiple of dqn.target_every ({d.target_every}).")
    need(d.batch_size <= d.buffer_size, f"dqn.batch_size ({d.batch_size}) cannot exceed dqn.buffer_size ({d.buffer_size}).")
    # Snapshots and PPTB happen at target-update boundaries, so their periods are whole target periods.
    per_block = d.target_every // tr
    if cfg.path.every:
        need(cfg.path.every % per_block == 0, f"path.every ({cfg.path.every}) must be a multiple of the updates per "
             f"target period, dqn.target_every / dqn.train_every = {per_block}.")
        snap = cfg.path.every * tr
        need(cfg.eval.every % snap == 0 and cfg.steps % snap == 0, f"eval.every and steps must be multiples of "
             f"path.every * dqn.train_every = {snap} env steps (one snapshot period).")
    b = cfg.pptb
    if b.enabled:
        need((b.every // b.window) % per_block == 0, f"pptb.every / pptb.window ({b.every // b.window} updates between "
             f"snapshots) must be a multiple of dqn.target_every / dqn.train_every = {per_block}.")
