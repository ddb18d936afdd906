"""`Sampler` and `generate`: prompts in, tokens (and their log-probs) out.

```python
from read_jax.sampling import generate
out = generate(model, prompt_ids, max_new_tokens=128, temperature=0.0, top_p=1.0, top_k=0,
               eos_id=None, seed=0, topk_logprobs=0, mesh=None)
out.tokens[i]                 # list[int]: new tokens of prompt i, ending with the first eos if one was emitted
out.token_logprobs[i]         # list[float], same length
out.topk_ids[i], out.topk_logprobs[i]   # [len, k] numpy when topk_logprobs > 0

sampler = Sampler(model, mesh=None)     # split (and place) once, for repeated calls
out = sampler.generate(prompt_ids, max_new_tokens=128, ...)   # same arguments, minus mesh
texts = generate_text(model, tokenizer, ["question?"], max_new_tokens=64)   # strings in, strings out
```

- The programs (`decode.prefill`, `decode.decode`) call the model's own forward pass; the
  sampling rule is `rule.sample_logits`.
- Compiles are bounded by bucketing: batch, prompt length and the new-token buffer are
  rounded up to powers of two (dummy rows are padded in, marked done from the start); the
  cache holds ``prompt_bucket + new_bucket`` slots, never attending over more than twice the
  needed slots.  ``max_new_tokens`` itself, temperature, top-p, top-k, the seed and the eos
  ids are traced arrays: changing them never recompiles.
- Randomness: row ``i`` uses ``fold_in(fold_in(key(seed), i), step)``, so a seed gives the
  same output every time, and a row's output depends only on its own prompt, parameters,
  row index and the seed -- never on the other rows, the batch bucket or its left padding.
- Under a mesh the parameters are placed by the rule table (`read_jax.sharding`), the
  batch (and the KV cache) is sharded over the data axes, the cache's KV heads over 'tp'.
  On a CPU host the sampler also builds the model's `StackedWeights` (the CPU decode layout,
  `read_jax.backend`); the benchmark docs say where the decode step's time goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from read_jax import backend
from read_jax.distributed import to_host
from read_jax.models.decoder import Decoder, StackedWeights
from read_jax.sampling.decode import SamplingParams, cache_phases, decode, prefill
from read_jax.sharding import BATCH_AXES, batch_sharding, place, state_shardings

MIN_PROMPT_BUCKET = 8
MIN_EOS_SLOTS = 4


# --------------------------------------------------------------------------- output
@dataclasses.dataclass
class GenerateOutput:
    """Per-prompt results (lists indexed like the prompts)."""

    tokens: list[list[int]]
    token_logprobs: list[list[float]]
    topk_ids: list[np.ndarray] | None = None       # each [len, k] int32
    topk_logprobs: list[np.ndarray] | None = None  # each [len, k] float32
    finished: list[bool] = dataclasses.field(default_factory=list)  # True when an eos was emitted

    @property
    def num_generated_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


# --------------------------------------------------------------------------- helpers
def bucket(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def _per_example(value: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full((n,), arr, dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or {n} values (one per prompt), got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- public API
def _eos_ids(eos_id: int | Sequence[int] | None, config) -> list[int]:
    if eos_id is None:
        return list(config.eos_ids)
    if isinstance(eos_id, (int, np.integer)):
        return [int(eos_id)]
    return [int(e) for e in eos_id]


class Sampler:
    """A model prepared for repeated generation: split once into (graphdef, state), and with
    ``mesh`` its parameters placed by the rule table once.  Holds a snapshot of the parameters
    taken at construction (build a new one after updating the model).  ReAD's teacher is
    fixed, so a run builds one and calls `generate` many times; the module-level `generate`
    builds a throw-away one per call (one `nnx.split`, milliseconds)."""

    def __init__(self, model: Decoder, mesh: Mesh | None = None):
        self.config = model.config
        self.mesh = mesh
        self.graphdef, state = nnx.split(model)
        if mesh is not None:
            state = jax.tree.map(lambda v, s: v.replace(place(v.get_value(), s)), state, state_shardings(mesh, state),
                                 is_leaf=lambda x: isinstance(x, nnx.Variable))
        self.state = state
        self.platform = backend.platform_of(mesh if mesh is not None else jax.devices()[0])
        self.stacked = (StackedWeights.of(nnx.merge(self.graphdef, state))
                        if backend.cpu_decode_layout(self.platform) else None)

    def generate(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 128,
                 temperature: float | Sequence[float] = 0.0, top_p: float | Sequence[float] = 1.0,
                 top_k: int | Sequence[int] = 0, eos_id: int | Sequence[int] | None = None, seed: int = 0,
                 topk_logprobs: int = 0, pad_id: int | None = None) -> GenerateOutput:
        """See the module-level `generate`."""
        with backend.on_platform(self.platform):  # CPU-only kernels only on CPU devices
            return self._generate(prompt_ids, max_new_tokens, temperature, top_p, top_k, eos_id, seed,
                                  topk_logprobs, pad_id)

    def _generate(self, prompt_ids, max_new_tokens, temperature, top_p, top_k, eos_id, seed, topk_logprobs,
                  pad_id) -> GenerateOutput:
        config, mesh = self.config, self.mesh
        prompts = [list(map(int, p)) for p in prompt_ids]
        n = len(prompts)
        k = int(topk_logprobs)
        if n == 0:
            return GenerateOutput([], [], [] if k else None, [] if k else None, [])
        if any(len(p) == 0 for p in prompts):
            raise ValueError("generate: every prompt needs at least one token")
        if max_new_tokens < 1:
            raise ValueError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
        if not 0 <= k <= config.vocab_size:
            raise ValueError(f"generate: topk_logprobs must be in [0, {config.vocab_size}], got {k}")
        temp = _per_example(temperature, n, "temperature", np.float32)
        tp = _per_example(top_p, n, "top_p", np.float32)
        tk = _per_example(top_k, n, "top_k", np.int32)
        if (temp < 0).any() or not np.isfinite(temp).all():
            raise ValueError("generate: temperature must be finite and >= 0")
        if (tp <= 0).any() or (tp > 1).any():
            raise ValueError("generate: top_p must be in (0, 1]")
        if (tk < 0).any():
            raise ValueError("generate: top_k must be >= 0")
        eos = _eos_ids(eos_id, config)
        if pad_id is None:
            pad_id = config.pad_token_id if config.pad_token_id is not None else 0

        # bucketing: batch, prompt length and new-token buffer to powers of two
        data_size = 1 if mesh is None else int(np.prod([mesh.shape[a] for a in BATCH_AXES]))
        b = bucket(n, data_size)
        b = -(-b // data_size) * data_size
        t = bucket(max(len(p) for p in prompts), MIN_PROMPT_BUCKET)
        n_out = bucket(max_new_tokens)
        ids = np.full((b, t), pad_id, np.int32)
        mask = np.zeros((b, t), np.bool_)
        for i, p in enumerate(prompts):
            ids[i, t - len(p):] = p
            mask[i, t - len(p):] = True
        mask[n:, -1] = True  # dummy rows: one valid token, done from the start

        def pad_rows(a: np.ndarray, fill) -> np.ndarray:
            return np.concatenate([a, np.full((b - n,), fill, a.dtype)])

        eos_arr = np.full((bucket(len(eos), MIN_EOS_SLOTS),), -1, np.int32)
        eos_arr[:len(eos)] = eos
        params = SamplingParams(
            temperature=pad_rows(temp, 0.0), top_p=pad_rows(tp, 1.0), top_k=pad_rows(tk, 0),
            seed=np.asarray(seed, np.uint32), eos=eos_arr, active=np.arange(b) < n,
            max_new_tokens=np.asarray(max_new_tokens, np.int32))
        if mesh is not None:
            ids, mask = (place(a, batch_sharding(mesh, 2)) for a in (ids, mask))
            rep = NamedSharding(mesh, P())
            params = jax.tree.map(lambda a: place(a, batch_sharding(mesh, 1) if a.shape == (b,) else rep), params)

        phases = cache_phases(t, n_out)
        prefilled = prefill(self.graphdef, self.state, ids, mask, params.active, cache_len=t + n_out, mesh=mesh)
        s = decode(self.platform)(self.graphdef, self.state, self.stacked, prefilled, params, n_out=n_out,
                                  phases=phases, k=k, mesh=mesh)
        # gathered from every process when the batch is sharded over several (`read_jax.distributed`)
        steps, tokens, logprobs, top_ids, top_lps = to_host(
            (s.step, s.tokens, s.logprobs, s.topk_ids, s.topk_logprobs))

        eos_set = set(eos)
        out = GenerateOutput([], [], [] if k else None, [] if k else None, [])
        for i in range(n):
            row = tokens[i, :min(int(steps), max_new_tokens)].tolist()
            length = next((j + 1 for j, tok in enumerate(row) if tok in eos_set), len(row))
            out.tokens.append(row[:length])
            out.token_logprobs.append(logprobs[i, :length].tolist())
            out.finished.append(length > 0 and row[length - 1] in eos_set)
            if k:
                out.topk_ids.append(np.asarray(top_ids[i, :length]))
                out.topk_logprobs.append(np.asarray(top_lps[i, :length]))
        return out


def generate(model: Decoder | Sampler, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 128,
             temperature: float | Sequence[float] = 0.0, top_p: float | Sequence[float] = 1.0,
             top_k: int | Sequence[int] = 0, eos_id: int | Sequence[int] | None = None, seed: int = 0,
             topk_logprobs: int = 0, mesh: Mesh | None = None, pad_id: int | None = None) -> GenerateOutput:
    """Generate up to ``max_new_tokens`` new tokens for each prompt (see the module docstring).

    ``model``: a `Decoder`, or a `Sampler` prepared once for repeated calls.
    ``prompt_ids``: token-id lists of any (non-zero) lengths.  ``temperature`` / ``top_p`` /
    ``top_k``: scalars or one value per prompt.  ``eos_id``: an id or ids (default: the
    model config's eos ids; an empty list = always run ``max_new_tokens``).  ``seed``: row i
    samples with ``fold_in(fold_in(key(seed), i), step)``.  ``topk_logprobs``: k of the
    captured teacher top-k (0 = off).  ``mesh``: run sharded on a ('data','fsdp','tp') mesh.
    ``pad_id``: the id written into left padding (default: config pad id, else 0; never attended).
    """
    if isinstance(model, Sampler):
        if mesh is not None and mesh is not model.mesh:
            raise ValueError("generate: this Sampler was built for another mesh; build one with mesh=")
        sampler = model
    else:
        sampler = Sampler(model, mesh)
    return sampler.generate(prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            top_k=top_k, eos_id=eos_id, seed=seed, topk_logprobs=topk_logprobs, pad_id=pad_id)


def generate_text(model: Decoder | Sampler, tokenizer, prompts: Sequence[str | list[dict[str, str]]], *,
                  use_chat_template: bool = True, skip_special_tokens: bool = True,
                  **kwargs: Any) -> list[str]:
    """Strings in, strings out: encode (through the chat template when the tokenizer has one),
    `generate`, decode the new tokens with the eos stripped.  ``kwargs`` go to `generate`;
    by default eos ids are the model config's plus the tokenizer's ``eos_token_id``."""
    from read_jax.models import encode_prompt

    ids = [encode_prompt(tokenizer, p, use_chat_template=use_chat_template) for p in prompts]
    if kwargs.get("eos_id") is None:
        eos = list(model.config.eos_ids)
        if getattr(tokenizer, "eos_token_id", None) is not None and tokenizer.eos_token_id not in eos:
            eos.append(int(tokenizer.eos_token_id))
        kwargs["eos_id"] = eos
    if kwargs.get("pad_id") is None and getattr(tokenizer, "pad_token_id", None) is not None:
        kwargs["pad_id"] = int(tokenizer.pad_token_id)
    out = generate(model, ids, **kwargs)
    eos_set = set(_eos_ids(kwargs["eos_id"], model.config))
    texts = []
    for toks, fin in zip(out.tokens, out.finished):
        if fin and toks and toks[-1] in eos_set:
            toks = toks[:-1]
        texts.append(tokenizer.decode(toks, skip_special_tokens=skip_special_tokens))
    return texts
