"""Test configuration: 8 fake CPU devices so every sharded path runs on CPU.

The XLA flag must be set before jax is imported anywhere, which is why it lives
at the very top of conftest (pytest imports conftest before the test modules).
"""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="session")
def eight_devices():
    devices = jax.devices()
    assert len(devices) == 8, f"expected 8 fake CPU devices, got {len(devices)}"
    return devices


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every module's compiled programs when it ends.  One pytest process compiles thousands of
    XLA:CPU executables; each keeps its JIT code mapped, and a whole run kept them all until it
    reached the kernel's limit on memory mappings (vm.max_map_count, 65530 by default), where the
    next compile crashed the process (a segfault in `backend_compile_and_load`)."""
    yield
    import gc

    jax.clear_caches()
    gc.collect()
