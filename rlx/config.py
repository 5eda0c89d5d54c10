"""Configs as frozen dataclasses, and `--set a.b=value` overrides parsed and type-checked against them.

Each field says once what kind it is, and everything else is derived from that declaration:
- `batched(...)` fields are plain numbers that enter the jitted program as arrays (`HParams`), so runs that
  differ only in these (and the seed) share one compile and are vmapped together: `batched_keys()`,
  `static_part()`, how `rlx sweep` groups cells into programs and what `rlx show` prints all come from it;
- every other field is *static*: it changes array shapes or the loop structure (network width, number of envs,
  buffer and batch size, update and target periods, optimizer, env) and forces a separate compile;
- `choice(...)` fields name an entry of a registry ("module:NAME", the table that implements the choices), and
  are checked against it, so a new optimizer, strategy or agent is valid as soon as it is registered.

Units: `steps` is env steps summed over one seed's envs, everywhere; every `*every*` key counts env steps,
except those whose name ends in `_updates`, which count gradient updates.

One parser serves every config (`parse_set` + `apply_overrides`): the RL `Config` here and the language
model's `rlx.sentiment.lm.LMConfig`. Renamed keys (`RENAMED`) get an error that names the new key.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from rlx.errors import UserError, did_you_mean


def batched(default):
    """A field that enters the compiled program as an array: configs differing only in these share a program."""
    return field(default=default, metadata={"batched": True})


def choice(default: str, registry: str):
    """A string field whose value must be a key of `registry` ("module:NAME"), the table that implements it."""
    return field(default=default, metadata={"choices": registry})


@dataclass(frozen=True)
class NetConfig:
    """Q-network shape."""

    hidden: tuple[int, ...] = (120, 84)  # MLP widths (the Nature CNN has its own)
    layer_norm: bool = False  # LayerNorm after each hidden Dense (parameter noise turns it on)
    # auto: the Nature CNN (32x8x8/4, 64x4x4/2, 64x3x3/1, dense 512) for stacks of 84x84 frames, the MinAtar
    # CNN (16x3x3/1, then the dense `hidden` layers) for 10x10xC grids, else an MLP
    torso: str = choice("auto", "rlx.nets:TORSOS")
    # activation of the hidden Dense layers; convolutions are always ReLU
    activation: str = choice("relu", "rlx.nets:ACTIVATIONS")
    # The last hidden Dense layer, the representation the head reads (Kooi et al. 2024): plain (activation),
    # hadamard (act(W1 x + b1) * act(W2 x + b2)) or wide (plain, widened to the hadamard layer's parameter count)
    head: str = choice("plain", "rlx.nets:HEADS")


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer every agent trains with: gradient clipping, then the optimizer's scaling, then -lr."""

    name: str = choice("adam", "rlx.agents.core:OPTIMIZERS")  # adam, radam, rmsprop or sgd
    lr: float = batched(2.5e-4)  # learning rate
    lr_decay: bool = False  # linear decay to 0 over the run
    eps: float = 1e-8  # Adam's, RAdam's and RMSprop's epsilon in the denominator
    max_grad_norm: float = 10.0  # clip gradients to this global norm; 0 = no clipping (the anchor does not clip)


@dataclass(frozen=True)
class TDConfig:
    """Temporal-difference settings shared by the value-based agents."""

    gamma: float = batched(0.99)  # discount factor
    # learn from reward * reward_scale (after Atari's clipping); returns are always reported unscaled. PQN's
    # CartPole recipe uses 0.1 (Gallici et al. 2024)
    reward_scale: float = 1.0


@dataclass(frozen=True)
class DQNConfig:
    """DQN's replay, update schedule and target network (agent=dqn)."""

    num_envs: int = 10  # envs per seed, stepped together
    buffer_size: int = 10_000  # replay capacity in transitions, per seed
    batch_size: int = 128  # transitions per gradient update
    learning_starts: int = 10_000  # env steps of acting before the first update
    train_every: int = 10  # env steps per gradient update
    target_every: int = 500  # env steps per target-network update
    tau: float = batched(1.0)  # 1.0 = hard copy, <1 = Polyak averaging
    double: bool = True  # Double DQN: the online network picks the next action, the target network values it
    # MSE is the anchor's loss; with these CartPole settings Huber (available) let Q diverge (see README).
    loss: str = choice("mse", "rlx.agents.dqn:LOSSES")


