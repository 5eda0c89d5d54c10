"""The real reference scripts as optional benchmark anchors, run from a copy of their sources.

When ``RLX_PUREJAXRL`` names a purejaxrl checkout (with ``purejaxrl/dqn.py``) or ``RLX_PUREJAXQL`` a purejaxql
checkout (with ``purejaxql/pqn_gymnax.py`` and ``purejaxql/config/alg/pqn_cartpole.yaml``), bench.py times the
authors' own ``make_train`` instead of the re-implementations in reference_dqn.py / reference_pqn.py. Nothing of
theirs is copied or edited: their module is imported from the checkout in a fresh subprocess (``python
bench/anchors.py dqn|pqn SOURCE``) after run-time shims that only stand in for what this environment lacks or
changed since they were written:

* stub modules for wandb, hydra, omegaconf and safetensors, inserted into ``sys.modules`` only when the real
  package is not installed (their training function never calls them with logging off and no save path);
* ``jax.tree_map``, removed from jax since dqn.py was written, as an alias of ``jax.tree.map``;
* gymnax >= 1.0's ``step`` returns (obs, state, reward, terminated, truncated, info); both scripts unpack the old
  (obs, state, reward, done, info). Their outermost wrapper is always ``LogWrapper`` and it is the only one they
  step, so ``gymnax.wrappers.purerl.LogWrapper`` is replaced before their import by a subclass that returns
  ``done = terminated | truncated`` and the info keys of old gymnax.

The timing and the returned keys are those of the re-implementations' ``run()``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import subprocess
import sys
import traceback
import types
from pathlib import Path

from timing import time_fresh

HERE = Path(__file__).resolve().parent

ENV_VARS = {"dqn": "RLX_PUREJAXRL", "pqn": "RLX_PUREJAXQL"}
# Files a checkout must have, relative to its root.
REQUIRED = {
    "dqn": ("purejaxrl/dqn.py",),
    "pqn": ("purejaxql/pqn_gymnax.py", "purejaxql/config/alg/pqn_cartpole.yaml"),
}
MODULES = {"dqn": "purejaxrl.dqn", "pqn": "purejaxql.pqn_gymnax"}
LABELS = {"dqn": "PureJaxRL dqn.py", "pqn": "pqn_gymnax.py"}
# gymnax >= 1.0 added these to LogWrapper's info; old gymnax had none of them, and pqn_gymnax's test
# metrics mask every info entry with `returned_episode`, which fails on the per-env `final_observation`.
NEW_INFO_KEYS = ("terminated", "truncated", "final_observation", "returned_episode_valid")
# As reference_dqn.FINAL_RETURN_WINDOW: the DQN return is the mean over the last 10k env steps.
DQN_RETURN_WINDOW = 10_000


class AnchorError(Exception):
    """A one-line reason why a real reference cannot be run (bad path, missing module, their code failed)."""


# --------------------------------------------------------------------------
# Parent side: find the checkout and run it in a subprocess
# --------------------------------------------------------------------------


def check_source(kind: str, path: str | os.PathLike) -> Path:
    """The checkout as an absolute path, or AnchorError naming the first file it lacks."""
    root = Path(path).expanduser().resolve()
    for rel in REQUIRED[kind]:
        if not (root / rel).is_file():
            repo = REQUIRED[kind][0].split("/")[0]
            raise AnchorError(f"{ENV_VARS[kind]}={path}: no {rel} there (expected a {repo} checkout)")
    return root


def source_from_env(kind: str) -> Path | None:
    """The checked checkout named by the kind's environment variable, or None when it is unset or empty."""
    value = os.environ.get(ENV_VARS[kind], "").strip()
    return check_source(kind, value) if value else None


def label(kind: str) -> str:
    """The benchmark row label of the real script."""
    return f"reference ({LABELS[kind]}, real)"


