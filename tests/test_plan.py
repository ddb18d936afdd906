"""`read-jax plan`: the paper's Llama pair at 2 layers (same widths) on the 8 fake CPU devices.

One compile (module fixture); every other test reuses it through the plan's in-process cache
(the compiled figures do not depend on the accelerator) or never compiles at all.
"""

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from read_jax import cli, plan as planning
from read_jax.errors import ReadJaxError
from read_jax.models.config import DecoderConfig

PLANS = Path(__file__).resolve().parents[1] / "experiments" / "plans"
PAPER = PLANS / "llama3.3-70b_llama3.1-8b.yaml"
TINY_CHIP = {"name": "tiny", "peak_flops": 1e12, "hbm_bandwidth": 1e9, "hbm_bytes": 2**20}


def _write(directory: Path, name: str = "plan.yaml", **changes) -> str:
    """The paper's pair cut to 2 layers each, planned on 8 devices (fsdp 8), with ``changes``."""
    data = yaml.safe_load(PAPER.read_text())
    data["teacher"]["num_hidden_layers"] = data["student"]["num_hidden_layers"] = 2
    data.update(devices=8, mesh={"data": 1, "fsdp": 8, "tp": 1})
    data.update(changes)
    path = directory / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["plan", *argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def paper(tmp_path_factory, eight_devices):
    path = _write(tmp_path_factory.mktemp("plan"))
    code, out = _run(path, "--json")
    assert code == 0
    return path, json.loads(out)


def test_paper_pair_plans_with_the_keys(paper):
    _, r = paper
    assert r["devices"] == 8 and r["mesh"] == {"data": 1, "fsdp": 8, "tp": 1}
    assert set(r["per_device_bytes"]) >= {"params", "optimizer", "activations", "kv_cache", "total"}
    assert all(v > 0 for v in r["per_device_bytes"].values())
    assert isinstance(r["fits"], bool) and r["est_tokens_per_s"] > 0
    assert set(r["flops_per_token"]) == {"train", "decode", "prefill"}
    assert r["compiled_depths"] == {"train": [[2, 2]], "generation": [2]}  # 2 layers: compiled as they are
    assert not r["extrapolated"]
    # XLA's count of the loop-free step and the analytic 6 N + 2 N agree within attention's share
    train = r["flops_per_token"]["train"]
    assert 1.0 <= train["xla"] / train["analytic"] < 1.2


def test_parameter_counts_are_the_configs(paper):
    _, r = paper
    data = yaml.safe_load(Path(paper[0]).read_text())
    for name in ("teacher", "student"):
        assert r["params"][name] == DecoderConfig.from_hf_dict(data[name]).num_params()


def test_param_bytes_per_device_shrink_as_fsdp_grows(paper):
    path, r = paper
    spec = planning.load_spec(path)
    devices, mesh = planning.resolve_mesh(spec, path, None)
    plan = planning.resolve(spec, path, devices, mesh, planning.accelerator(spec.accelerator))
    compiled = planning.compile_plan(plan)  # cached by the fixture's run
    by_fsdp = {f: planning.memory(plan, compiled, (1, f, 1)).params for f in (1, 2, 4, 8)}
    assert by_fsdp[1] > by_fsdp[2] > by_fsdp[4] > by_fsdp[8] == r["per_device_bytes"]["params"]
    total = 2 * (r["params"]["teacher"] + r["params"]["student"])  # bf16
    assert by_fsdp[1] == total and total / 8 <= by_fsdp[8] < 1.01 * total / 8


def test_absurdly_small_accelerator_does_not_fit(paper, tmp_path):
    path = _write(tmp_path, accelerator=TINY_CHIP)
    code, out = _run(path, "--json")
    r = json.loads(out)
    assert code == 0 and r["fits"] is False and r["suggestion"] is None
    code, text = _run(path)
    verdict = next(line for line in text.splitlines() if line.startswith("verdict:"))
    assert "DOES NOT FIT" in verdict and "XLA:CPU" in verdict


def test_bad_mesh_product_is_a_one_line_error(tmp_path, capsys):
    path = _write(tmp_path, mesh={"data": 1, "fsdp": 4, "tp": 1})
    assert cli.main(["plan", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mesh" in err and "8" in err
    with pytest.raises(ReadJaxError, match="mesh"):
        planning.resolve_mesh(planning.load_spec(path), path, 16)


def test_devices_fill_the_open_mesh_axis(tmp_path):
    path = _write(tmp_path, devices=None, mesh={"data": 1, "fsdp": -1, "tp": 4})
    spec = planning.load_spec(path)
    assert planning.resolve_mesh(spec, path, 64) == (64, (1, 16, 4))
    with pytest.raises(ReadJaxError, match="devices"):
        planning.resolve_mesh(spec, path, None)
    with pytest.raises(ReadJaxError, match="train.rows"):
        planning.resolve_mesh(spec, path, 256)  # 64 batch shards for 32 rows


@pytest.mark.parametrize("path", sorted(PLANS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_plans_resolve(path):
    spec = planning.load_spec(path)
    devices, mesh = planning.resolve_mesh(spec, str(path), None)
    plan = planning.resolve(spec, str(path), devices, mesh, planning.accelerator(spec.accelerator))
    assert plan.teacher.num_hidden_layers > 2 and plan.student.vocab_size > 0


def test_kl_needs_one_vocabulary(tmp_path):
    data = yaml.safe_load((PLANS / "qwen2.5-7b_qwen2.5-0.5b.yaml").read_text())
    path = tmp_path / "kl.yaml"
    path.write_text(yaml.safe_dump(dict(data, loss="kl")))
    spec = planning.load_spec(path)
    with pytest.raises(ReadJaxError, match="loss: kl .* 152064 .* 151936"):
        planning.resolve(spec, str(path), 8, (1, 8, 1), planning.accelerator("v5e"))


def test_device_flag_is_replaced_not_duplicated():
    flags = planning._with_device_count("--foo --xla_force_host_platform_device_count=8", 32)
    assert flags == "--foo --xla_force_host_platform_device_count=32" and planning._flag_count(flags) == 32


def test_depth_extrapolation_is_linear_in_each_model():
    from read_jax.plan.programs import ProgramCost, extrapolate

    def cost(teacher_layers: int, student_layers: int) -> ProgramCost:
        value = 7.0 + 3.0 * teacher_layers + 5.0 * student_layers
        return ProgramCost(value, 2 * value, 0.0, 0.0, 10 * value, compile_s=1.0)

    full = extrapolate(cost(1, 1), [(cost(2, 1), 79), (cost(1, 2), 31)])
    assert full == cost(80, 32)
