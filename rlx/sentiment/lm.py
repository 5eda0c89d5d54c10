"""Train the byte-level mLSTM language model: truncated BPTT, several seeds vmapped, orbax checkpoints.

`batch` byte streams read disjoint regions of one corpus file (one document per line, streamed, never
loaded whole). Each window of `window` bytes continues where the last one stopped and the (c, h) state is
carried across windows. All seeds read the same stream and differ in their initialisation. `steps` counts
optimizer updates here (an update consumes batch × window bytes per seed). The chunked loop is
rlx.loop.run_chunks, the same loop as the RL agents', so Ctrl-C, checkpoints and resume behave alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlx.errors import UserError
from rlx.sentiment import data
from rlx.sentiment.mlstm import MLSTM, init_params, zero_carry


@dataclass(frozen=True)
class LMConfig:
    """Language-model settings. hidden, embed, batch and window set shapes (one compile each); the rest are data."""

    noun: ClassVar[str] = "language-model setting"  # what error messages call a key of this config

    hidden: int = 128
    embed: int = 64
    batch: int = 32  # parallel byte streams
    window: int = 128  # truncated-BPTT length in bytes
    steps: int = 3000  # optimizer updates
    lr: float = 3e-3  # decayed linearly to 0 over `steps`
    clip: float = 1.0  # global gradient-norm clip
    chunk: int = 250  # updates per compiled chunk (progress, metrics and checkpoint after each)
    seed: int = 0
    dtype: str = "auto"  # matmul dtype: auto (bf16 on GPU, float32 on CPU), float32 or bfloat16

    def check(self) -> LMConfig:
        """Raise UserError for impossible values; returns self."""
        for name in ("hidden", "embed", "batch", "window", "steps", "chunk"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}.")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UserError(f"lr must be a positive number, got {self.lr}.")
        if not self.clip > 0:
            raise UserError(f"clip must be positive, got {self.clip}.")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise UserError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}.")
        return self

    def compute_dtype(self):
        """The matmul dtype this config runs with on the current backend."""
        if self.dtype == "auto":
            return jnp.bfloat16 if jax.default_backend() == "gpu" else jnp.float32
        return jnp.dtype(self.dtype)


def config_from(settings: dict) -> LMConfig:
    """LMConfig from a dict of settings (config.json, an experiment module, `--set` strings; keys may carry an
    `lm.` prefix), type-checked by the one override parser (rlx.config.apply_overrides) and checked."""
    from rlx import config as C

    return C.apply_overrides(LMConfig(), {k.removeprefix("lm."): v for k, v in settings.items()})


# ---------------------------------------------------------------------------------------------
# Byte streams over a corpus file


class ByteStreams:
    """`batch` streams over disjoint line-aligned regions of a one-document-per-line file, wrapping around.

    Each document is preprocessed as in the paper (rlx.sentiment.data.preprocess). position() / seek() give and
    take a JSON-able position so a resumed run reads exactly what an uninterrupted one would.
    """

    def __init__(self, path: Path, batch: int, window: int):
        self.path, self.window = Path(path), window
        self.file = open(self.path, "rb")  # noqa: SIM115 - held for the life of the streams
        self.size = size = self.path.stat().st_size
        starts = sorted({self._line_start(i * size // batch) for i in range(batch)} - {size})
        # A corpus with fewer lines than streams: the surplus streams read the whole file from other lines.
        self.regions = []
        for i in range(batch):
            if i < len(starts):
                self.regions.append((starts[i], starts[i + 1] if i + 1 < len(starts) else size))
            else:
                self.regions.append((0, size))
        # A region of blank lines only (or a file with fewer lines than streams): that stream reads the whole file.
        self.regions = [r if self._has_text(*r) else (0, size) for r in self.regions]
        if not self._has_text(0, size):
            raise UserError(f"corpus {self.path} has no non-blank line; give a file of text, one document per line.")
        self.replaced = 0
        self.seek([[a, 0] for a, _ in self.regions])

    def _line_start(self, offset: int) -> int:
        if offset == 0:
            return 0
        self.file.seek(offset - 1)
        self.file.readline()  # to the end of the line that holds offset - 1
        return self.file.tell()

    def _read_doc(self, offset: int) -> tuple[int, str | None, int]:
        """(next offset, the line's text or None if blank, 1 if it had undecodable bytes)."""
        self.file.seek(offset)
        raw = self.file.readline()
        try:
            text, replaced = raw.decode("utf-8"), 0
        except UnicodeDecodeError:
            text, replaced = raw.decode("utf-8", errors="replace"), 1
        return self.file.tell(), (text if text.strip() else None), replaced

    def _has_text(self, lo: int, hi: int) -> bool:
        while lo < hi:
            lo, text, _ = self._read_doc(lo)
            if text is not None:
                return True
        return False

    def _next_doc(self, s: int) -> None:
        lo, hi = self.regions[s]
        for _ in range(2):  # to the region's end, then once more from its start (it holds text: __init__)
            while self.next_off[s] < hi:
                off = self.next_off[s]
                self.next_off[s], text, replaced = self._read_doc(off)
                if text is not None:
                    self.replaced += replaced
                    self.docs[s].append((off, data.preprocess(text)))
                    return
            self.next_off[s] = lo
        raise UserError(f"corpus {self.path} has no non-blank line; give a file of text, one document per line.")

    def seek(self, position) -> None:
        """Continue from a position() saved earlier."""
        self.docs = [[] for _ in self.regions]
        self.next_off = [int(off) for off, _ in position]
        self.skip = [int(skip) for _, skip in position]
        for s in range(len(self.regions)):
            self._next_doc(s)

    def position(self) -> list[list[int]]:
        """Per stream: file offset of the document it is in and how many of its bytes are consumed."""
        return [[docs[0][0], skip] for docs, skip in zip(self.docs, self.skip, strict=True)]

    def take(self, n: int) -> np.ndarray:
        """The next n windows of every stream, (n, batch, window + 1) uint8; consecutive windows overlap by one
        byte (the last target of one is the first input of the next)."""
        out = np.empty((n, len(self.regions), self.window + 1), np.uint8)
        for s in range(len(self.regions)):
            docs = self.docs[s]
            for k in range(n):
                while sum(len(d) for _, d in docs) - self.skip[s] < self.window + 1:
                    self._next_doc(s)
                buf = b"".join(d for _, d in docs)[self.skip[s] : self.skip[s] + self.window + 1]
                out[k, s] = np.frombuffer(buf, np.uint8)
                self.skip[s] += self.window
                while self.skip[s] >= len(docs[0][1]):
                    self.skip[s] -= len(docs[0][1])
                    docs.pop(0)
                    if not docs:
                        self._next_doc(s)
        return out

    def close(self) -> None:
        """Close the corpus file."""
        self.file.close()


def write_corpus(texts, path: Path) -> Path:
    """Write texts one per line (newlines inside a text become spaces, as preprocess would make them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(t.replace("\r", " ").replace("\n", " ") + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# The compiled programs


class LMState(NamedTuple):
    """One seed's training state (arrays only: checkpointable as is)."""

    params: Any
    opt_state: Any
    carry: Any


def _optimizer(cfg: LMConfig):
    sched = optax.linear_schedule(cfg.lr, 0.0, cfg.steps)
    return optax.chain(optax.clip_by_global_norm(cfg.clip), optax.adam(sched))


def make_train(cfg: LMConfig):
    """(init(key) -> LMState, chunk(state, windows (n, B, W+1)) -> (state, mean loss in nats)) for one seed."""
    model = MLSTM(cfg.hidden, cfg.embed, cfg.compute_dtype())
    opt = _optimizer(cfg)

    def init(key):
        params = init_params(key, cfg.hidden, cfg.embed)
        return LMState(params, opt.init(params), zero_carry(cfg.batch, cfg.hidden))

    def loss_fn(params, carry, window):
        logits, carry, _ = model.apply({"params": params}, carry, window[:, :-1])
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, window[:, 1:].astype(jnp.int32))
        return nll.mean(), carry

    def update(state, window):
        (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.carry, window)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        # Truncated BPTT: the state flows on, its gradient does not.
        carry = jax.tree.map(jax.lax.stop_gradient, carry)
        return LMState(optax.apply_updates(state.params, updates), opt_state, carry), loss

    def chunk(state, windows):
        state, losses = jax.lax.scan(update, state, windows)
        return state, losses.mean()

    return init, chunk


