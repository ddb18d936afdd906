"""`read-jax`: unknown commands fail cleanly; long jobs restart once under the retained-malloc setting."""

import subprocess
import sys

import pytest

from read_jax import cli
from read_jax.distill import cpu


def test_unknown_command_is_a_one_line_error():
    r = subprocess.run([sys.executable, "-m", "read_jax.cli", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "read-jax: error: unknown command 'frobnicate'"


def _clear_malloc_env(monkeypatch):
    for k in cpu.RETAIN_MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("READ_JAX_MALLOC", raising=False)


def test_long_jobs_restart_under_retained_malloc(monkeypatch):
    _clear_malloc_env(monkeypatch)
    calls = []

    def fake_execve(path, args, env):
        calls.append((args, env))
        raise SystemExit(0)  # execve never returns

    monkeypatch.setattr(cpu.os, "execve", fake_execve)
    with pytest.raises(SystemExit):
        cli.main(["run", "does-not-exist.yaml"])
    (args, env), = calls
    assert args[1:] == ["-m", "read_jax.cli", "run", "does-not-exist.yaml"]
    assert cpu.malloc_retains_memory(env)


def test_no_restart_when_already_set_or_opted_out(monkeypatch, capsys):
    monkeypatch.setattr(cpu.os, "execve", lambda *a: pytest.fail("restarted"))
    for k, v in cpu.RETAIN_MALLOC_ENV.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["run", "does-not-exist.yaml"]) == 2
    _clear_malloc_env(monkeypatch)
    monkeypatch.setenv("READ_JAX_MALLOC", "default")
    assert cli.main(["run", "does-not-exist.yaml"]) == 2
    assert "does-not-exist.yaml" in capsys.readouterr().err
