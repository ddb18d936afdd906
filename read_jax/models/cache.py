"""The on-disk cache of converted and derived checkpoints: where it lives, how entries are
named, and how a directory is written so that it is either complete or absent.

Conversions (a GGUF dequantised to a Hugging Face directory, a layer-drop student) take
seconds to minutes and hundreds of MB, so they are done once and reused.  An entry is
named by what it was made from (a content hash, never a path alone), so a changed input
never serves a stale entry.  Every entry is built in a temporary directory beside its
final name and renamed into place only when complete: an interrupted conversion leaves
nothing a later run could mistake for a finished one, and two processes converting the
same input at once both end with one complete entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from read_jax.errors import ReadJaxError

CACHE_ENV = "READ_JAX_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$READ_JAX_CACHE``, else ``~/.cache/read_jax``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "read_jax"


def file_digest(path: str | os.PathLike, chunk: int = 1 << 23) -> str:
    """sha256 of a file's contents, read in chunks (GGUF files run to GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_dir(out_dir: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``out_dir``; when the block completes it
    becomes ``out_dir``.  If the block raises, the temporary directory is removed and
    ``out_dir`` is untouched.

    ``replace``: an existing ``out_dir`` is replaced (moved aside, then deleted); without
    it an existing ``out_dir`` wins and what the block wrote is discarded (a cache entry
    another process finished first).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReadJaxError(f"{out_dir}: exists and is not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            if not replace:
                return
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "entry")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
            return
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if replace or not out_dir.is_dir():
                raise
            # lost a race to another writer of the same entry: keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
