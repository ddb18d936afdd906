"""The plan file and the device count: what `read-jax plan` reads and checks before jax starts.

jax is imported here only when it already runs: the fake CPU device count (`cpu_devices_ready`)
must be set before it starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from read_jax.config import load_yaml
from read_jax.errors import ReadJaxError

DEVICE_FLAG = "--xla_force_host_platform_device_count"


# ----------------------------------------------------------------------------- the config file
@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """Mesh axis sizes; one may be -1 (filled from the device count)."""

    data: int = 1
    fsdp: int = -1
    tp: int = 1


@dataclasses.dataclass(frozen=True)
class TrainShape:
    rows: int = 8
    length: int = 2048


@dataclasses.dataclass(frozen=True)
class GenerationShape:
    batch: int = 64
    prompt_length: int = 512
    new_tokens: int = 512


@dataclasses.dataclass(frozen=True)
class PlanSpec:
    """A plan file.  ``teacher`` / ``student``: ``config.json`` fields; ``loss``: ``kl`` (CE +
    forward KL, teacher forward inside the step; needs one vocabulary) or ``ce`` (SFT on the
    teacher's text); ``loss_chunk``: `LossConfig.chunk_size`."""

    teacher: dict[str, Any]
    student: dict[str, Any]
    name: str = ""
    dtype: Literal["bfloat16", "float32"] = "bfloat16"
    accelerator: Any = "v5p"
    devices: int | None = None
    mesh: MeshSpec = MeshSpec()
    loss: Literal["kl", "ce"] = "kl"
    loss_chunk: int | str | None = "auto"
    train: TrainShape = TrainShape()
    generation: GenerationShape = GenerationShape()
    margin: float = 0.1


def _positive(path: str, **fields: int) -> None:
    for name, value in fields.items():
        if value < 1:
            raise ReadJaxError(f"{path}: {name} must be >= 1, got {value}")


def load_spec(path: str | Path) -> PlanSpec:
    """Read and check a plan file (every error names the file and the field, on one line)."""
    try:
        spec = load_yaml(PlanSpec, path)
    except ReadJaxError as err:
        raise ReadJaxError(err if str(err).startswith(str(path)) else f"{path}: {err}") from None
    for name in ("teacher", "student"):
        if not isinstance(getattr(spec, name), Mapping):
            raise ReadJaxError(f"{path}: {name}: expected the model's config.json fields as a mapping")
    _positive(str(path), **{"train.rows": spec.train.rows, "train.length": spec.train.length,
                            "generation.batch": spec.generation.batch,
                            "generation.prompt_length": spec.generation.prompt_length,
                            "generation.new_tokens": spec.generation.new_tokens})
    if not 0 <= spec.margin < 1:
        raise ReadJaxError(f"{path}: margin must be in [0, 1), got {spec.margin}")
    return spec


def resolve_mesh(spec: PlanSpec, path: str, devices: int | None) -> tuple[int, tuple[int, int, int]]:
    """(device count, (data, fsdp, tp)) from ``devices`` (or the file's), filling one -1 entry."""
    shape = [spec.mesh.data, spec.mesh.fsdp, spec.mesh.tp]
    if any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
        raise ReadJaxError(f"{path}: mesh: sizes must be >= 1 with at most one -1, got {tuple(shape)}")
    n = devices if devices is not None else spec.devices
    known = math.prod(s for s in shape if s != -1)
    if n is None:
        if -1 in shape:
            raise ReadJaxError(f"{path}: devices: needed when the mesh has a -1 entry (or pass --devices)")
        n = known
    if n < 1:
        raise ReadJaxError(f"{path}: devices must be >= 1, got {n}")
    if -1 in shape:
        if n % known:
            raise ReadJaxError(f"{path}: mesh: {n} devices do not divide over the fixed axes (product {known})")
        shape[shape.index(-1)] = n // known
    if math.prod(shape) != n:
        raise ReadJaxError(f"{path}: mesh: data × fsdp × tp = {' × '.join(map(str, shape))} = {math.prod(shape)} "
                           f"does not equal the device count {n}")
    if spec.train.rows % (shape[0] * shape[1]):
        raise ReadJaxError(f"{path}: train.rows: {spec.train.rows} rows do not divide over data × fsdp = "
                           f"{shape[0] * shape[1]} batch shards")
    return n, (shape[0], shape[1], shape[2])


# ----------------------------------------------------------------------------- fake devices
def _flag_count(flags: str) -> int:
    found = re.findall(rf"{DEVICE_FLAG}=(\d+)", flags)
    return int(found[-1]) if found else 1


def _with_device_count(flags: str, n: int) -> str:
    return (re.sub(rf"\s*{DEVICE_FLAG}=\d+", "", flags) + f" {DEVICE_FLAG}={n}").strip()


def cpu_devices_ready(n: int) -> bool:
    """Make ``n`` CPU devices available to this process if jax has not started yet; True when it has them."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if _flag_count(flags) < n:
            os.environ["XLA_FLAGS"] = _with_device_count(flags, n)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        return True
    import jax

    return len(jax.devices("cpu")) >= n
