"""Hugging Face checkpoints: strict import into the NNX decoder, and export back.

Import reads ``config.json`` and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``) into the *abstract* model built with ``nnx.eval_shape``,
so no random weights are ever materialised, and places every tensor directly in its
target sharding with ``jax.make_array_from_callback``: each device's callback reads only
its slice of the tensor from the memory-mapped file.

Checkpoint keys are mapped by one ordered table of templates (`KEY_TABLE`) that serves
both directions.  Loading is strict: a key matching two patterns, a model weight left
unfilled, a shape mismatch, or a non-float tensor where a float parameter is expected are
all collected and raised once as a `CheckpointFormatError`; checkpoint keys the model does
not use are logged.  Float tensors are cast to the requested parameter dtype.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, SingleDeviceSharding
from safetensors import safe_open
from safetensors.numpy import save_file

from read_jax.distributed import to_host
from read_jax.errors import CheckpointFormatError
from read_jax.models.config import DecoderConfig
from read_jax.models.decoder import Decoder
from read_jax.sharding import named_sharding

log = logging.getLogger(__name__)

# (HF key template, our parameter path template, transpose).  Placeholders in braces
# are filled from `_PLACEHOLDERS`; the same table maps HF -> ours and ours -> HF.
KEY_TABLE: tuple[tuple[str, str, bool], ...] = (
    ("model.embed_tokens.weight", "embed_tokens", False),
    ("model.layers.{i}.self_attn.{proj}_proj.weight", "layers.{i}.self_attn.{proj}_proj.kernel", True),
    ("model.layers.{i}.self_attn.{proj}_proj.bias", "layers.{i}.self_attn.{proj}_proj.bias", False),
    ("model.layers.{i}.self_attn.{qk}_norm.weight", "layers.{i}.self_attn.{qk}_norm.weight", False),
    ("model.layers.{i}.mlp.{mlp}_proj.weight", "layers.{i}.mlp.{mlp}_proj.kernel", True),
    ("model.layers.{i}.{ln}.weight", "layers.{i}.{ln}.weight", False),
    ("model.norm.weight", "norm.weight", False),
    ("lm_head.weight", "lm_head.kernel", True),
)
_PLACEHOLDERS = {
    "i": r"\d+",
    "proj": "q|k|v|o",
    "qk": "q|k",
    "mlp": "gate|up|down",
    "ln": "input_layernorm|post_attention_layernorm",
}
# Buffers some exporters write that carry no learned state.
IGNORED_KEYS = (re.compile(r"\.rotary_emb\.inv_freq$"),)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name, alternatives in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{alternatives})")
    return re.compile(f"^{pattern}$")


_HF_TO_OURS = tuple((_compile(hf), ours, transpose) for hf, ours, transpose in KEY_TABLE)
_OURS_TO_HF = tuple((_compile(ours), hf, transpose) for hf, ours, transpose in KEY_TABLE)


def _path_str(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def hf_key_matches(key: str) -> list[tuple[str, bool]]:
    """Every (our path, transpose) that an HF key maps to; more than one is a table error."""
    return [(ours.format(**m.groupdict()), t) for rx, ours, t in _HF_TO_OURS if (m := rx.match(key))]


def hf_key_for(path: str) -> tuple[str, bool]:
    """The HF key (and transpose flag) of one of our parameter paths."""
    hits = [(hf.format(**m.groupdict()), t) for rx, hf, t in _OURS_TO_HF if (m := rx.match(path))]
    if len(hits) != 1:
        raise CheckpointFormatError(f"parameter {path!r} maps to {len(hits)} checkpoint keys (expected 1)")
    return hits[0]


# --------------------------------------------------------------------------- config / tokenizer
def read_hf_config(hf_dir: str | os.PathLike, dtype: str = "float32") -> DecoderConfig:
    path = Path(hf_dir) / CONFIG_FILE
    if not Path(hf_dir).is_dir():
        raise CheckpointFormatError(f"{hf_dir}: not a directory")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: config.json not found")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(f"{path}: unreadable config ({err})") from None
    return DecoderConfig.from_hf_dict(raw, dtype=dtype)


def load_tokenizer(path: str | os.PathLike):
    """A transformers tokenizer from a local directory (never the hub)."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise CheckpointFormatError(f"{path}: tokenizer directory not found")
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointFormatError(f"{path}: cannot load tokenizer ({str(err).splitlines()[0]})") from None


