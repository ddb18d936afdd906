"""Every file a run writes besides its orbax checkpoints goes through here.

Why one place: a run may be killed (preemption, kill -9) or hit a full disk at any instant, and
a reader (``--resume``, plots, a user) must then find either the old file or the new one, never
half of one.  So each write goes to a temporary file in the same directory, is flushed to disk,
and replaces the target with one atomic rename; a failed write removes its temporary file and
raises a one-line `ReadJaxError` naming the path.

Multi-process runs (`read_jax.distributed`): every process runs the same program and calls these
functions alike, but only the primary process (process 0) touches the file system; on the others
the writes are no-ops.  Reads (`read_json`) happen on every process.  Orbax checkpoints do not go
through here: they are written collectively.

Bucket paths (``gs://...``): `as_path` gives an `etils.epath.Path` for a URL and a
`pathlib.Path` otherwise; the writers take either (an object store's write is atomic by itself,
so a URL is written directly, without the temporary file and rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from read_jax import faults
from read_jax.distributed import is_primary
from read_jax.errors import ReadJaxError

TMP_SUFFIX = ".tmp"


def is_url(path: Any) -> bool:
    return "://" in str(path)


def as_path(path: str | os.PathLike) -> Any:
    """``pathlib.Path`` for a local path, ``etils.epath.Path`` for a URL such as ``gs://bucket/dir``
    (`pathlib` would collapse ``gs://`` to ``gs:/``)."""
    if is_url(path):
        from etils import epath

        return epath.Path(str(path))
    return Path(path)


def _fail(path: Path, err: OSError) -> ReadJaxError:
    reason = os.strerror(err.errno) if err.errno else str(err)
    return ReadJaxError(f"{path}: cannot write ({reason}); free space or choose another --out")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (temporary file, fsync, rename); primary process only."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temporary file, fsync, rename); primary process only."""
    if not is_primary():
        return
    if is_url(path):
        try:
            as_path(path).write_bytes(data)
        except OSError as err:
            raise _fail(path, err) from None
        return
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            faults.point("write:" + path.name)  # a kill here leaves only the temporary file behind
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _fail(path, err) from None


def write_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """Save a matplotlib figure (format from the file suffix) through `write_bytes`."""
    if not is_primary():
        return
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=str(path).rsplit(".", 1)[-1], **savefig_kwargs)
    write_bytes(path, buf.getvalue())


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[Any]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Load a JSON file a run wrote; a truncated or corrupt one is a one-line error naming it."""
    path = as_path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReadJaxError(f"{path}: corrupt {what} ({err.__class__.__name__} at byte "
                           f"{getattr(err, 'pos', getattr(err, 'start', '?'))}); restore it or start a new --out") from None


def check_creatable(path: str | os.PathLike) -> None:
    """Fail with one line when ``path``, or the first of its parents that exists, is a file (a directory
    cannot be made there); callers check it before any work so nothing is spent on a doomed run."""
    path = as_path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return
    if existing == path:
        raise ReadJaxError(f"{path}: exists and is not a directory; choose another --out")
    raise ReadJaxError(f"{existing}: is a file, so {path} cannot be created; choose another --out")


def make_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or fail with one line naming the part that is in the way.

    Primary process only (the others get the path back without touching the file system)."""
    if is_url(path):
        path = as_path(path)
        if is_primary():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise _fail(path, err) from None
        return path
    path = Path(path)
    if not is_primary():
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        check_creatable(path)  # names the file in the way
        raise _fail(path, err) from None
    except OSError as err:
        raise _fail(path, err) from None
    return path
