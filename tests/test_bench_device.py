"""`read-jax bench device --size tiny` on CPU: one JSON object with every measurement (no timing assertions)."""

import json

from read_jax import cli


def test_bench_device_tiny_prints_json_with_the_keys(capsys):
    assert cli.main(["bench", "device", "--size", "tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "device" and out["device"]["platform"] == "cpu"
    assert out["targets"] == {"kd_step_mfu": 0.45, "decode_hbm_bandwidth_batch1": 0.60}
    kd = out["kd_step"]
    assert kd["flops_per_s"] > 0 and kd["compile_s"] > 0
    assert kd["mfu"] is None and kd["target_met"] is None  # no peak for a CPU
    assert [d["batch"] for d in out["decode"]] == [1, 8]
    for d in out["decode"]:
        assert d["tokens_per_s"] > 0 and d["bytes_per_step"] > 0 and d["bandwidth_utilisation"] is None
    assert out["decode_target_met"] is None
    shares = out["interval"]["shares"]
    assert set(shares) == {"generation", "train", "probe_forward"}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
