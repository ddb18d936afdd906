"""KD train-step throughput: read_jax's jitted step vs PyTorch transformers, same model, same loss.

Model: a random Llama (vocab 2048, hidden 256, 4 layers, 4 heads, 2 KV heads, intermediate 688),
float32 on both sides.  Batch 8 × 256 tokens.  Loss = masked cross-entropy + forward KL over the
full vocabulary to given teacher logits (T = 1), first 32 positions of every row masked as
prompt.  Optimizer: AdamW (lr 1e-4, weight decay 0.01) with global-norm clipping at 1.0.
Both run in one (measuring) process on this machine's CPU cores, timed in interleaved rounds
(JAX, torch, JAX, ...) so load from other processes hits both alike; torch uses
``torch.set_num_threads`` with the number of cores (2 here), XLA its own thread pool over the
same cores.  read_jax's side is `Distiller.step_raw` (the jitted, donated train step; loss from
hidden states, chunked with the default ``chunk_size="auto"``, here one chunk); ``tokens/s`` =
batch × seq / median step time for both.

    read-jax bench kd-step [--json] [--steps 12] [--rounds 3] [--loss-path fused|remat|dense]
                           [--malloc retain|default] [--threads N]

``--threads 1`` pins the measuring process to one core (both sides single-threaded): a work
comparison that load from other processes distorts much less than the 2-thread one (a
descheduled OpenMP thread stalls torch's whole step; the JSON's ``machine.contended`` flags
runs where the 1-minute load average exceeded half the cores).

``--malloc retain`` (default) runs the measurement in a child process started with
`read_jax.distill.cpu.RETAIN_MALLOC_ENV` (glibc keeps freed memory mapped), which applies
to both sides alike: without it XLA:CPU page-faults its whole per-step temp buffer on every
step (see `read_jax.distill.cpu`).  Page faults per step are reported for both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, INTER = 2048, 256, 4, 4, 2, 688
PROMPT = 32


def _data(batch: int, seq: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (batch, seq)).astype(np.int32)
    labels = np.concatenate([ids[:, 1:], rng.integers(0, VOCAB, (batch, 1))], 1).astype(np.int32)
    loss_mask = np.ones((batch, seq), np.int32)
    loss_mask[:, :PROMPT] = 0
    teacher_logits = (rng.standard_normal((batch, seq, VOCAB)) * 2).astype(np.float32)
    return ids, labels, loss_mask, teacher_logits


class JaxSide:
    def __init__(self, batch: int, seq: int, loss_path: str, seed: int = 0, compiler_options: dict | None = None,
                 mesh_shape: tuple[int, int, int] = (1, 1, 1), chunk: int | None = None):
        import jax

        from read_jax.distill.losses import LossConfig
        from read_jax.distill.train_step import Distiller, OptimizerConfig
        from read_jax.models import DecoderConfig, init_decoder
        from read_jax.sharding import make_mesh

        self.jax = jax
        cfg = DecoderConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                            max_position_embeddings=max(seq, 512))
        chunk = None if loss_path == "dense" else (chunk or "auto")
        impl = "remat" if loss_path == "remat" else "fused"
        loss = LossConfig(ce=1.0, kl=1.0, temperature=1.0, chunk_size=chunk, chunk_impl=impl)
        opt = OptimizerConfig(learning_rate=1e-4, weight_decay=0.01, max_grad_norm=1.0)
        mesh = make_mesh(mesh_shape, jax.devices()[:int(np.prod(mesh_shape))])
        self.distiller = Distiller(init_decoder(cfg, seed), None, loss, opt, mesh, compiler_options=compiler_options)
        ids, labels, loss_mask, teacher_logits = _data(batch, seq, seed)
        self.batch = self.distiller.place_batch({
            "input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels, "loss_mask": loss_mask,
            "teacher_logits": teacher_logits})
        t0 = time.perf_counter()
        self.step()
        self.compile_s = time.perf_counter() - t0

    def step(self) -> float:
        metrics = self.distiller.step_raw(self.batch)
        self.jax.block_until_ready((self.distiller.params, metrics))
        return float(metrics["loss"][0] / metrics["loss"][1])


class TorchSide:
    def __init__(self, batch: int, seq: int, threads: int, seed: int = 0):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                          num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                          max_position_embeddings=max(seq, 512), tie_word_embeddings=False)
        self.model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.float32).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01)
        ids, labels, loss_mask, teacher_logits = _data(batch, seq, seed)
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.mask = torch.as_tensor(loss_mask, dtype=torch.float32)
        self.teacher_logits = torch.as_tensor(teacher_logits)
        self.step()

    def step(self) -> float:
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(input_ids=self.ids).logits.float()
        log_p = torch.log_softmax(logits, -1)
        n = self.mask.sum().clamp(min=1)
        ce = -(log_p.gather(-1, self.labels[..., None])[..., 0] * self.mask).sum() / n
        log_q = torch.log_softmax(self.teacher_logits, -1)
        kl = ((log_q.exp() * (log_q - log_p)).sum(-1) * self.mask).sum() / n
        loss = ce + kl
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return float(loss.detach())


def _time(fn, n: int, faults: list[int], cpu: list[float]) -> list[float]:
    out = []
    for _ in range(n):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return out


def _stats(times: list[float], tokens: int, faults: list[int], cpu: list[float]) -> dict:
    med = statistics.median(times)
    return {"tokens_per_s": tokens / med, "step_s_min": min(times), "step_s_median": med, "step_s_max": max(times),
            "process_cpu_s_median": statistics.median(cpu), "page_faults_per_step_median": statistics.median(faults)}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench kd-step")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per side, split over rounds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved JAX/torch timing rounds")
    parser.add_argument("--loss-path", choices=["fused", "remat", "dense"], default="fused")
    parser.add_argument("--chunk", type=int, default=None, help="sequence positions per loss chunk (default: auto)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--malloc", choices=["retain", "default"], default="retain",
                        help="glibc malloc setting of the measuring process (both sides)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cores for both sides (default: all; 1 pins the process to one core, which makes the "
                             "comparison robust to load from other processes)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from read_jax.distill.cpu import malloc_retains_memory, retained_malloc_env

    if args.malloc == "retain" and not malloc_retains_memory() and not args.in_process:
        # glibc reads its malloc settings at process start: measure in a fresh child process
        child = [sys.executable, "-m", "read_jax.bench.kd_step", *argv, "--in-process"]
        return subprocess.run(child, env=retained_malloc_env()).returncode

    load_start = os.getloadavg()[0]
    if args.threads:  # before jax starts: XLA sizes its thread pool from the affinity mask
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.threads]))
    threads = len(os.sched_getaffinity(0))

    import jax
    import jaxlib

    tokens = args.batch * args.seq
    js = JaxSide(args.batch, args.seq, args.loss_path, chunk=args.chunk)
    ts = None if args.no_torch else TorchSide(args.batch, args.seq, threads)
    jt, tt, jf, tf, jc, tc = [], [], [], [], [], []
    per = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        jt += _time(js.step, per, jf, jc)
        if ts is not None:
            tt += _time(ts.step, per, tf, tc)
    out = {
        "benchmark": "kd-step",
        "config": {"vocab": VOCAB, "hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "kv_heads": KV_HEADS,
                   "intermediate": INTER, "batch": args.batch, "seq": args.seq, "dtype": "float32",
                   "loss": "masked CE + forward KL (T=1) to given teacher logits, full vocab",
                   "optimizer": "AdamW lr 1e-4 wd 0.01, clip 1.0", "loss_path": args.loss_path,
                   "loss_chunk": args.chunk or "auto",
                   "timed_steps_per_side": len(jt), "rounds": args.rounds},
        "machine": {"cpu": _cpu_name(), "cores": threads, "torch_threads": threads,
                    "jax_devices": str(jax.devices()), "load_avg_1min_at_start": load_start,
                    "load_avg_1min_at_end": os.getloadavg()[0],
                    "malloc": "retain (read_jax.distill.cpu.RETAIN_MALLOC_ENV)" if malloc_retains_memory()
                    else "glibc default"},
        "versions": {"python": sys.version.split()[0], "jax": jax.__version__, "jaxlib": jaxlib.__version__},
        "read_jax_compile_s": js.compile_s,
    }
    out["machine"]["contended"] = max(load_start, out["machine"]["load_avg_1min_at_end"]) > 0.5 * (os.cpu_count() or 1)
    jstats = _stats(jt, tokens, jf, jc)
    out["read_jax_tokens_per_s"] = jstats["tokens_per_s"]
    out["read_jax"] = jstats
    if ts is not None:
        import torch
        import transformers

        out["versions"].update(torch=torch.__version__, transformers=transformers.__version__)
        tstats = _stats(tt, tokens, tf, tc)
        out["torch_tokens_per_s"] = tstats["tokens_per_s"]
        out["torch"] = tstats
        out["ratio"] = jstats["tokens_per_s"] / tstats["tokens_per_s"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"read_jax_tokens_per_s {out['read_jax_tokens_per_s']:.0f}  (compile {js.compile_s:.1f} s)")
        if ts is not None:
            print(f"torch_tokens_per_s    {out['torch_tokens_per_s']:.0f}  (torch.set_num_threads({threads}))")
            print(f"ratio                 {out['ratio']:.3f}")
        for name in ("read_jax", "torch"):
            if name in out:
                s = out[name]
                print(f"{name:9s} step s: min {s['step_s_min']:.3f} median {s['step_s_median']:.3f} "
                      f"max {s['step_s_max']:.3f}  cpu s {s['process_cpu_s_median']:.3f}  "
                      f"page faults/step {s['page_faults_per_step_median']:.0f}")
        print("machine", out["machine"])
        if out["machine"]["contended"] and threads > 1:
            print("warning: other processes loaded this machine during the run; torch's OpenMP threads suffer "
                  "more from contention than XLA's, so the ratio is not representative (try --threads 1)")
        print("versions", out["versions"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
