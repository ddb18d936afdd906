"""`read-jax convert SPEC OUT_DIR`: materialise any model spec as a standalone HF directory.

SPEC is anything `read_jax.models.resolve.resolve_model` accepts (an HF directory, an
``org/name`` from the local hub cache, a ``.gguf`` file, an alias such as
``smollm2-135m-instruct``, each optionally with ``#keep=N`` or ``#layers=I,J,...``), e.g.

    read-jax convert smollm2-135m-instruct#keep=10 runs/student

The spec is resolved through the cache, then copied to OUT_DIR, so the result is a
plain directory that outlives the cache and that transformers loads too.  An existing
non-empty OUT_DIR is refused unless ``--overwrite`` (it is then replaced as a whole).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from read_jax.errors import ReadJaxError


def convert(spec: str, out_dir: str | Path, overwrite: bool = False, cache_dir: str | Path | None = None) -> Path:
    """Resolve ``spec`` and copy the resulting HF directory to ``out_dir`` (written atomically)."""
    from read_jax.models.cache import atomic_dir
    from read_jax.models.resolve import resolve_model

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ReadJaxError(f"{out_dir}: exists and is not empty; choose a new directory or pass --overwrite")
    source = resolve_model(spec, cache_dir=cache_dir)
    if out_dir.exists() and out_dir.resolve() == source.resolve():
        raise ReadJaxError(f"{out_dir}: is the model's own directory")
    with atomic_dir(out_dir, replace=True) as tmp:
        for f in source.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="read-jax convert",
                                     description="write a model spec (HF dir, org/name, .gguf, alias, "
                                                 "with optional #keep=N / #layers=I,J) as an HF directory")
    parser.add_argument("spec", help="e.g. smollm2-135m-instruct#keep=10")
    parser.add_argument("out_dir")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--cache-dir", default=None, help="conversion cache (default $READ_JAX_CACHE or "
                                                          "~/.cache/read_jax)")
    args = parser.parse_args(argv)
    out = convert(args.spec, args.out_dir, overwrite=args.overwrite, cache_dir=args.cache_dir)
    print(f"wrote {out}")
    return 0
