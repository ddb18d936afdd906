"""The Colab notebooks run: executed top to bottom in a fresh kernel of this venv, as a user would.

A notebook that nobody executes rots silently (the previous quickstart cloned a placeholder URL and
had never been run).  Here the quickstart runs end to end on CPU with `nbclient`:
the install cell is skipped (tag ``skip-in-test``: the package is already installed in this venv),
every other cell runs, and the test checks what a reader would look at: the summary table and the
three plots.  The real-pair notebook is executed too, but only its cells that take seconds: the plan cell
(a minute of XLA compilation on 2 cores; `read-jax plan` has its own tests) and the conversion
cells (~850 MB of SmolLM2 weights written) carry the same tag, and the experiment itself sits
behind ``RUN_FULL = False``; what runs is the glue around them (paths, imports, the guards), which
is where a stale name would break the notebook.

The kernel is this venv's python through a kernel spec written to a temp directory (an installed
``python3`` spec elsewhere on the machine could point at another interpreter), with a clean
environment: no forced 8 fake devices from conftest (the notebook runs as on a one-device CPU
runtime) and a private XLA compilation cache (the test does not depend on, or fill, the user's).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "colab" / "read_jax_quickstart.ipynb"
REAL_PAIR = ROOT / "colab" / "read_jax_real_pair.ipynb"
SKIP_TAG = "skip-in-test"
KERNEL = "read-jax-test-venv"
CELL_TIMEOUT_S = 1200  # per cell; the quickstart's run cell takes ~2 min on 2 busy cores


def _kernel_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", "")).strip()
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    env["READ_JAX_CACHE"] = str(tmp / "read_jax_cache")
    env["MPLBACKEND"] = "Agg"
    # the venv's scripts (read-jax) first on PATH, as after `source .venv/bin/activate`
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def execute(path: Path, tmp: Path) -> tuple[object, Path]:
    """Run the notebook at ``path`` with cwd ``tmp/work``; returns (executed notebook, cwd)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    kernels = tmp / "kernels"
    (kernels / KERNEL).mkdir(parents=True)
    (kernels / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "read_jax test venv", "language": "python"}))
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    cwd = tmp / "work"
    cwd.mkdir()
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, startup_timeout=180,
                                     skip_cells_with_tag=SKIP_TAG, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=_kernel_env(tmp))
    return nb, cwd


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                   and o.get("name") == "stdout")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_quickstart_install_cell_is_tagged_and_pins_jax_like_requirements_tpu():
    """The one cell the test skips is the install cell, and its jax[tpu] pin is requirements-tpu.txt's."""
    nb = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(nb)
    skipped = [c for c in nb.cells if SKIP_TAG in tags(c)]
    assert len(skipped) == 1 and "pip_install" in skipped[0].source
    assert "READ_JAX_REPO = \"\"" in skipped[0].source  # no made-up URL: the user sets it
    pins = re.findall(r"jax\[tpu\]==[\w.]+", (ROOT / "requirements-tpu.txt").read_text())
    assert len(pins) == 1 and pins[0] in skipped[0].source


def test_quickstart_runs_on_cpu(tmp_path):
    nb, cwd = execute(QUICKSTART, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code if SKIP_TAG not in tags(c)]
    assert all(c.get("execution_count") for c in ran), "a cell did not run"
    assert not any(o.get("output_type") == "error" for c in ran for o in c.outputs)

    # the kernel was this venv's interpreter
    env_out = stream_text(ran[0])
    assert f"prefix {sys.prefix}" in env_out, env_out

    out = "\n".join(stream_text(c) for c in ran)
    header = next((line for line in out.splitlines() if line.startswith("policy ")), None)
    assert header is not None and "utility" in header and "tokens" in header, out[-3000:]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    for name in ("initial", "read", "uniform", "one_hot", "teacher"):
        assert name in rows, f"table row {name!r} missing:\n{out[-3000:]}"
    for name in ("read", "uniform", "one_hot"):
        utility, tokens = float(rows[name][1]), int(rows[name][2])
        assert 0.0 <= utility <= 1.0 and 0 < tokens <= 24_000  # the tiny size's budget is a hard limit

    run_dir = cwd / "runs" / "colab" / "tiny"
    report = json.loads((run_dir / "report.json").read_text())
    plots = [Path(p) for p in report["plots"]]
    assert sorted(p.name for p in plots) == ["allocations.png", "profiles.png", "utility_vs_tokens.png"]
    for p in plots:
        p = p if p.is_absolute() else cwd / p
        assert p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = [o for c in ran for o in c.outputs if o.get("output_type") == "display_data" and "image/png" in o.data]
    assert len(images) == len(plots)


def test_real_pair_notebook_order_and_guards(tmp_path):
    """Plan, then convert (teacher, then the 16-layer student), then run; the heavy cells are skipped
    and the run sits behind RUN_FULL = False, so executing the rest takes seconds and touches no weights."""
    nb = nbformat.read(REAL_PAIR, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]

    def index(pattern: str) -> int:
        hits = [i for i, c in enumerate(code) if re.search(pattern, c.source)]
        assert hits, f"no code cell matches {pattern!r}"
        return hits[0]

    plan, teacher, student = index(r'cli\("plan"'), index(r'cli\("convert", TEACHER'), index(r'cli\("convert", STUDENT')
    run, results = index(r'\["run", "--out"'), index(r"format_table")
    assert plan < teacher < student < run < results
    assert re.search(r"(?m)^RUN_FULL = False\b", "\n".join(c.source for c in code))
    assert 'STUDENT = TEACHER + "#keep=16"' in "\n".join(c.source for c in code)
    for i in (plan, teacher, student):
        assert SKIP_TAG in tags(code[i])
    assert SKIP_TAG not in tags(code[run])  # the guard itself is what runs in the test

    nb, _ = execute(REAL_PAIR, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert "RUN_FULL is False" in stream_text(code[run])
    assert "no report" in stream_text(code[results])