def seed_states(cfg: LMConfig, seeds: int):
    """(per-seed keys, the abstract stacked LMState) sharded over devices: what init starts and restore fills."""
    from rlx import loop

    sharding = loop.seed_sharding(seeds)
    keys = jax.device_put(loop.seed_keys(cfg, seeds), sharding)
    shapes = jax.eval_shape(jax.vmap(make_train(cfg)[0]), keys)
    return keys, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def train(cfg: LMConfig, corpus: Path, run_dir, seeds: int = 1, *, resume: bool = False,
          on_chunk: Callable | None = None) -> dict:
    """Train `seeds` language models on the corpus file for cfg.steps updates; returns the per-seed parameters
    (stacked on a leading seed axis) and the training summary. Metrics rows go to run_dir/metrics.jsonl."""
    from rlx import loop

    cfg.check()
    if seeds <= 0:
        raise UserError(f"seeds must be positive, got {seeds}.")
    wall0 = time.perf_counter()
    init, chunk = make_train(cfg)
    keys, abstract = seed_states(cfg, seeds)
    init_v = jax.jit(jax.vmap(init))
    chunk_v = jax.jit(jax.vmap(chunk, in_axes=(0, None)), donate_argnums=0)
    streams = ByteStreams(corpus, cfg.batch, cfg.window)
    mngr = loop.checkpointer(run_dir.checkpoint_dir)
    steps_done, state, meta = 0, None, {}
    if resume:
        steps_done, state, meta = loop.restore_latest(mngr, abstract, run_dir.path)
        run_dir.truncate_metrics(steps_done)
        if state is not None:
            streams.seek(meta["streams"])
    if state is None:
        state = init_v(keys)
    prior_wall = float(meta.get("wall_seconds", 0.0))
    last = {"bpb": None}

    def one_chunk(state, steps_done):
        n = min(cfg.chunk, cfg.steps - steps_done)
        windows = jnp.asarray(streams.take(n))
        state, loss = chunk_v(state, windows)
        steps_done += n
        bpb = np.asarray(loss) / math.log(2.0)
        last["bpb"] = bpb
        rows = [{"seed": i, "steps": steps_done, "bits_per_byte": float(b)} for i, b in enumerate(bpb)]
        run_dir.append_metrics(rows)
        meta = {"steps": steps_done, "streams": streams.position(),
                "wall_seconds": prior_wall + time.perf_counter() - wall0}
        return state, steps_done, meta, rows

    try:
        state, steps_done = loop.run_chunks(mngr, run_dir.path, state, steps_done, cfg.steps, one_chunk, on_chunk)
    finally:
        streams.close()
    if last["bpb"] is None:  # a finished run resumed: take its last training loss from the metrics
        rows = [r for r in run_dir.read_metrics() if r.get("steps") == steps_done]
        last["bpb"] = np.array([r["bits_per_byte"] for r in sorted(rows, key=lambda r: r["seed"])])
    return {
        "params": state.params,
        "steps": steps_done,
        "train_bits_per_byte": [float(b) for b in last["bpb"]],
        "bytes_per_seed": steps_done * cfg.batch * cfg.window,
        "wall_seconds": round(prior_wall + time.perf_counter() - wall0, 3),
        "replaced_lines": streams.replaced,
    }


