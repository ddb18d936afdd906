"""Several processes, one run: `jax.distributed` set-up and the few multi-process helpers.

A multi-host run (the hosts of a TPU pod slice, several GPU hosts, or several CPU processes on
one machine in the tests) starts the same ``read-jax run`` on every host.  Every process runs the
same Python program on the same inputs: the prompt sampler, the probe set and the bandit are
seeded identically and see identical numbers (every value the loop decides on is gathered to
every host, `to_host`), so each process takes the same decisions without exchanging them.  Only
the arrays on the device mesh (models, optimizer state, batches, KV caches) are global: each
process holds the shards on its own devices, and XLA's collectives (gloo over TCP on CPU, ICI /
DCN on TPU, NCCL on GPU) join them.

- `initialize` joins the processes (`jax.distributed.initialize`) when asked to: explicit
  arguments (``read-jax run --coordinator HOST:PORT --num-processes N --process-id I``), the
  environment (``JAX_COORDINATOR_ADDRESS`` + ``JAX_NUM_PROCESSES`` + ``JAX_PROCESS_ID``), or
  ``READ_JAX_DISTRIBUTED=1``, which lets JAX detect a Cloud TPU slice, SLURM or Open MPI job by
  itself.  Otherwise it does nothing and the run is the ordinary one-process run.  It must come
  before anything initialises a JAX backend (``jax.devices()``, any computation).
- `is_primary`: process 0 (or the only process).  Every file a run writes besides its orbax
  checkpoints goes through `read_jax.run_files`, which writes only on the primary process; orbax
  checkpoints are written collectively (each process its own shards, process 0 the metadata).
- `to_host`: device arrays to numpy on *every* process.  A global array that is not fully
  addressable (sharded over devices of several processes) is gathered with
  `multihost_utils.process_allgather`, a collective: every process must call it in the same order,
  which the identical program guarantees.  With one process it is `jax.device_get`.
- `local_to_numpy`: process-local device arrays (the bandit's state, the run's RNG key: small,
  computed identically on every process on its first local device) as numpy, so that orbax, which
  refuses host-local `jax.Array`s in a multi-process save, writes them once from process 0.

CPU collectives: JAX 0.10.2 builds the multi-process CPU client with gloo over TCP by default
(``jax_cpu_collectives_implementation`` defaults to ``"gloo"``; ``"mpi"`` is the alternative),
so nothing needs setting; `initialize` sets ``gloo`` explicitly only when the option was unset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from read_jax.errors import ReadJaxError

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENV_AUTO = "READ_JAX_DISTRIBUTED"  # "1": bare jax.distributed.initialize() (TPU slice / SLURM / MPI detection)


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ReadJaxError(f"{name}: expected an integer, got {value!r}") from None


def settings(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
             environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The `jax.distributed.initialize` arguments asked for, or None for a one-process run.

    Explicit arguments win over the environment; ``READ_JAX_DISTRIBUTED=1`` with nothing else
    set returns ``{}`` (JAX detects the cluster).  A partial explicit set is an error unless
    auto-detection is on to fill the rest."""
    env = os.environ if environ is None else environ
    coordinator = coordinator or env.get(ENV_COORDINATOR) or None
    num_processes = _int(num_processes, "--num-processes") if num_processes is not None else _int(
        env.get(ENV_NUM_PROCESSES), ENV_NUM_PROCESSES)
    process_id = _int(process_id, "--process-id") if process_id is not None else _int(
        env.get(ENV_PROCESS_ID), ENV_PROCESS_ID)
    auto = env.get(ENV_AUTO, "").strip().lower() in ("1", "true", "yes")
    given = {k: v for k, v in (("coordinator_address", coordinator), ("num_processes", num_processes),
                               ("process_id", process_id)) if v is not None}
    if not given and not auto:
        return None
    if not auto and len(given) < 3:
        missing = [flag for flag, key in (("--coordinator", "coordinator_address"),
                                          ("--num-processes", "num_processes"), ("--process-id", "process_id"))
                   if key not in given]
        raise ReadJaxError(f"a multi-process run needs --coordinator, --num-processes and --process-id (or "
                           f"{ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}, or {ENV_AUTO}=1 on a TPU "
                           f"slice / SLURM job); missing {', '.join(missing)}")
    if num_processes is not None and num_processes < 1:
        raise ReadJaxError(f"--num-processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ReadJaxError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    return given


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               environ: Mapping[str, str] | None = None) -> bool:
    """Join this process to a multi-process JAX run when asked to (see `settings`); idempotent.

    Returns whether `jax.distributed` is initialised afterwards."""
    kwargs = settings(coordinator, num_processes, process_id, environ)
    import jax

    if jax.distributed.is_initialized():
        return True
    if kwargs is None:
        return False
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:  # e.g. called after a JAX backend started, or no coordinator
        raise ReadJaxError(f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
                           f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return True


def _jax():
    """jax if it was imported and distributed-initialised, else None (never imports or starts a backend)."""
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return None
    return jax


def process_index() -> int:
    jax = _jax()
    return 0 if jax is None else int(jax.process_index())


def process_count() -> int:
    jax = _jax()
    return 1 if jax is None else int(jax.process_count())


def is_primary() -> bool:
    """Whether this process writes the run's files: process 0, or the only process."""
    return process_index() == 0


def multi_process() -> bool:
    return process_count() > 1


def to_host(tree: Any) -> Any:
    """``jax.device_get(tree)``, gathering global arrays that other processes hold shards of.

    A collective when some leaf is not fully addressable: call it on every process in the same
    order (the run's program does)."""
    import jax

    leaves = jax.tree.leaves(tree)
    if not any(isinstance(x, jax.Array) and not x.is_fully_addressable for x in leaves):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    import numpy as np

    def fetch(x: Any) -> Any:
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(fetch, tree)


def local_to_numpy(tree: Any) -> Any:
    """In a multi-process run, process-local device arrays of ``tree`` as numpy (global arrays and
    everything else unchanged); with one process, ``tree`` itself."""
    if not multi_process():
        return tree
    import jax
    import numpy as np

    def leaf(x: Any) -> Any:
        if isinstance(x, jax.Array) and x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        return x

    return jax.tree.map(leaf, tree)


def sync(name: str) -> None:
    """A barrier across processes (no-op with one process)."""
    if multi_process():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