def encode_prompt(tokenizer, prompt: str | list[dict[str, str]], use_chat_template: bool = True) -> list[int]:
    """Token ids of a prompt; through the chat template when the tokenizer has one.

    ``prompt`` is a user message string or a list of ``{"role", "content"}`` messages.
    """
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    if not isinstance(prompt, str):
        prompt = "\n".join(m["content"] for m in prompt)
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


# --------------------------------------------------------------------------- import
@dataclass
class _Source:
    file: Path
    shape: tuple[int, ...]
    dtype: np.dtype


def _weight_files(hf_dir: Path) -> dict[str, Path]:
    """checkpoint key -> file, from the index or the single weights file."""
    index = hf_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointFormatError(f"{index}: unreadable index ({err!r})") from None
        files = {k: hf_dir / v for k, v in weight_map.items()}
        missing = sorted({str(f.name) for f in files.values() if not f.is_file()})
        if missing:
            raise CheckpointFormatError(f"{index}: shard file(s) listed but missing: {', '.join(missing)}; "
                                        "copy them into the directory or download the checkpoint again")
        return files
    single = hf_dir / WEIGHTS_FILE
    if not single.is_file():
        raise CheckpointFormatError(f"{hf_dir}: neither {WEIGHTS_FILE} nor {INDEX_FILE} found")
    return {}  # filled from the file's own header


@contextlib.contextmanager
def _open_all(files: set[Path]) -> Iterator[dict[Path, Any]]:
    handles: dict[Path, Any] = {}
    with contextlib.ExitStack() as stack:
        for f in sorted(files):
            try:
                handles[f] = stack.enter_context(safe_open(str(f), framework="numpy"))
            except Exception as err:  # safetensors raises its own SafetensorError
                raise CheckpointFormatError(f"{f}: unreadable safetensors file ({err}); it is truncated or "
                                            "corrupt: download or export the checkpoint again") from None
        yield handles


def _np_dtype(name: str) -> np.dtype:
    import ml_dtypes

    table = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
             "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
    return np.dtype(table.get(name, np.uint8))


def load_hf(hf_dir: str | os.PathLike, dtype: str = "float32", mesh: Mesh | None = None
            ) -> tuple[Decoder, DecoderConfig]:
    """Load a Hugging Face Llama / Mistral / Qwen2 / Qwen3 checkpoint into our NNX decoder.

    With ``mesh`` every parameter is created directly in its rule-table sharding, each device's
    slice read from the file by the process that owns the device (no process ever holds a whole
    tensor it does not keep, in a multi-process run on a mesh over every process's devices);
    without, on this process's first device.
    """
    hf_dir = Path(hf_dir)
    config = read_hf_config(hf_dir, dtype=dtype)
    key_files = _weight_files(hf_dir)
    files = set(key_files.values()) or {hf_dir / WEIGHTS_FILE}

    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    targets = {_path_str(p): v for p, v in nnx.to_flat_state(state)}

    with _open_all(files) as handles:
        sources: dict[str, _Source] = {}
        errors: list[str] = []
        for f, h in handles.items():
            for key in h.keys():
                sl = h.get_slice(key)
                sources[key] = _Source(f, tuple(sl.get_shape()), _np_dtype(sl.get_dtype()))
        for key, f in key_files.items():
            if key not in sources:
                errors.append(f"key {key!r}: listed in {INDEX_FILE} but absent from {f.name}")
            elif sources[key].file != f:
                errors.append(f"key {key!r}: index says {f.name}, found in {sources[key].file.name}")

        assigned: dict[str, tuple[str, bool]] = {}
        unused: list[str] = []
        for key in sorted(sources):
            hits = hf_key_matches(key)
            if len(hits) > 1:
                errors.append(f"key {key!r} matches {len(hits)} patterns: {[h[0] for h in hits]}")
                continue
            if not hits:
                if not any(rx.search(key) for rx in IGNORED_KEYS):
                    unused.append(key)
                continue
            path, transpose = hits[0]
            if path not in targets:
                unused.append(key)
                continue
            if path in assigned:
                errors.append(f"key {key!r} fills {path!r}, already filled by {assigned[path][0]!r}")
                continue
            src, want = sources[key], targets[path].get_value()
            shape = src.shape[::-1] if transpose else src.shape
            if tuple(shape) != tuple(want.shape):
                expected = tuple(want.shape)[::-1] if transpose else tuple(want.shape)
                errors.append(f"key {key!r}: shape {src.shape} != expected {expected}")
            elif not np.issubdtype(src.dtype, np.floating) and src.dtype.name != "bfloat16":
                errors.append(f"key {key!r}: dtype {src.dtype.name} is not a float dtype")
            else:
                assigned[path] = (key, transpose)
        for path in sorted(set(targets) - set(assigned)):
            if not any(path == p for p, _ in assigned.items()):
                key_hint = hf_key_for(path)[0]
                if not any(key_hint in e for e in errors):
                    errors.append(f"model weight {path!r} (checkpoint key {key_hint!r}) left unfilled")
        if errors:
            raise CheckpointFormatError(f"{hf_dir}: {len(errors)} problem(s): " + "; ".join(errors)
                                        + f" (the weights do not match {CONFIG_FILE}: export the checkpoint again)")
        if unused:
            log.warning("%s: %d checkpoint key(s) not used by the model: %s", hf_dir, len(unused),
                        ", ".join(unused[:20]) + (" ..." if len(unused) > 20 else ""))

        def make(path: str) -> jax.Array:
            key, transpose = assigned[path]
            variable = targets[path]
            want = variable.get_value()
            sharding = (named_sharding(mesh, variable.logical_axes, want.shape) if mesh is not None
                        else SingleDeviceSharding(jax.local_devices()[0]))
            tensor = handles[sources[key].file].get_slice(key)

            def read(index: tuple[slice, ...]) -> np.ndarray:
                block = tensor[index[::-1]] if transpose else tensor[index]
                block = block.T if transpose else block
                return np.asarray(block).astype(want.dtype)

            return jax.make_array_from_callback(want.shape, sharding, read)

        for path, variable in targets.items():
            variable.set_value(make(path))
    model = nnx.merge(graphdef, state)
    return model, config


