"""Device mesh and logical-axis sharding rules.

Parameters carry *logical* axis names (``Param(..., logical_axes=("embed", "mlp"))``);
one small rule table maps each logical name onto mesh axes of a
``('data', 'fsdp', 'tp')`` mesh.  Keeping the table in one place means a new
parallelism layout is a change of this file, not of the model.

A logical dimension whose size is not divisible by the product of its mesh axes
is replicated instead (e.g. 2 KV heads on a tp=4 mesh): correct everywhere, and
the only sensible choice for tiny test models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tp")
BATCH_AXES = ("data", "fsdp")

# logical axis -> mesh axes (None = replicated).
LOGICAL_RULES: dict[str, tuple[str, ...] | None] = {
    "batch": BATCH_AXES,
    "vocab": ("tp",),
    "embed": ("fsdp",),
    "heads": ("tp",),       # flattened num_heads * head_dim of the query / output projections
    "kv_heads": ("tp",),    # flattened num_kv_heads * head_dim of key / value projections
    "cache_heads": ("tp",), # the KV-head axis of a decode cache
    "mlp": ("tp",),
    "norm": None,
    "head_dim": None,
    "length": None,
}


def make_mesh(shape: Sequence[int] = (-1, 1, 1), devices: Sequence[Any] | None = None) -> Mesh:
    """A ('data', 'fsdp', 'tp') mesh; one entry of ``shape`` may be -1 (fill)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = list(shape)
    if len(shape) != 3:
        raise ValueError(f"mesh shape must have 3 entries (data, fsdp, tp), got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh shape {shape}: at most one entry may be -1")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh shape {tuple(shape)} needs {math.prod(shape)} devices, have {len(devices)}")
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def configured_mesh(shape: Sequence[int], field: str = "mesh") -> Mesh | None:
    """The configured ('data', 'fsdp', 'tp') mesh over every device of every process (`jax.devices()`
    is global in a multi-process run), or None -- one device -- when ``shape`` is empty in a
    one-process run.  A multi-process run without a configured shape is data-parallel over all
    devices, ``(-1, 1, 1)``.  A shape whose product is not the device count is a one-line
    `ReadJaxError` naming ``field``."""
    from read_jax.errors import ReadJaxError

    processes = jax.process_count()
    if not shape:
        if processes == 1:
            return None
        shape = (-1, 1, 1)
    try:
        return make_mesh(tuple(shape))
    except ValueError as err:
        where = f" ({processes} processes x {jax.local_device_count()} local)" if processes > 1 else ""
        raise ReadJaxError(f"{field}: {err}{where}") from None


def logical_to_spec(
    logical_axes: Sequence[str | None], shape: Sequence[int] | None = None, mesh: Mesh | None = None
) -> P:
    """PartitionSpec for a tensor with the given logical axes (divisibility-checked when mesh/shape given)."""
    spec: list[Any] = []
    used: set[str] = set()
    for i, name in enumerate(logical_axes):
        axes = LOGICAL_RULES.get(name) if name is not None else None
        if axes is None:
            spec.append(None)
            continue
        axes = tuple(a for a in axes if a not in used)
        if mesh is not None and shape is not None:
            size = math.prod(mesh.shape[a] for a in axes)
            if size == 0 or shape[i] % size:
                axes = ()
        if not axes:
            spec.append(None)
            continue
        used.update(axes)
        spec.append(axes[0] if len(axes) == 1 else axes)
    return P(*spec)


def named_sharding(mesh: Mesh, logical_axes: Sequence[str | None], shape: Sequence[int]) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(logical_axes, shape, mesh))


def variable_sharding(mesh: Mesh, variable: nnx.Variable) -> NamedSharding:
    """Target sharding of one NNX variable (replicated when it carries no logical axes)."""
    axes = getattr(variable, "logical_axes", None)
    shape = variable.get_value().shape
    if axes is None:
        return NamedSharding(mesh, P())
    return named_sharding(mesh, axes, shape)


def state_shardings(mesh: Mesh, state: nnx.State) -> nnx.State:
    """A pytree of NamedShardings matching ``state`` (NNX variables -> their rule-table sharding)."""
    return jax.tree.map(
        lambda v: variable_sharding(mesh, v),
        state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def shard_module(module: nnx.Module, mesh: Mesh) -> nnx.Module:
    """Move every variable of ``module`` to its rule-table sharding (in place; returns module)."""
    state = nnx.state(module)
    shardings = state_shardings(mesh, state)
    nnx.update(module, jax.tree.map(
        lambda v, s: v.replace(place(v.get_value(), s)),
        state, shardings, is_leaf=lambda x: isinstance(x, nnx.Variable)))
    return module


def place(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
    """``jax.device_put(x, sharding)`` of a value every process holds alike (a batch, a parameter).

    With a sharding over several processes' devices, each process builds only the shards of its
    own devices from its host copy (`jax.make_array_from_callback`): no transfer between hosts,
    and none of the cross-host equality check `jax.device_put` runs on host values there (an
    all-gather of the whole value).  Global arrays are resharded by `jax.device_put`."""
    if sharding.is_fully_addressable or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    host = np.asarray(jax.device_get(x) if isinstance(x, jax.Array) else x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Shard the leading (batch) dimension over the data axes, replicate the rest."""
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def shard_batch(mesh: Mesh, batch: Any) -> Any:
    """Place every array of a batch pytree with its leading dim over the data axes."""
    return jax.tree.map(lambda x: place(x, batch_sharding(mesh, np.ndim(x))), batch)
