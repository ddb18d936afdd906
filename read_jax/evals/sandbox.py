"""Run an untrusted Python program (a model's code) and report whether it exited 0.

`run_python` starts ``python -I -B sandbox.py --boot``: a *supervisor* (this file run as a
script) that sets up isolation, forks the *worker* that runs the program, enforces the
deadline and exits with the worker's status.  Layers, outermost first -- each covers what
the next would miss:

1. Supervision (always).  The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER):
   every process the program leaves, ``setsid()`` escapees included, is reparented to it;
   at the deadline it SIGKILLs the worker, and once the worker is gone it SIGKILLs and
   reaps all of them.  The worker carries PDEATHSIG=SIGKILL, so it dies with its
   supervisor; the parent SIGKILLs the supervisor's session if it overruns the deadline
   by `_GRACE_S` (a backstop).  Output goes to files, not pipes (a lingering child cannot
   stall the wait).  A fresh temp dir is the cwd and is deleted afterwards; ``-I -B``: no
   ``PYTHON*`` variables, no user site, no cwd on ``sys.path``, no ``.pyc`` writes; a
   scrubbed environment (``HOME``/``TMPDIR`` = the temp dir); stdin is /dev/null.
2. Namespaces (``namespaces=True``; as root, or unprivileged where user namespaces are
   allowed).  A new network namespace holds only a loopback that is down: no connection
   anywhere, not even to 127.0.0.1.  A new PID namespace: when its init (a small reaper
   that runs the worker as its child) exits, the kernel kills every process left in it,
   and the program cannot see or signal any process outside.  A new IPC namespace keeps
   SysV shared memory private.
3. An unprivileged uid (when run as root, which is how tests and CI run).  Root ignores
   file permissions and RLIMIT_NPROC, so the worker drops to a random dedicated uid/gid in
   ``[UID_BASE, UID_BASE + UID_SPAN)`` (no passwd/group entry, no supplementary groups):
   it can write only its temp dir and world-writable places and cannot signal other
   users' processes.  The interpreter may live where that uid cannot read (pyenv under
   a 0700 ``/root``), so the stdlib modules the program imports are imported before the drop.
4. Resource limits: RLIMIT_CPU (CPU seconds; hard limit SIGKILLs), RLIMIT_AS (memory),
   RLIMIT_FSIZE (largest file written, stdout included), RLIMIT_NPROC (processes and
   threads of the uid: the dedicated uid as root, the user's current count plus
   ``max_procs`` otherwise), RLIMIT_NOFILE, RLIMIT_CORE = 0.
5. An in-process guard (``guard=True``): an audit hook (`sys.addaudithook`; it cannot be
   removed) installed just before the program runs refuses sockets, process creation
   (fork, exec, spawn, subprocess, os.system), signals, ctypes, and writes, removals and
   renames outside the temp dir, with PermissionError.  It turns accidents into clean
   failures everywhere, including where layers 2-3 are unavailable; it is a tripwire, not
   a boundary (an in-process hook can be got around, e.g. by a ``dir_fd``-relative open),
   which is what layers 2-4 are for.

Not covered: disk use by many files (each at most ``max_file_mb``) inside the temp dir
within the timeout, and reading world-readable files.  Without root and without user
namespaces only layers 1, 4 and 5 hold.

Linux only (namespaces, prctl, /proc).  This module imports only the standard library at
the top: it runs as a script under ``python -I``.
"""

from __future__ import annotations

import ast
import ctypes
import grp
import importlib
import json
import math
import os
import pwd
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass

UID_BASE = 61_000
UID_SPAN = 2_000
_SETUP_RC = 125
_SETUP_FAILED = "read_jax sandbox setup failed"
_TAIL_CHARS = 4000

# clone(2) flags and prctl(2) options (linux/sched.h, linux/prctl.h)
_CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_GRACE_S = 5.0  # the parent's backstop beyond the supervisor's own deadline


@dataclass(frozen=True)
class SandboxResult:
    """What a run did.  `passed` iff it exited 0 before the timeout.  `layers` names the
    isolation layers that were in force (``netns``, ``pidns``, ``ipcns``, ``uid``,
    ``rlimits``, ``guard``), so a caller can refuse to trust a weaker sandbox."""

    passed: bool
    returncode: int | None
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    layers: tuple[str, ...] = ()
    wall_s: float = 0.0


