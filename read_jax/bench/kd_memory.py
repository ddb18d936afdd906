"""Peak memory of the KD loss + gradient: chunked (hidden states + output kernel) vs dense logits.

Setting: vocabulary 151,936 (Qwen2 / Qwen3), batch 1 × 2,048 tokens, hidden 512, float32.
Loss = masked cross-entropy + forward KL (T = 1) to a teacher given as hidden states and its own
output kernel (so the teacher's logits are chunked too; a dense teacher would be [1, 2048, V]).
Gradient w.r.t. the student hidden states and output kernel, as in the train step.

Memory is XLA's compiled memory analysis of ``jax.jit(value_and_grad(loss))`` on this CPU:
temp bytes (everything the program allocates beyond its arguments and outputs) and the total
(arguments + outputs + temps − aliased).  Nothing is executed unless ``--execute`` (then the
chunked program runs once and the process' peak RSS growth is reported too).

    read-jax bench kd-memory [--json] [--vocab 151936] [--tokens 2048] [--hidden 512] [--chunk auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def _analysis(compiled) -> dict:
    m = compiled.memory_analysis()
    temp = int(m.temp_size_in_bytes)
    total = int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)
    return {"temp_bytes": temp, "total_bytes": total, "argument_bytes": int(m.argument_size_in_bytes),
            "output_bytes": int(m.output_size_in_bytes)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench kd-memory")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--chunk", default="auto", help="sequence positions per chunk, or 'auto' (LossConfig default)")
    parser.add_argument("--execute", action="store_true", help="also run the chunked program once")
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from read_jax.distill.chunked import HiddenTeacher, kd_loss_from_hidden
    from read_jax.distill.losses import LossConfig, kd_loss

    b, t, d, v = args.batch, args.tokens, args.hidden, args.vocab
    f32 = jnp.float32
    shapes = dict(h=jax.ShapeDtypeStruct((b, t, d), f32), w=jax.ShapeDtypeStruct((d, v), f32),
                  th=jax.ShapeDtypeStruct((b, t, d), f32), tw=jax.ShapeDtypeStruct((d, v), f32),
                  labels=jax.ShapeDtypeStruct((b, t), jnp.int32), mask=jax.ShapeDtypeStruct((b, t), f32))
    from read_jax.distill.chunked import auto_chunk

    chunk = auto_chunk(b, t, v) if args.chunk == "auto" else int(args.chunk)
    cfg = LossConfig(ce=1.0, kl=1.0, temperature=1.0, chunk_size=chunk)

    def dense(h, w, th, tw, labels, mask):
        logits = jnp.einsum("btd,dv->btv", h, w)
        t_logits = jax.lax.stop_gradient(jnp.einsum("btd,dv->btv", th, tw))
        return kd_loss(cfg, logits, labels, mask, teacher_logits=t_logits)

    def chunked(h, w, th, tw, labels, mask):
        return kd_loss_from_hidden(cfg, h, w, labels, mask, teacher=HiddenTeacher(th, tw))

    out = {"benchmark": "kd-memory",
           "config": {"vocab": v, "batch": b, "tokens": t, "hidden": d, "chunk_positions": chunk, "chunk_arg": args.chunk,
                      "dtype": "float32", "loss": "masked CE + forward KL (T=1), teacher as hidden + kernel",
                      "gradient": "w.r.t. student hidden and output kernel"},
           "versions": {"jax": jax.__version__}, "device": str(jax.devices()[0])}
    order = ("h", "w", "th", "tw", "labels", "mask")
    compiled = {}
    for name, fn in (("dense", dense), ("chunked", chunked)):
        t0 = time.perf_counter()
        grad_fn = jax.jit(jax.value_and_grad(fn, argnums=(0, 1), has_aux=True))
        compiled[name] = grad_fn.lower(*(shapes[k] for k in order)).compile()
        out[name] = {**_analysis(compiled[name]), "compile_s": time.perf_counter() - t0}
    out["chunked_over_dense_temp"] = out["chunked"]["temp_bytes"] / max(out["dense"]["temp_bytes"], 1)
    out["chunked_over_dense_total"] = out["chunked"]["total_bytes"] / max(out["dense"]["total_bytes"], 1)
    out["target_met"] = out["chunked_over_dense_total"] <= 0.25
    if args.execute:
        import numpy as np

        rng = np.random.default_rng(0)
        vals = {k: (jnp.asarray(rng.integers(0, v, s.shape), s.dtype) if k == "labels"
                    else jnp.ones(s.shape, f32) if k == "mask"
                    else jnp.asarray(rng.standard_normal(s.shape) * (0.02 if k in ("w", "tw") else 1.0), f32))
                for k, s in shapes.items()}
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        res = compiled["chunked"](*(vals[k] for k in order))
        jax.block_until_ready(res)
        out["chunked"]["run_s"] = time.perf_counter() - t0
        out["chunked"]["peak_rss_growth_bytes"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        mib = 2 ** 20
        for name in ("dense", "chunked"):
            r = out[name]
            print(f"{name:8s} temp {r['temp_bytes'] / mib:9.1f} MiB  total {r['total_bytes'] / mib:9.1f} MiB")
        print(f"chunked / dense: temp {out['chunked_over_dense_temp']:.3f}  total {out['chunked_over_dense_total']:.3f}"
              f"  (target <= 0.25: {'met' if out['target_met'] else 'NOT met'})")
        if args.execute:
            print(f"chunked run {out['chunked']['run_s']:.1f} s, peak RSS growth "
                  f"{out['chunked']['peak_rss_growth_bytes'] / mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