def run_real(kind: str, source: str | os.PathLike, seeds: int, steps: int, timeout: float | None = None) -> dict:
    """Run the real script's training in a fresh subprocess (cold JIT, like the re-implementations) and
    return its run() dict; AnchorError with the child's last error line if it fails."""
    root = check_source(kind, source)
    cmd = [sys.executable, str(HERE / "anchors.py"), kind, str(root), "--seeds", str(seeds), "--steps", str(steps)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AnchorError(f"the real {LABELS[kind]} did not finish in {timeout:.0f} s") from e
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()] or ["(no error output)"]
        reason = lines[-1].strip().removeprefix("anchors: ")
        raise AnchorError(f"the real {LABELS[kind]} failed (exit {p.returncode}): {reason}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Child side: shims, their config, their make_train, timing
# --------------------------------------------------------------------------


def _module(name: str, **attrs) -> types.ModuleType:
    """A stub module with a spec, so importlib.util.find_spec on it answers instead of raising."""
    from importlib.machinery import ModuleSpec

    m = types.ModuleType(name, f"rlx bench stub for {name} (not installed)")
    m.__spec__ = ModuleSpec(name, None)
    m.__dict__.update(attrs)
    return m


def _noop(*args, **kwargs):
    """Stands in for wandb calls: logging is off in both configs."""
    return None


def _not_available(*args, **kwargs):
    """Saving or loading parameters would need the real safetensors; the benchmark never saves."""
    raise NotImplementedError("safetensors is stubbed by bench/anchors.py")


def stub_modules() -> dict[str, types.ModuleType]:
    """The stand-ins for the packages their scripts import at top level but never use in make_train."""
    omegaconf = type("OmegaConf", (), {"to_container": staticmethod(lambda c, **k: c), "to_yaml": staticmethod(str)})
    return {
        "wandb": _module(
            "wandb", init=_noop, log=_noop, finish=_noop, login=_noop, sweep=_noop, agent=_noop, config={}
        ),
        "hydra": _module("hydra", main=lambda *a, **k: lambda f: f),
        "omegaconf": _module("omegaconf", OmegaConf=omegaconf, DictConfig=dict),
        "safetensors": _module("safetensors"),
        "safetensors.flax": _module("safetensors.flax", load_file=_not_available, save_file=_not_available),
    }


def install_stubs(modules: dict | None = None) -> list[str]:
    """Insert a stub for each stubbed package that is not installed; returns the names inserted."""
    import importlib.util

    modules = sys.modules if modules is None else modules
    inserted = []
    for name, stub in stub_modules().items():
        top = name.split(".")[0]
        if name in modules:
            continue
        # A submodule is stubbed only under a stubbed parent: a real safetensors keeps its real .flax.
        if top == name and importlib.util.find_spec(name) is not None:
            continue
        if top != name and top not in inserted:
            continue
        modules[name] = stub
        inserted.append(name)
    for name in inserted:  # `import safetensors.flax` also reads the attribute on the parent
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, modules[name])
    return inserted


def shim_jax() -> None:
    """Restore `jax.tree_map` (deprecated in jax 0.4.26, since removed; dqn.py copies the network params with it)."""
    import jax

    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map


def legacy_log_wrapper():
    """gymnax's LogWrapper speaking the pre-1.0 five-value step (a new subclass; gymnax is imported here so that
    the parent side of this module never imports jax)."""
    import jax.numpy as jnp
    from gymnax.wrappers import purerl

    class LegacyLogWrapper(purerl.LogWrapper):
        """`step` returns (obs, state, reward, done, info), done = terminated | truncated, as old gymnax did."""

        def step(self, key, state, action, params=None):
            out = super().step(key, state, action, params)
            if len(out) == 5:  # an old gymnax already speaks the legacy API
                return out
            obs, state, reward, terminated, truncated, info = out
            info = {k: v for k, v in info.items() if k not in NEW_INFO_KEYS}
            return obs, state, reward, jnp.logical_or(terminated, truncated), info

    return LegacyLogWrapper


def patch_gymnax() -> None:
    """Make `from gymnax.wrappers.purerl import LogWrapper` (and gymnax.wrappers.LogWrapper) give the legacy
    wrapper; must run before their module is imported, since that import binds the name."""
    import gymnax.wrappers
    from gymnax.wrappers import purerl

    legacy = legacy_log_wrapper()
    purerl.LogWrapper = legacy
    gymnax.wrappers.LogWrapper = legacy


def import_theirs(kind: str, root: Path) -> types.ModuleType:
    """Import their training module from the checkout, after the shims, without writing into it."""
    install_stubs()
    shim_jax()
    patch_gymnax()
    sys.dont_write_bytecode = True  # no __pycache__ in their checkout
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(MODULES[kind])
    except ModuleNotFoundError as e:
        hint = " (pip install -e '.[bench]')" if e.name == "flashbax" else ""
        raise AnchorError(f"{REQUIRED[kind][0]} imports {e.name}, which is not installed{hint}") from e
    # An installed package of the same name would win over a checkout without __init__.py (purejaxrl has none).
    if Path(module.__file__).resolve() != root / REQUIRED[kind][0]:
        raise AnchorError(f"{MODULES[kind]} was imported from {module.__file__}, not from {root}")
    return module


def dqn_config(root: Path, seeds: int, steps: int) -> dict:
    """dqn.py's own CartPole config: the dict literal bound to `config` in its main(), read with ast (main()
    would also call wandb.init and train at the full budget), with the seeds and steps of this benchmark."""
    tree = ast.parse((root / REQUIRED["dqn"][0]).read_text())
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "main":
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["config"]:
                    config = ast.literal_eval(node.value)
                    return {**config, "NUM_SEEDS": seeds, "TOTAL_TIMESTEPS": steps, "WANDB_MODE": "disabled"}
    raise AnchorError(f"{REQUIRED['dqn'][0]}: no `config = {{...}}` literal in main()")