class SandboxSetupError(RuntimeError):
    """The sandbox could not be set up (not the program's fault): nothing of it ran."""


# =========================================================================== parent side
def run_python(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    max_file_mb: int = 16,
    max_procs: int = 16,
    guard: bool = True,
    namespaces: bool = True,
    python: str | None = None,
) -> SandboxResult:
    """Run `program` in the sandbox (see the module docstring) and report how it ended.

    `guard` and `namespaces` switch layers 5 and 2 off; they exist so tests can show the
    remaining layers hold on their own.  `python` is the interpreter (default: this one).
    """
    _check_positive(timeout_s=timeout_s, memory_mb=memory_mb, max_file_mb=max_file_mb, max_procs=max_procs)
    as_root = os.geteuid() == 0
    uid = _pick_uid() if as_root else None
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="read_jax_sandbox_", ignore_cleanup_errors=True) as outer:
        os.chmod(outer, 0o711)  # the dropped uid may traverse to work/, not list or read the rest
        work = os.path.join(outer, "work")
        os.mkdir(work, 0o700)
        with open(os.path.join(work, "program.py"), "w", encoding="utf-8") as f:
            f.write(program)
        if uid is not None:
            for path in (work, os.path.join(work, "program.py")):
                os.chown(path, uid, uid)
        report = os.path.join(outer, "layers.json")
        config = {
            "work": work, "report": report, "uid": uid, "guard": guard, "namespaces": namespaces,
            "timeout_s": float(timeout_s),
            "limits": _limits(timeout_s, memory_mb, max_file_mb, max_procs, as_root),
        }
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
        out_path, err_path = os.path.join(outer, "stdout"), os.path.join(outer, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [python or sys.executable, "-I", "-B", os.path.abspath(__file__), "--boot", json.dumps(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work, env=env,
                start_new_session=True, close_fds=True,
            )
            stuck = not _wait_exited(proc.pid, start + timeout_s + _GRACE_S)  # backstop only
            _kill_session(proc.pid)  # before reaping: the zombie keeps the group id from reuse
            proc.wait()
        timed_out = stuck or os.path.exists(report + ".timeout")
        layers = _read_layers(report)
        stdout_tail, stderr_tail = _tail(out_path), _tail(err_path)
    if not timed_out and proc.returncode == _SETUP_RC and _SETUP_FAILED in stderr_tail:
        raise SandboxSetupError(stderr_tail.strip().splitlines()[-1])
    return SandboxResult(
        passed=not timed_out and proc.returncode == 0, returncode=proc.returncode, timed_out=timed_out,
        stdout_tail=stdout_tail, stderr_tail=stderr_tail, layers=layers, wall_s=time.monotonic() - start,
    )


def _check_positive(**limits: float) -> None:
    from read_jax.errors import ReadJaxError  # not at the top: this file also runs as a bare script

    for name, value in limits.items():
        if not value > 0:
            raise ReadJaxError(f"run_python: {name} must be positive, got {value!r}")


def _pick_uid() -> int:
    """A random uid in the pool with no passwd or group entry (its gid is the same number)."""
    for _ in range(200):
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
        except KeyError:
            return uid
    raise SandboxSetupError(f"no free uid in [{UID_BASE}, {UID_BASE + UID_SPAN})")


def _user_tasks(uid: int) -> int:
    """Processes and threads owned by `uid` now (what RLIMIT_NPROC counts)."""
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return n


def _limits(timeout_s: float, memory_mb: int, max_file_mb: int, max_procs: int, as_root: bool) -> list:
    cpu = math.ceil(timeout_s) + 1
    mib = 1 << 20
    nproc = max_procs if as_root else _user_tasks(os.getuid()) + max_procs
    return [
        ["RLIMIT_CPU", cpu, cpu + 1],  # soft: SIGXCPU, hard: SIGKILL
        ["RLIMIT_AS", memory_mb * mib, memory_mb * mib],
        ["RLIMIT_FSIZE", max_file_mb * mib, max_file_mb * mib],
        ["RLIMIT_NPROC", nproc, nproc],
        ["RLIMIT_NOFILE", 256, 256],
        ["RLIMIT_CORE", 0, 0],
    ]


def _wait_exited(pid: int, deadline: float) -> bool:
    """Poll until `pid` has exited (without reaping it) or `deadline` passes."""
    delay = 0.001
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == pid:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.02)


def _kill_session(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_layers(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(str(x) for x in json.load(f))
    except (OSError, ValueError, TypeError):
        return ()


def _tail(path: str) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4 * _TAIL_CHARS))
        return f.read().decode("utf-8", errors="replace")[-_TAIL_CHARS:]


# =========================================================================== child side
_PRELOAD = ("encodings.ascii", "encodings.idna", "encodings.latin_1", "encodings.utf_16", "encodings.utf_32",
            "_strptime", "linecache", "traceback")
_NO_PRELOAD = frozenset({"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo",
                         "webbrowser", "pydoc", "ensurepip", "venv", "lib2to3", "__main__"})


def _boot(config: dict) -> None:
    """Supervisor: unshare namespaces, fork the run, enforce the deadline, kill and reap
    everything the run left, then exit with the program's status."""
    libc = ctypes.CDLL(None, use_errno=True)
    layers: list[str] = []
    if config["namespaces"]:
        base = _CLONE_NEWNET | _CLONE_NEWPID | _CLONE_NEWIPC
        if libc.unshare(base if config["uid"] is not None else base | _CLONE_NEWUSER) == 0:
            layers += ["netns", "pidns", "ipcns"]
    # orphans of the worker's descendants become our children, so none outlives the run
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    report_fd = os.open(config["report"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    alive_r, alive_w = os.pipe()  # EOF on alive_r: the supervisor is gone
    status_r, status_w = os.pipe()  # the namespace init passes the worker's wait status
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        os.close(status_r)
        args = (config, layers, libc, report_fd, alive_r)
        _ns_init(*args, status_w) if "pidns" in layers else _worker(*args)  # neither returns
    for fd in (alive_r, report_fd, status_w):
        os.close(fd)
    timed_out = []

    def on_deadline(*_: object) -> None:
        timed_out.append(True)
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, on_deadline)
    signal.setitimer(signal.ITIMER_REAL, config["timeout_s"])
    status = _wait_reaping(pid)
    signal.setitimer(signal.ITIMER_REAL, 0)
    _kill_and_reap_children()
    reported = os.read(status_r, 4)
    if len(reported) == 4:
        status = int.from_bytes(reported, "little")
    if timed_out:
        open(config["report"] + ".timeout", "w").close()
    if os.WIFSIGNALED(status):  # die the same way, so the parent sees -signal
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _wait_reaping(pid: int) -> int:
    """Wait for child `pid`, reaping any other child (orphans) that dies meanwhile."""
    while True:
        wpid, status = os.wait()
        if wpid == pid:
            return status


def _ns_init(config: dict, layers: list[str], libc: ctypes.CDLL, report_fd: int, alive_r: int,
             status_w: int) -> None:
    """PID 1 of the new PID namespace: runs the worker as its child (PID 1 ignores signals
    it has no handler for, which would change how a program dies), reaps orphans, hands
    the worker's status to the supervisor and exits -- whereupon the kernel kills every
    process left in the namespace."""
    _die_with_parent(libc, alive_r, close=False)
    pid = os.fork()
    if pid == 0:
        _worker(config, layers, libc, report_fd, alive_r)
    os.close(report_fd)
    os.close(alive_r)
    os.write(status_w, _wait_reaping(pid).to_bytes(4, "little"))
    os._exit(0)


def _die_with_parent(libc: ctypes.CDLL, alive_r: int, *, close: bool = True) -> None:
    """Arm PDEATHSIG=SIGKILL, then make sure the supervisor did not die before it was armed."""
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    os.set_blocking(alive_r, False)
    try:
        if os.read(alive_r, 1) == b"":  # EOF: no writer left
            os._exit(1)
    except BlockingIOError:
        pass
    if close:
        os.close(alive_r)


def _kill_and_reap_children() -> None:
    """SIGKILL and reap our children until there are none (as subreaper, every process the
    worker left is one of them sooner or later)."""
    me = os.getpid()
    while True:
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                if ppid == me:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _worker(config: dict, layers: list[str], libc: ctypes.CDLL, report_fd: int, alive_r: int) -> None:
    """Set limits, drop privileges, arm the guard, then run the program as ``__main__``."""
    path = os.path.join(config["work"], "program.py")
    try:
        with open(path, "rb") as f:
            source = f.read()
        if config["uid"] is not None:
            _preload(source)
        for name, soft, hard in config["limits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        layers.append("rlimits")
        if config["uid"] is not None:
            os.setgroups([])
            os.setgid(config["uid"])
            os.setuid(config["uid"])
            if os.getuid() == 0 or os.geteuid() == 0:
                raise OSError("still root after setuid")
            layers.append("uid")
        _die_with_parent(libc, alive_r)  # after setuid, which disarms PDEATHSIG
        if config["guard"]:
            _install_guard(config["work"])
            layers.append("guard")
        os.write(report_fd, json.dumps(layers).encode())
        os.close(report_fd)
    except BaseException as err:  # noqa: BLE001 - whatever failed, the program must not run
        os.write(2, f"{_SETUP_FAILED}: {err!r}\n".encode())
        os._exit(_SETUP_RC)
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    sys.argv = [path]
    exec(compile(source, path, "exec"), module.__dict__)  # errors propagate: traceback, exit 1
    sys.exit(0)


def _preload(source: bytes) -> None:
    """Import, while still root, the stdlib modules `source` imports (the dropped uid may not
    be able to read the stdlib).  Only standard-library names: nothing of the program runs."""
    names = set(_PRELOAD)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    for name in sorted(names):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names and top not in _NO_PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - "from x import function" is not a module
                pass


_BLOCKED_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
    "os.kill", "os.killpg", "signal.pthread_kill", "subprocess.Popen", "webbrowser.open",
})
_BLOCKED_PREFIXES = ("socket.", "ctypes.")
# event -> (positions of path arguments, positions of dir_fd arguments)
_PATH_EVENTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "shutil.rmtree": ((0,), (1,)),
    "os.rename": ((0, 1), (2, 3)), "os.link": ((0, 1), (2, 3)), "os.symlink": ((1,), (2,)),
    "os.mkdir": ((0,), (2,)), "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)),
    "os.utime": ((0,), (3,)), "os.truncate": ((0,), ()), "os.setxattr": ((0,), ()),
    "os.removexattr": ((0,), ()),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _install_guard(root: str) -> None:
    """Arm the audit hook (layer 5).  What it needs is bound now, so rebinding ``os.path``
    afterwards does not blind it."""
    realpath, fsdecode, join, sep, getcwd = os.path.realpath, os.fsdecode, os.path.join, os.sep, os.getcwd
    root = realpath(root)

    def inside(path: object) -> bool:
        if isinstance(path, int):  # an already-open descriptor: its open was checked
            return True
        try:
            full = realpath(join(getcwd(), fsdecode(path)))
        except (TypeError, ValueError, OSError):
            return False
        return full == root or full.startswith(root + sep)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED_EVENTS or event.startswith(_BLOCKED_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, _, flags = args
            if flags & _WRITE_FLAGS and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the sandbox directory")
        elif event in _PATH_EVENTS:
            paths, dir_fds = _PATH_EVENTS[event]
            if any(i < len(args) and args[i] not in (None, -1) for i in dir_fds) or not all(
                inside(args[i]) for i in paths
            ):
                raise PermissionError(f"sandbox: {event} outside the sandbox directory")

    try:  # subprocess's C helper has no audit event of its own
        import _posixsubprocess

        def _no_fork_exec(*_args: object, **_kwargs: object) -> None:
            raise PermissionError("sandbox: subprocesses are not allowed")

        _posixsubprocess.fork_exec = _no_fork_exec
    except ImportError:
        pass
    sys.addaudithook(hook)


if __name__ == "__main__" and sys.argv[1:2] == ["--boot"]:
    _boot(json.loads(sys.argv[2]))
