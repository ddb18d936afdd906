"""The experiment directory's own consistency: which read_jax version wrote it, whether it holds this
experiment's config, and undoing what a failed start wrote, so a resume never mixes two experiments."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import read_jax
from read_jax.config import from_dict, to_dict
from read_jax.errors import ReadJaxError
from read_jax.experiment.config import ExperimentConfig
from read_jax.run_files import read_json

VERSION_FILE = "version.json"


def _undo_writes(undo: dict[Path, bytes | None], created_dir: Path | None) -> None:
    """A start that failed (bad teacher output, a prompt over the context, a full disk) leaves the directory
    as it was: files it replaced get their bytes back, files it added go, a directory it created goes."""
    for path, old in undo.items():
        with contextlib.suppress(OSError):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
    if created_dir is not None:
        with contextlib.suppress(OSError):
            created_dir.rmdir()  # only when empty: never removes what it did not write


def _check_version(out: Path) -> None:
    """A directory written by another read_jax version may hold state this one reads differently."""
    path = out / VERSION_FILE
    written = read_json(path, "version record")["read_jax"] if path.exists() else "unknown (before 0.1.0)"
    if written != read_jax.__version__:
        raise ReadJaxError(f"{out}: written by read_jax {written}, this is {read_jax.__version__}; resume it with "
                           "that version or start a new --out")


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted field: (a's value, b's value)} for every leaf where two config dicts differ."""
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.update(_differences(x, y, f"{prefix}{key}."))
        elif x != y:
            out[prefix + key] = (x, y)
    return out


def _check_same_config(saved: Path, config: ExperimentConfig) -> None:
    previous = _with_defaults(read_json(saved, "experiment config"))
    changes = _differences(previous, json.loads(json.dumps(to_dict(config))))
    if changes:
        field, (old, new) = next(iter(changes.items()))
        raise ReadJaxError(f"{saved}: this directory holds a different experiment ({field} is {old!r} there, "
                           f"{new!r} here); use another --out, or --resume DIR {field}=VALUE to change it")


def _with_defaults(saved: Any) -> Any:
    """A saved experiment.json with the fields added since it was written (e.g. ``mesh``) at their
    defaults, as `to_dict` of the config it describes would write it now."""
    try:
        return json.loads(json.dumps(to_dict(from_dict(ExperimentConfig, saved))))
    except (ReadJaxError, TypeError):
        return saved