@dataclass(frozen=True)
class PQNConfig:
    """PQN (agent=pqn): parallel envs, short rollouts, λ-returns, no replay and no target network.

    lr, the optimizer and clipping come from optim.* (optim.name=radam is the paper's), γ from td.gamma.
    """

    num_envs: int = 16  # envs per seed, stepped together
    rollout: int = 32  # env steps per env between updates; one block = num_envs * rollout env steps
    lam: float = 0.65  # λ of the λ-returns
    epochs: int = 2  # passes over each rollout
    minibatches: int = 4  # minibatches per pass


@dataclass(frozen=True)
class ExploreConfig:
    """Exploration schedule shared by all strategies (ε-greedy uses it directly)."""

    eps_start: float = batched(1.0)  # ε at step 0
    eps_end: float = batched(0.05)  # ε once the decay is over
    eps_decay_steps: int = batched(250_000)  # env steps of the linear decay from eps_start to eps_end


@dataclass(frozen=True)
class ParamNoiseConfig:
    """Adaptive parameter-space noise (Plappert et al. 2018); used when noise=param."""

    sigma0: float = 0.01  # initial σ of the perturbation θ̃ = θ + σ·ξ
    adaptive: bool = True  # adapt σ towards the target distance δ; false keeps σ = sigma0
    alpha: float = 1.01  # σ ← σ·α when the distance is below δ, σ/α above
    adapt_every: int = 50  # env steps between adaptations
    smoothing: float = 0.9  # σ follows a running mean of d (weight of the past); 0 = the paper's single d
    # kl: KL(softmax Q_θ || softmax Q_θ̃); disagree: fraction of argmax changes
    distance: str = choice("kl", "rlx.exploration.param_noise:DISTANCES")
    delta: float = 0.0  # fixed target distance; 0 = derive δ from the ε schedule
    eps_floor: float = 0.01  # ε-greedy on top of the perturbed policy (the paper's Atari setting); 0 allowed
    # which Dense layers are perturbed: all_dense or head
    scope: str = choice("all_dense", "rlx.exploration.param_noise:SCOPES")
    layer_norm: bool = True  # LayerNorm between perturbed layers (turn off for the ablation)
    # exact: an independent Gaussian ξ per env and episode; flipout: per-env random signs of one shared Gaussian
    # (each env's ξ is still N(0, I); no per-env weight copies), see rlx.exploration.param_noise
    form: str = choice("exact", "rlx.exploration.param_noise:FORMS")
    sigma_min: float = 1e-4  # floor of the adaptive σ
    sigma_max: float = 10.0  # ceiling of the adaptive σ


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

    enabled: bool = True  # srank, effective rank, dormant and saturated fractions after every chunk
    batch: int = 256  # probe states, collected once per seed by a uniform-random policy
    delta: float = 0.01  # srank threshold: smallest k whose singular values hold 1 - delta of the total
    eps: float = 0.01  # a tanh unit is saturated when |h| >= 1 - eps on every probe state


@dataclass(frozen=True)
class PathConfig:
    """Policy-path snapshots for `rlx analyze path` (Tang et al. 2024)."""

    every_updates: int = 0  # gradient updates between parameter snapshots; 0 = no snapshots


@dataclass(frozen=True)
class PPTBConfig:
    """Policy Path Trimming and Boosting (Tang et al. 2024); see docs/dynamics.md for exactly what runs."""

    enabled: bool = False  # apply PPTB during training (agent=dqn)
    every_updates: int = 2_500  # T_p: gradient updates between applications
    window: int = 10  # n: snapshots (every T_p / n updates) the temporal SVD runs over
    k: int = 2  # major directions kept per layer
    beta: float = 0.0  # if > 0, k per layer = fewest directions holding this share of the singular values
    boost: float = 0.5  # c_b: extrapolate the major coordinates by c_b times their latest change


