"""Run checkpoints: an orbax `CheckpointManager` with composite items.

A ReAD run saves, after every interval, the pytrees that carry its state (student params,
optimizer state, bandit state, RNG key) plus a JSON item with the loop's bookkeeping
(budget counters, step, data cursors, history length).  The teacher is never checkpointed.

Restores take *abstract targets with shardings* (`jax.ShapeDtypeStruct(shape, dtype,
sharding=...)`), built from the live objects: without them orbax restores with whatever
sharding was saved, which silently breaks a run resumed on a different mesh.

Multi-process runs (`read_jax.distributed`): every process calls `save` / `restore` alike and
orbax writes collectively, each process the shards of its own devices and process 0 the metadata
and the JSON item; the directory must be one every process reaches (a shared file system or a
bucket).  Process-local device arrays (the bandit's state, the RNG key: identical on every
process) are saved and restored as numpy, since orbax refuses host-local `jax.Array`s there.
The directory may be a bucket path (``gs://...``): it is handled as an `etils.epath.Path`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from read_jax import faults
from read_jax.distributed import local_to_numpy, multi_process
from read_jax.errors import ReadJaxError

META = "meta"
STATE = "state"


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs carrying each leaf's current sharding (the restore target)."""
    local_as_numpy = multi_process()

    def leaf(x: Any) -> Any:
        if isinstance(x, jax.Array):
            if local_as_numpy and x.is_fully_addressable:  # saved as numpy (see the module docstring)
                return np.zeros(x.shape, x.dtype)
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x
    return jax.tree.map(leaf, tree)


class RunCheckpointer:
    """Save / restore {name: pytree} plus one JSON-able ``meta`` dict per step.

    With ``async_save`` (default) `save` returns once orbax holds the data and the files are
    written in a background thread while the run goes on: the write no longer counts against an
    interval's wall time.  Orbax finalises a step atomically (temporary directory, then rename),
    so a run killed mid-write resumes from the previous step; every read (`latest_step`,
    `restore`) and `wait` first lets a pending write finish.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 3, async_save: bool = True):
        directory = epath.Path(directory)
        self.directory = directory if "://" in str(directory) else directory.absolute()
        self.async_save = async_save
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=async_save)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, trees: dict[str, Any], meta: dict[str, Any]) -> None:
        if self.async_save:
            # the caller may donate these buffers to its next jitted step while the write is pending
            # (the ReAD train step donates the student's): orbax gets private copies
            trees = jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, trees)
        trees = local_to_numpy(trees)
        # one item for all pytrees (each item costs its own directory and metadata files)
        args = {STATE: ocp.args.StandardSave(dict(trees)), META: ocp.args.JsonSave(meta)}
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)
        faults.point("checkpoint")  # with async_save the write is in flight here
        if not self.async_save:
            self.wait()

    def wait(self) -> None:
        """Block until every pending save is on disk."""
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        self.wait()
        return self._manager.latest_step()

    def restore(self, targets: dict[str, Any], step: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore every item of ``targets`` (live pytrees or abstract ones) and the metadata."""
        self.wait()
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise ReadJaxError(f"{self.directory}: no checkpoint to resume from")
        args = {STATE: ocp.args.StandardRestore(abstract_like(dict(targets))), META: ocp.args.JsonRestore()}
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except ReadJaxError:
            raise
        except Exception as err:  # orbax, tensorstore and json raise their own types for damaged files
            first = (str(err).splitlines() or [""])[0].split(" See full TensorStore details")[0][:200]
            raise ReadJaxError(f"{self.directory / str(step)}: checkpoint is corrupt or truncated "
                               f"({type(err).__name__}: {first}); delete this step's directory to resume from the "
                               "step before, or start a new --out") from None
        trees = {name: restored[STATE][name] for name in targets}
        return trees, dict(restored[META])

    def close(self) -> None:
        self.wait()
        self._manager.close()
