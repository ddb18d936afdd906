"""What `read-jax plan` prints: the plan's figures as one JSON-ready dict, and that dict as text."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from read_jax.accelerators import GIB
from read_jax.plan.compile import Compiled, Plan
from read_jax.plan.figures import (
    MAX_SEARCH_CHIPS, MAX_TP, MEMORY_SOURCES, estimate, fits, flops_per_token, memory, smallest_fitting_mesh,
)


# ----------------------------------------------------------------------------- report
def report(plan: Plan, compiled: Compiled) -> dict[str, Any]:
    mem = memory(plan, compiled)
    spec, chip = plan.spec, plan.chip
    ok = fits(mem.total, plan)
    suggestion = None
    if not ok:
        found = smallest_fitting_mesh(plan, compiled)
        if found:
            n, mesh, smem = found
            suggestion = {"devices": n, "mesh": dict(zip(("data", "fsdp", "tp"), mesh)), "total": smem.total,
                          "estimated": True}
    warnings = []
    if compiled.unsharded_batch:
        warnings.append(f"activations of the global batch on every device in the compiled "
                        f"{' and '.join(compiled.unsharded_batch)} (arrays [rows · length, width] or [rows, length, "
                        "width]): the batch is not sharded inside the layers, so activations do not shrink with "
                        "data × fsdp" + ("; the mesh suggestion, which assumes they do, is optimistic" if suggestion
                                          else ""))
    if compiled.shrinking:
        warnings.append(f"XLA's temp bytes fell when a layer was added ({', '.join(compiled.shrinking)}): the "
                        "compiler scheduled the deeper program differently, and the extrapolated activations / "
                        "workspace are unreliable (they are floored at 0)")
    return {
        "plan": plan.path, "name": spec.name, "dtype": spec.dtype, "loss": spec.loss,
        "accelerator": {k: v for k, v in dataclasses.asdict(chip).items() if k != "kinds"},
        "devices": plan.devices, "mesh": dict(zip(("data", "fsdp", "tp"), plan.mesh)),
        "params": {"teacher": plan.teacher.num_params(), "student": plan.student.num_params()},
        "layers": {"teacher": plan.teacher.num_hidden_layers, "student": plan.student.num_hidden_layers},
        "train": dataclasses.asdict(spec.train),
        "generation": dataclasses.asdict(spec.generation) | {"rows": plan.gen_rows, "cache_slots": plan.cache_len},
        "per_device_bytes": {"params": mem.params, "params_teacher": mem.params_teacher,
                             "params_student": mem.params_student, "optimizer": mem.optimizer,
                             "activations": mem.activations, "kv_cache": mem.kv_cache,
                             "generation_workspace": mem.generation_workspace, "total": mem.total},
        "sources": MEMORY_SOURCES | {
            "total": "params + optimizer + max(activations, kv_cache + generation_workspace)",
            "xla": "XLA:CPU of the float32 programs on fake CPU devices, temp bytes scaled to the plan's dtype"
                   + ("; per-layer figures extrapolated linearly from the compiled depths" if compiled.extrapolated
                      else "")},
        "compiled_depths": {"train": [list(d) for d in compiled.train_depths],
                            "generation": list(compiled.generation_depths)},
        "extrapolated": compiled.extrapolated,
        "compile_s": compiled.compile_s,
        "flops_per_token": flops_per_token(plan, compiled),
        "estimate": (est := estimate(plan, compiled, mem)),
        "est_tokens_per_s": est["train_tokens_per_s"],
        "hbm_bytes": chip.hbm_bytes, "limit_bytes": (1 - spec.margin) * chip.hbm_bytes, "margin": spec.margin,
        "fits": ok, "suggestion": suggestion, "warnings": warnings,
    }


def _gib(x: float) -> str:
    return f"{x / GIB:,.2f} GiB"


def _mesh_text(mesh: Mapping[str, int]) -> str:
    return f"data {mesh['data']} × fsdp {mesh['fsdp']} × tp {mesh['tp']}"


def format_report(r: Mapping[str, Any]) -> str:
    acc, b, f, e = r["accelerator"], r["per_device_bytes"], r["flops_per_token"], r["estimate"]
    tr, gen, src = r["train"], r["generation"], r["sources"]
    depths = ", ".join(f"({t if t is not None else '-'}, {s})" for t, s in r["compiled_depths"]["train"])
    depths = f"train step at (teacher, student) layers {depths}; prefill and decode step at teacher layers " \
             + ", ".join(map(str, r["compiled_depths"]["generation"]))
    memory_rows = (("parameters (teacher + student)", "params", src["params"]),
                   ("optimizer state", "optimizer", src["optimizer"]),
                   ("activations (train step)", "activations", "XLA:CPU temp bytes"),
                   ("KV cache (generation)", "kv_cache", src["kv_cache"]),
                   ("generation workspace", "generation_workspace", "XLA:CPU temp bytes"),
                   ("peak", "total", src["total"]))
    flop_rows = (("KD train step (per trained token)", "train",
                  "6 N_student + 2 N_teacher" if r["loss"] == "kl" else "6 N_student"),
                 ("decode (per generated token)", "decode", "2 N_teacher"),
                 ("prefill (per prompt token)", "prefill", "2 N_teacher, output head on the last position only"))
    lines = [
        f"plan {r['plan']}" + (f"  ({r['name']})" if r["name"] else ""),
        f"  teacher {r['params']['teacher'] / 1e9:.2f} B parameters ({r['layers']['teacher']} layers), student "
        f"{r['params']['student'] / 1e9:.2f} B ({r['layers']['student']} layers), {r['dtype']}, loss {r['loss']}",
        f"  {r['devices']} × {acc['name']} ({acc['peak_flops'] / 1e12:.0f} TFLOP/s bf16, "
        f"{acc['hbm_bandwidth'] / 1e9:,.0f} GB/s, {_gib(acc['hbm_bytes'])} HBM per chip), mesh {_mesh_text(r['mesh'])}",
        f"  train batch {tr['rows']} × {tr['length']} tokens; generation {gen['batch']} prompts ({gen['rows']} rows)"
        f" × {gen['prompt_length']} prompt + {gen['new_tokens']} new tokens ({gen['cache_slots']} cache slots)",
        f"  compiled on {r['devices']} fake CPU devices from abstract arrays ({r['compile_s']:.0f} s): {depths}"
        + ("; per-layer figures extrapolated linearly to full depth" if r["extrapolated"] else " (full depth)"),
        "",
        "per-device memory",
        *(f"  {label:<30} {_gib(b[key]):>14}   {source}" for label, key, source in memory_rows),
        "  (XLA:CPU figures: float32 programs, temp bytes scaled to the plan's dtype; XLA:CPU upcasts bf16 matmuls)",
        "",
        "FLOPs per token                      XLA cost analysis    analytic",
        *(f"  {label:<33} {f[key]['xla'] / 1e9:12.2f} G   {f[key]['analytic'] / 1e9:9.2f} G  ({note})"
          for label, key, note in flop_rows),
        "  (N: parameters that multiply, without the input embedding; XLA's count includes attention)",
        "",
        f"estimate on {acc['name']} (roofline per device: max(FLOPs / peak, bytes / HBM bandwidth); collectives not "
        "modelled: an upper bound)",
        f"  KD train step   {e['train_step_s'] * 1e3:10.1f} ms ({e['train_bound']}-bound)  "
        f"{e['train_tokens_per_s']:12,.0f} trained tokens/s",
        f"  decode step     {e['decode_step_s'] * 1e3:10.2f} ms ({e['decode_bound']}-bound)  "
        f"{e['decode_tokens_per_s']:12,.0f} generated tokens/s at {gen['batch']} prompts",
        f"  generation call {e['generation_call_s']:10.2f} s  (prefill {e['prefill_s'] * 1e3:.1f} ms, "
        f"{e['prefill_bound']}-bound)  {e['generation_tokens_per_s']:9,.0f} generated tokens/s",
        "",
        f"verdict: {'FITS' if r['fits'] else 'DOES NOT FIT'} — peak {_gib(b['total'])} per chip against "
        f"{_gib(r['limit_bytes'])} ({_gib(r['hbm_bytes'])} HBM less a {r['margin']:.0%} margin); memory figures from "
        "XLA:CPU's analysis of the compiled programs (activations, workspace) and exact shard sizes (the rest)",
    ]
    s = r["suggestion"]
    if s:
        lines.append(f"  smallest mesh that would fit (estimate): {_mesh_text(s['mesh'])} = {s['devices']} chips, "
                     f"peak {_gib(s['total'])}; confirm with --devices {s['devices']} and that mesh")
    elif not r["fits"]:
        lines.append(f"  no mesh of data 1 × fsdp × tp (tp ≤ {MAX_TP}) fits up to {MAX_SEARCH_CHIPS} chips at "
                     f"{tr['rows']} training rows")
    lines += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)