# ---------------------------------------------------------------------------------------------
# Reading texts: features (final cell state), bits per byte, per-byte traces


def bits_per_byte(nats: np.ndarray, texts: list[bytes]) -> float:
    """Mean bits per predicted byte from Reader.read's nats (each text's first byte has nothing to predict it)."""
    return float(nats.sum() / max(1, sum(len(t) - 1 for t in texts)) / math.log(2.0))


@dataclass
class Reader:
    """Reads preprocessed texts with one model: batched, length-sorted, in fixed windows with the state carried
    and padding masked, so a batch compiles once whatever the lengths."""

    hidden: int
    embed: int = 64
    batch: int = 64
    window: int = 256
    compute_dtype: Any = jnp.float32

    def __post_init__(self):
        model = MLSTM(self.hidden, self.embed, self.compute_dtype)

        def step(params, carry, tokens, targets, mask, tmask):
            logits, carry, _ = model.apply({"params": params}, carry, tokens, mask)
            logp = jax.nn.log_softmax(logits.astype(jnp.float32))
            picked = jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
            return carry, jnp.sum(jnp.where(tmask, -picked, 0.0), axis=1)

        self._step = jax.jit(step)
        self._trace = jax.jit(lambda p, c, t: model.apply({"params": p}, c, t, return_cells=True)[2])

    def read(self, params, texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(final cell states (n, hidden) float32, nats spent predicting each text's bytes after its first (n,))."""
        n = len(texts)
        cells = np.zeros((n, self.hidden), np.float32)
        nats = np.zeros(n, np.float64)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for lo in range(0, n, self.batch):
            idx = order[lo : lo + self.batch]
            longest = max(len(texts[i]) for i in idx)
            span = max(1, math.ceil(longest / self.window)) * self.window
            tok = np.zeros((self.batch, span + 1), np.uint8)
            lens = np.zeros(self.batch, np.int64)
            for r, i in enumerate(idx):
                tok[r, : len(texts[i])] = np.frombuffer(texts[i], np.uint8)
                lens[r] = len(texts[i])
            pos = np.arange(span + 1)[None, :]
            mask, tmask = pos < lens[:, None], pos + 1 < lens[:, None]
            carry = zero_carry(self.batch, self.hidden)
            total = jnp.zeros(self.batch)
            for w in range(0, span, self.window):
                s = slice(w, w + self.window)
                t = slice(w + 1, w + self.window + 1)
                carry, part = self._step(params, carry, tok[:, s], tok[:, t], mask[:, s], tmask[:, s])
                total = total + part
            cells[idx] = np.asarray(carry[0])[: len(idx)]
            nats[idx] = np.asarray(total)[: len(idx)]
        return cells, nats

    def features(self, params, texts: list[bytes]) -> np.ndarray:
        """The final cell state after each text (the paper's features)."""
        return self.read(params, texts)[0]

    def bits_per_byte(self, params, texts: list[bytes]) -> float:
        """Mean bits per predicted byte over the texts."""
        return bits_per_byte(self.read(params, texts)[1], texts)

    def trace(self, params, text: bytes, unit: int) -> np.ndarray:
        """The unit's cell value after each byte of one text (len(text),)."""
        span = max(1, math.ceil(len(text) / 64)) * 64  # a few lengths, a few compiles
        tok = np.zeros((1, span), np.uint8)
        tok[0, : len(text)] = np.frombuffer(text, np.uint8)
        cells = self._trace(params, zero_carry(1, self.hidden), tok)
        return np.asarray(cells[0, : len(text), unit])


def generate(params, hidden: int, prompt: bytes, n: int, key, *, temperature: float = 1.0, embed: int = 64,
             clamp: tuple[int, float] | None = None) -> bytes:
    """Sample n bytes after the prompt; clamp=(unit, value) holds that cell unit at value after every byte
    (the paper's controllable generation)."""
    if n <= 0:
        raise UserError(f"the number of bytes to generate must be positive, got {n}.")
    if not temperature > 0:
        raise UserError(f"temperature must be positive, got {temperature}.")
    model = MLSTM(hidden, embed)
    unit, value = clamp if clamp is not None else (0, 0.0)
    if clamp is not None and not 0 <= unit < hidden:
        raise UserError(f"unit {unit} does not exist in a model of {hidden} units; give 0..{hidden - 1}.")

    def hold(carry):
        c, h = carry
        return (c.at[:, unit].set(value), h) if clamp is not None else (c, h)

    @jax.jit
    def run(params, prompt_tok, key):
        def feed(carry, tok):
            logits, carry, _ = model.apply({"params": params}, carry, tok[None, None])
            return hold(carry), logits[0, -1]

        carry, logits = jax.lax.scan(feed, zero_carry(1, hidden), prompt_tok)

        def sample(state, key):
            carry, logit = state
            tok = jax.random.categorical(key, logit / temperature).astype(jnp.uint8)
            logits, carry, _ = model.apply({"params": params}, carry, tok[None, None])
            return (hold(carry), logits[0, -1]), tok

        _, toks = jax.lax.scan(sample, (carry, logits[-1]), jax.random.split(key, n))
        return toks

    prompt = prompt or b"\n "
    return bytes(np.asarray(run(params, jnp.asarray(np.frombuffer(prompt, np.uint8)), key)).tolist())
