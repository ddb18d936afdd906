"""Per-chip peak figures of the accelerators read_jax plans for and benchmarks on.

One table, shared by `read-jax plan` (roofline estimates and the fits-in-HBM verdict) and
`read-jax bench device` (model-FLOP and bandwidth utilisation of the detected chip), so the
two never disagree about what 100 % means.

The numbers are the vendors' public per-chip specifications (dense bfloat16 matmul peak,
HBM bandwidth, HBM capacity):
- TPU v4, v5e, v5p, v6e: Google Cloud TPU system-architecture pages ("TPU v4": 275 TFLOP/s,
  32 GiB, 1,200 GB/s; "TPU v5e": 197 TFLOP/s, 16 GiB, 819 GB/s; "TPU v5p": 459 TFLOP/s,
  95 GiB, 2,765 GB/s; "TPU v6e" (Trillium): 918 TFLOP/s, 32 GiB, 1,640 GB/s).  Slice names
  count TensorCores for v4 / v5p (two per chip: v5p-64 is 32 chips) and chips for v5e / v6e.
- NVIDIA A100 SXM4 80 GB: 312 TFLOP/s bf16 dense, 2,039 GB/s (A100 datasheet); H100 SXM5:
  989 TFLOP/s bf16 dense (1,979 is the 2:4-sparsity figure), 3.35 TB/s (H100 datasheet);
  H200 SXM: 989 TFLOP/s, 4.8 TB/s (H200 datasheet).  Their HBM sizes are the totals
  ``nvidia-smi`` reports (81,920 / 81,559 / 143,771 MiB: the datasheets' 80 and 141 "GB" are
  binary).  PCIe cards of the same names are slower; their device kinds map to the SXM rows
  (an optimistic peak).
JAX exposes one device per chip on all of these (v4 / v5p TensorCores act as one megacore).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from read_jax.errors import ReadJaxError

MIB = 1 << 20
GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """One chip: ``peak_flops`` dense bf16 FLOP/s, ``hbm_bandwidth`` bytes/s, ``hbm_bytes``."""

    name: str
    peak_flops: float
    hbm_bandwidth: float
    hbm_bytes: float
    # lower-case substrings of jax's ``device.device_kind`` that identify this chip
    kinds: tuple[str, ...] = ()


ACCELERATORS: dict[str, Accelerator] = {a.name: a for a in (
    Accelerator("v4", 275e12, 1200e9, 32 * GIB, ("tpu v4",)),
    Accelerator("v5e", 197e12, 819e9, 16 * GIB, ("tpu v5 lite", "tpu v5e", "tpu v5litepod")),
    Accelerator("v5p", 459e12, 2765e9, 95 * GIB, ("tpu v5p", "tpu v5")),
    Accelerator("v6e", 918e12, 1640e9, 32 * GIB, ("tpu v6 lite", "tpu v6e", "tpu v6")),
    Accelerator("a100", 312e12, 2039e9, 81920 * MIB, ("a100",)),
    Accelerator("h100", 989e12, 3350e9, 81559 * MIB, ("h100",)),
    Accelerator("h200", 989e12, 4800e9, 143771 * MIB, ("h200",)),
)}
_FIELDS = ("peak_flops", "hbm_bandwidth", "hbm_bytes")


def accelerator(spec: str | Mapping[str, Any], field: str = "accelerator") -> Accelerator:
    """A table entry by name (case-insensitive, "tpu-" / "tpu " prefix allowed), or a custom chip
    given as a mapping with ``name``, ``peak_flops``, ``hbm_bandwidth`` and ``hbm_bytes``."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"name", *_FIELDS})
        missing = [k for k in _FIELDS if k not in spec]
        if unknown or missing:
            detail = f"unknown: {', '.join(unknown)}" if unknown else f"missing: {', '.join(missing)}"
            raise ReadJaxError(f"{field}: a custom accelerator needs name, {', '.join(_FIELDS)} ({detail})")
        try:
            values = {k: float(spec[k]) for k in _FIELDS}
        except (TypeError, ValueError):
            raise ReadJaxError(f"{field}: {', '.join(_FIELDS)} must be numbers") from None
        if min(values.values()) <= 0:
            raise ReadJaxError(f"{field}: {', '.join(_FIELDS)} must be > 0")
        return Accelerator(str(spec.get("name", "custom")), **values)
    key = str(spec).lower().removeprefix("tpu").lstrip("- ")
    if key not in ACCELERATORS:
        raise ReadJaxError(f"{field}: unknown accelerator {spec!r} (known: {', '.join(ACCELERATORS)}, "
                           "or a mapping with name, peak_flops, hbm_bandwidth, hbm_bytes)")
    return ACCELERATORS[key]


def detect(device_kind: str) -> Accelerator | None:
    """The table entry for a jax ``device.device_kind`` (None for CPUs and unknown chips)."""
    kind = device_kind.lower()
    for acc in ACCELERATORS.values():  # "tpu v5 lite" before "tpu v5": table order matters
        if any(k in kind for k in acc.kinds):
            return acc
    return None