@dataclass(frozen=True)
class EvalConfig:
    """Greedy evaluation on the clean parameters."""

    every: int = 50_000  # env steps between evaluations; also the chunk size of the compiled loop
    episodes: int = 10  # greedy episodes per seed at each evaluation
    # Fixed-length envs with a known optimum (the N-chain): solved once the greedy policy, checked after
    # every episode, has been optimal this many episodes in a row.
    solve_streak: int = 100


@dataclass(frozen=True)
class Config:
    """Everything one run needs; serialised to config.json."""

    noun: ClassVar[str] = "config key"  # what error messages call a key of this config

    env: str = "cartpole"  # a gymnax env by short name or id, Atari pong, or chain-N (`rlx envs`)
    agent: str = choice("dqn", "rlx.agents:AGENTS")  # dqn (replay, target network) or pqn (λ-returns, no replay)
    noise: str = choice("eps", "rlx.exploration:STRATEGIES")  # exploration: none, eps, param, noisy or langevin
    steps: int = 500_000  # training budget per seed, summed over its envs
    seed: int = 0  # base of every seed's key: seed i uses fold_in(PRNGKey(seed), i)
    # XLA's deterministic ops on GPU: scatters and reductions without atomics, so a seed gives the same numbers on
    # every run (rlx.loop.use_deterministic_ops); CPU programs are deterministic already
    deterministic: bool = False
    net: NetConfig = field(default_factory=NetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    td: TDConfig = field(default_factory=TDConfig)
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

    def check(self) -> Config:
        """The config with steps and eval.every fitted to whole blocks of its agent (rlx.agents.fit_to_blocks), or a
        UserError for impossible values or combinations."""
        cfg = self
        if self.agent in registry("rlx.agents:AGENTS"):  # an unknown agent is named by validate
            cfg = registry("rlx.agents:fit_to_blocks")(self)
        validate(cfg)
        return cfg


# Keys that were renamed: the old name gets a one-line error naming the new one (saved configs are translated).
RENAMED = {
    "dqn.lr": "optim.lr",
    "dqn.lr_decay": "optim.lr_decay",
    "dqn.optimizer": "optim.name",
    "dqn.adam_eps": "optim.eps",
    "dqn.max_grad_norm": "optim.max_grad_norm",
    "dqn.gamma": "td.gamma",
    "path.every": "path.every_updates",
    "pptb.every": "pptb.every_updates",
}


# ---------------------------------------------------------------------------------------------
# What is batched, derived from the field declarations


def _leaf_fields(cls, prefix: str = ""):
    """(dotted key, dataclass field) of every leaf of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, f


def batched_keys() -> tuple[str, ...]:
    """Dotted keys of the batched fields, in declaration order (optim.lr, td.gamma, dqn.tau, explore.eps_*)."""
    return tuple(k for k, f in _leaf_fields(Config) if f.metadata.get("batched"))


HPARAMS = batched_keys()
# The batched values as the compiled program sees them: one array each, named by the key's last part.
HParams = NamedTuple("HParams", [(k.rsplit(".", 1)[-1], Any) for k in HPARAMS])
HParams.__doc__ = "Hyperparameters that enter the compiled program as arrays (the batched config fields)."


def static_part(cfg: Config) -> Config:
    """cfg with the batched fields and the seed reset to defaults: configs with equal static parts run in one
    compiled program (the seed only picks each run's keys)."""
    defaults = Config()
    reset = {k: get(defaults, k) for k in HPARAMS}
    return apply_overrides(dataclasses.replace(cfg, seed=defaults.seed), reset)


# ---------------------------------------------------------------------------------------------
# Dotted keys, dicts and overrides (generic over any config dataclass with a check() method)


def get(cfg, key: str):
    """The value of a dotted key ("optim.lr") in a config."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def to_dict(cfg) -> dict:
    """Nested plain dict (tuples become lists), for JSON."""
    return dataclasses.asdict(cfg)


def from_dict(d: dict, cls=Config):
    """Rebuild a config from `to_dict` output, type-checking every leaf; keys renamed since it was saved are
    read under their new names."""
    flat = {RENAMED.get(k, k): v for k, v in flatten(d).items()}
    return apply_overrides(cls(), flat)


def flatten(d: dict, prefix: str = "") -> dict:
    """{'dqn': {'tau': 1}} -> {'dqn.tau': 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def keys(cfg=None) -> list[str]:
    """All dotted leaf keys of a config (default: the RL Config)."""
    return [k for k, _ in _leaf_fields(type(cfg) if cfg is not None else Config)]


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
        return _coerce_bool(key, value)
    if tp is int:
        return _coerce_int(key, value)
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


def _coerce_bool(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise UserError(f"{key} expects true or false, got {value!r}.")


def _coerce_int(key: str, value) -> int:
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


def apply_overrides(cfg, overrides: dict):
    """Return cfg with dotted-key overrides applied, then cfg.check(); unknown, renamed and mistyped keys raise
    UserError. Works for any config dataclass (the RL Config, the LM's LMConfig)."""
    fields = dict(_leaf_fields(type(cfg)))
    noun = getattr(cfg, "noun", "config key")
    for key, value in overrides.items():
        if key in RENAMED and isinstance(cfg, Config):
            raise UserError(f"'{key}' was renamed: write {RENAMED[key]}={value}.")
        if key not in fields:
            raise UserError(f"unknown {noun} '{key}'.{did_you_mean(key, fields)}")
        cfg = _replace(cfg, key.split("."), value, key)
    return cfg.check()


def _replace(obj, path, value, key):
    name = path[0]
    if len(path) == 1:
        tp = typing.get_type_hints(type(obj))[name]
        return dataclasses.replace(obj, **{name: coerce(key, tp, value)})
    return dataclasses.replace(obj, **{name: _replace(getattr(obj, name), path[1:], value, key)})


def resolve_key(name: str) -> str:
    """A dotted config key from a full key or an unambiguous last part ("lr" -> "optim.lr"); UserError otherwise."""
    valid = keys()
    if name in RENAMED:
        raise UserError(f"'{name}' was renamed: write {RENAMED[name]}.")
    if name in valid:
        return name
    matches = [k for k in valid if k.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"'{name}' is ambiguous: write one of {', '.join(matches)}.")
    raise UserError(f"unknown config key '{name}'.{did_you_mean(name, valid)}")


def parse_set(items: list[str]) -> dict:
    """Parse repeated `--set key=value` strings into a dict (values stay strings; types are checked later)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r} (e.g. --set optim.lr=1e-3).")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


# ---------------------------------------------------------------------------------------------
# Validation: choices against their registries, value ranges here, loop layouts by each agent


def registry(ref: str) -> dict:
    """The table a choice field names ("module:NAME")."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def need(ok: bool, msg: str, works: dict) -> None:
    """Raise UserError unless ok. msg names the keys in conflict; `works` maps keys to values that resolve it, and
    the error ends with them as flags, so every refusal says what to type instead."""
    if not ok:
        raise UserError(f"{msg} Try {as_flags(works)}.")


def as_flags(settings: dict) -> str:
    """{"dqn.tau": 1.0} -> "--set dqn.tau=1" (tuples as comma lists, booleans as true/false)."""

    def text(v):
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, (tuple, list)):
            return ",".join(str(x) for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    return " ".join(f"--set {k}={text(v)}" for k, v in settings.items())


def default(key: str):
    """The default value of a dotted key of the RL Config."""
    return get(Config(), key)


def nearest_multiple(value: int, base: int) -> int:
    """The positive multiple of base closest to value (ties go up)."""
    return max(base, base * round(value / base + 1e-9))


def validate(cfg: Config) -> None:
    """Impossible values raise UserError with the fix; the agent then checks its own loop layout."""
    for key, f in _leaf_fields(Config):
        if "choices" in f.metadata:
            value, table = get(cfg, key), registry(f.metadata["choices"])
            need(value in table, f"unknown {key} '{value}'.{did_you_mean(value, table)}", {key: default(key)})
    _check_ranges(cfg)
    _check_dynamics(cfg)
    registry("rlx.agents:AGENTS")[cfg.agent].check(cfg)


def need_range(cfg: Config, key: str, ok, what: str) -> None:
    """need(ok(value of key)) with the message "key must be <what>, got <value>" and the default as the fix."""
    value = get(cfg, key)
    need(ok(value), f"{key} must be {what}, got {value}.", {key: default(key)})


POSITIVE = (
    "steps", "dqn.num_envs", "dqn.buffer_size", "dqn.batch_size", "dqn.train_every", "dqn.target_every",
    "optim.lr", "td.reward_scale", "explore.eps_decay_steps", "param.sigma0", "param.adapt_every", "noisy.sigma0",
    "eval.every", "eval.solve_streak", "eval.episodes", "langevin.beta", "diag.batch",
)  # fmt: skip
UNIT_INTERVAL = ("td.gamma", "explore.eps_start", "explore.eps_end", "param.eps_floor")  # each in [0, 1]


def _check_ranges(cfg: Config) -> None:
    for key in POSITIVE:
        need_range(cfg, key, lambda v: v > 0, "positive")
    for key in UNIT_INTERVAL:
        need_range(cfg, key, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
    for key in ("dqn.learning_starts", "optim.max_grad_norm", "param.delta", "langevin.damping", "pptb.boost"):
        need_range(cfg, key, lambda v: v >= 0, ">= 0 (0 turns it off where that means something)")
    for key in ("param.smoothing", "langevin.decay", "pptb.beta"):
        need_range(cfg, key, lambda v: 0 <= v < 1, "in [0, 1)")
    need_range(cfg, "net.hidden", lambda v: bool(v) and all(h > 0 for h in v), "one or more positive widths")
    need_range(cfg, "dqn.tau", lambda v: 0.0 < v <= 1.0, "in (0, 1] (1 = hard copy)")
    need_range(cfg, "param.alpha", lambda v: v > 1.0, "> 1")
    p = cfg.param
    need(0 < p.sigma_min <= p.sigma0 <= p.sigma_max,
         f"need 0 < param.sigma_min ({p.sigma_min}) <= param.sigma0 ({p.sigma0}) <= param.sigma_max ({p.sigma_max}).",
         {k: v for k, v in (("param.sigma_min", min(default("param.sigma_min"), p.sigma0)),
                            ("param.sigma_max", max(default("param.sigma_max"), p.sigma0))) if v != get(cfg, k)})


def _check_dynamics(cfg: Config) -> None:
    for key in ("diag.delta", "diag.eps"):
        need_range(cfg, key, lambda v: 0 < v < 1, "in (0, 1)")
    need_range(cfg, "path.every_updates", lambda v: v >= 0, ">= 0 (0 = off)")
    need_range(cfg, "pptb.window", lambda v: v >= 2, "at least 2 snapshots")
    need_range(cfg, "pptb.k", lambda v: v >= 1, "at least 1 direction")
    b = cfg.pptb
    need(b.every_updates > 0 and b.every_updates % b.window == 0,
         f"pptb.every_updates ({b.every_updates}) must be a positive multiple of pptb.window ({b.window}).",
         {"pptb.every_updates": nearest_multiple(b.every_updates, b.window)})


# ---------------------------------------------------------------------------------------------
# What each key means: the comments on the field declarations above are its documentation


def key_docs(cls=None) -> dict[str, str]:
    """{dotted key: its meaning} for every leaf of a config class (default: the RL Config), from the comments on
    its declaration: the comment lines just above the field, then the one at the end of its line. One place to
    document a key, read by `rlx show --config`."""
    cls = cls or Config
    hints, docs = typing.get_type_hints(cls), {}
    for name, text in _field_comments(cls).items():
        if dataclasses.is_dataclass(hints[name]):
            docs.update({f"{name}.{k}": v for k, v in key_docs(hints[name]).items()})
        else:
            docs[name] = text
    return docs


def _field_comments(cls) -> dict[str, str]:
    """{field name: its comments joined} in declaration order, read from the class's source."""
    names = [f.name for f in dataclasses.fields(cls)]
    out, above = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        code, _, comment = line.partition("#")
        code, comment = code.strip(), comment.strip()
        name = code.split(":")[0].strip() if ":" in code else None
        if not code and comment:
            above.append(comment)
        elif name in names:
            out[name] = " ".join([*above, comment]).replace("fmt: skip", "").strip()
            above = []
        else:
            above = []
    return out


def unit(key: str) -> str:
    """The unit of a key's value, from the naming rule in the module docstring."""
    last = key.split(".")[-1]
    if last.endswith("_updates"):
        return "gradient updates"
    return "env steps" if last == "steps" or "every" in last or last.endswith("_steps") else ""
