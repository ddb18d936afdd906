"""CPU runtime setting that matters for training steps on XLA:CPU: keep freed memory mapped.

XLA:CPU allocates one temp buffer per execution of a compiled step (hundreds of MB for a
small model's KD step) and frees it at the end.  With glibc's default malloc that buffer is
mmap-ed and unmapped every step, so every page of it is first-touch page-faulted again on
every step.  With one malloc arena, no mmap for large blocks and no trimming, the memory is
reused and a step page-faults 0 times (docs/benchmarks.md has the measurement).

glibc reads these variables at process start, so they must be in the environment of a new
process (``env = {**os.environ, **RETAIN_MALLOC_ENV}``; or export them in the shell before
``read-jax ...``).  The cost: the process keeps its peak heap instead of returning it to the
OS.  Nothing here changes results, only speed.
"""

from __future__ import annotations

import os

RETAIN_MALLOC_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",                 # one arena: worker threads share the retained heap
    "MALLOC_MMAP_MAX_": "0",                 # large blocks from the heap, not fresh mmaps
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),  # never hand freed heap back to the OS
    "MALLOC_TOP_PAD_": str(64 << 20),        # grow the heap in 64 MiB steps
}


def malloc_retains_memory(environ: dict[str, str] | None = None) -> bool:
    """True when this process was started with `RETAIN_MALLOC_ENV`."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in RETAIN_MALLOC_ENV.items())


def retained_malloc_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus `RETAIN_MALLOC_ENV`, for a child process."""
    return {**(os.environ if base is None else base), **RETAIN_MALLOC_ENV}


OPT_IN_FLAG = "--cpu-malloc"
OPT_IN_ENV = "READ_JAX_MALLOC"  # "retain": opt in; anything else (or unset): glibc's defaults


def runs_on_cpu_only() -> bool:
    """Whether JAX will run on the CPU backend, decided without importing jax (the restart has to
    happen before): ``JAX_PLATFORMS`` if set, else no TPU / GPU plugin installed."""
    import importlib.util

    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms:
        return platforms == "cpu"
    plugins = ("libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin")
    return not any(importlib.util.find_spec(name) for name in plugins)


def restart_with_retained_malloc(module: str, argv: list[str]) -> list[str]:
    """Opt-in (``--cpu-malloc`` in ``argv`` or ``READ_JAX_MALLOC=retain``): replace this process by
    ``python -m module *argv`` under `RETAIN_MALLOC_ENV`, once, for long CPU jobs (`read-jax demo`,
    `read-jax run`, `read-jax results`).  glibc only reads the variables at start-up, so the command line re-executes
    itself before importing jax.  Never on Linux-less hosts or when JAX will use a TPU or GPU, where
    the setting buys nothing.  Returns ``argv`` without the flag.
    """
    import sys

    wanted = OPT_IN_FLAG in argv or os.environ.get(OPT_IN_ENV) == "retain"
    argv = [a for a in argv if a != OPT_IN_FLAG]
    if not wanted or malloc_retains_memory() or not sys.platform.startswith("linux") or not runs_on_cpu_only():
        return argv
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], retained_malloc_env())
    return argv  # not reached