def load_yaml(path: Path) -> dict:
    """YAML as hydra's OmegaConf reads it: `5e5` is the float 500000.0 (plain YAML 1.1 makes it a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader plus OmegaConf's float form without a dot."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    return yaml.load(path.read_text(), Loader=Loader) or {}


def pqn_config(root: Path, seeds: int, steps: int) -> dict:
    """pqn_gymnax's config as `python pqn_gymnax.py +alg=pqn_cartpole` builds it (config.yaml, its `alg` group
    set to pqn_cartpole.yaml, flattened as in single_run), with this benchmark's seeds and steps; nothing saved.
    TOTAL_TIMESTEPS_DECAY keeps the yaml's value, so the schedules keep their horizon at any budget."""
    top_path = root / "purejaxql/config/config.yaml"
    top = load_yaml(top_path) if top_path.is_file() else {"SEED": 0, "WANDB_MODE": "disabled"}
    alg = {**(top.get("alg") or {}), **load_yaml(root / REQUIRED["pqn"][1])}
    config = {**top, "alg": alg, **alg}
    return {**config, "NUM_SEEDS": seeds, "TOTAL_TIMESTEPS": steps, "WANDB_MODE": "disabled", "SAVE_PATH": None}


def time_train(make_train, config: dict, seeds: int) -> tuple[dict, dict]:
    """Time `jax.jit(jax.vmap(make_train(config)))(rngs)` as the re-implementations' run() does (timing.time_fresh)."""
    import jax

    def build():
        # make_train writes into its config: give it a copy.
        rngs = jax.random.split(jax.random.PRNGKey(int(config.get("SEED", 0))), seeds)
        return jax.jit(jax.vmap(make_train(dict(config)))), rngs

    return time_fresh(build)


def flashbax_name() -> str:
    """The buffer their dqn.py used (it always uses flashbax's flat buffer)."""
    import importlib.metadata

    try:
        return f"flashbax {importlib.metadata.version('flashbax')} make_flat_buffer"
    except importlib.metadata.PackageNotFoundError:
        return "flashbax make_flat_buffer"


def run_dqn(root: Path, seeds: int, steps: int) -> dict:
    """The real dqn.py on CartPole: its return per seed is the mean of its `returns` metric over the last
    DQN_RETURN_WINDOW env steps, as reference_dqn.run() reports."""
    import numpy as np

    module = import_theirs("dqn", root)
    config = dqn_config(root, seeds, steps)
    out, timings = time_train(module.make_train, config, seeds)
    returns = np.asarray(out["metrics"]["returns"]).reshape(seeds, -1)
    window = max(1, DQN_RETURN_WINDOW // int(config["NUM_ENVS"]))
    per_seed = returns[:, -window:].mean(axis=1)
    return {
        "final_return_mean": float(per_seed.mean()),
        "final_return_per_seed": [float(x) for x in per_seed],
        "buffer": flashbax_name(),
        **timings,
    }


def run_pqn(root: Path, seeds: int, steps: int) -> dict:
    """The real pqn_gymnax.py at pqn_cartpole: its return per seed is the last greedy test during training
    (`test/returned_episode_returns`), as reference_pqn.run() reports; the training return when tests are off."""
    import numpy as np

    module = import_theirs("pqn", root)
    config = pqn_config(root, seeds, steps)
    out, timings = time_train(module.make_train, config, seeds)
    metrics = {k: np.asarray(v).reshape(seeds, -1) for k, v in out["metrics"].items()}
    train_return = metrics["returned_episode_returns"][:, -1]
    per_seed = metrics.get("test/returned_episode_returns", metrics["returned_episode_returns"])[:, -1]
    return {
        "updates": int(metrics["update_steps"].shape[1]),
        "final_return_mean": float(per_seed.mean()),
        "final_return_per_seed": [float(x) for x in per_seed],
        "final_train_return_per_seed": [float(x) for x in train_return],
        **timings,
    }


def main() -> None:
    """Print one JSON line: the run() dict of the real script in SOURCE (exit 2 with one line on AnchorError)."""
    ap = argparse.ArgumentParser(description="Time the real reference script from a source checkout.")
    ap.add_argument("kind", choices=sorted(ENV_VARS))
    ap.add_argument("source", help="the purejaxrl (dqn) or purejaxql (pqn) checkout")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=500_000)
    args = ap.parse_args()
    try:
        root = check_source(args.kind, args.source)
        result = (run_dqn if args.kind == "dqn" else run_pqn)(root, args.seeds, args.steps)
    except AnchorError as e:
        print(f"anchors: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as e:
        # Their code failed: the traceback for whoever reads stderr, then the one line run_real reports (jax
        # appends notes after a traceback, so its last line is not always the exception).
        traceback.print_exc()
        print(f"anchors: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}", file=sys.stderr)
        raise SystemExit(1) from None
    import jax

    head = {"seeds": args.seeds, "steps": args.steps, "source": str(root), "label": label(args.kind)}
    print(json.dumps({**head, **result, "backend": jax.default_backend()}))


if __name__ == "__main__":
    main()