# --------------------------------------------------------------------------- export
def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*", size.upper())
    if not m:
        raise CheckpointFormatError(f"max_shard_size {size!r}: expected bytes or e.g. '5GB'")
    return int(float(m.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[m.group(2)])


def hf_state_dict(model: Decoder) -> dict[str, np.ndarray]:
    """Our parameters as an HF-keyed dict of host numpy arrays (gathered from any sharding)."""
    out: dict[str, np.ndarray] = {}
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key, transpose = hf_key_for(_path_str(path))
        value = np.asarray(to_host(variable.get_value()))  # gathered across processes when sharded over them
        out[key] = np.ascontiguousarray(value.T if transpose else value)
    return out


def save_hf(model: Decoder, out_dir: str | os.PathLike, max_shard_size: int | str = "5GB",
            tokenizer: Any = None) -> Path:
    """Write ``config.json`` + safetensors that ``AutoModelForCausalLM.from_pretrained`` loads.

    Files are written to a temporary directory beside ``out_dir`` and moved in only when
    complete, so a failed export never leaves a half-written checkpoint.
    """
    from transformers import AutoConfig

    config: DecoderConfig = model.config
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    limit = _parse_size(max_shard_size)
    tensors = hf_state_dict(model)

    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for key in sorted(tensors):
        nbytes = tensors[key].nbytes
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensors[key]
        size += nbytes

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hf_config = AutoConfig.for_model(config.model_type, **config.to_hf_kwargs())
        hf_config.architectures = [type(hf_config).__name__.replace("Config", "ForCausalLM")]
        hf_config.dtype = config.dtype
        hf_config.save_pretrained(str(tmp))
        metadata = {"format": "pt"}
        if len(shards) == 1:
            save_file(shards[0], str(tmp / WEIGHTS_FILE), metadata=metadata)
        else:
            weight_map = {}
            for i, shard in enumerate(shards, start=1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(tmp / name), metadata=metadata)
                weight_map.update({k: name for k in shard})
            index = {"metadata": {"total_size": int(sum(t.nbytes for t in tensors.values()))},
                     "weight_map": weight_map}
            (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        out_dir.mkdir(exist_ok=True)
        for stale in list(out_dir.glob("model*.safetensors")) + [out_dir / INDEX_FILE]:
            if stale.exists():
                stale.unlink()
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir

