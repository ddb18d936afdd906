"""What an experiment reports about its runs: per-phase wall time, ReAD's overhead share, and the demo's
summary table."""

from __future__ import annotations

from typing import Any


def _phase_totals(history: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for h in history:
        for k, v in h["timing"].items():
            totals[k] = totals.get(k, 0.0) + float(v)
    return totals


OVERHEAD_PHASES = ("probe", "bandit", "bookkeeping")


def overhead_share(phase_seconds: dict[str, float]) -> float:
    """Share of the intervals' wall time spent on ReAD's own machinery (probes, bandit, checkpoints),
    as opposed to teacher generation, student training and dev evaluation of the task."""
    total = sum(phase_seconds.values())
    return sum(phase_seconds.get(k, 0.0) for k in OVERHEAD_PHASES) / total if total > 0 else 0.0


def format_table(report: dict[str, Any]) -> str:
    """The demo's summary table: utility, tokens, per-phase wall time, profile per policy."""
    caps = report["capabilities"]
    short = [c[:6] for c in caps]
    w = max(10, *(len(name) for name in report["policies"]))  # policy names such as one_hot.logit_sft
    lines = [f"task {report['task']}   budget {report['budget']['total_tokens']} tokens "
             f"({report['budget']['accounting']} accounting)   utility = {report.get('metric', 'exact_match')} on "
             f"{report['eval_split']}",
             f"{'policy':<{w}} {'utility':>8} {'tokens':>8} {'gen s':>7} {'train s':>8} {'probe s':>8} "
             f"{'bandit s':>9} {'dev s':>6} {'ovh %':>6}   " + " ".join(f"{s:>6}" for s in short)]
    init = report["initial"]
    lines.append(f"{'initial':<{w}} {init['utility']:>8.3f} {0:>8} {'':>7} {'':>8} {'':>8} {'':>9} {'':>6} {'':>6}   "
                 + " ".join(f"{init['profile'][c]:>6.2f}" for c in caps))
    for name, p in report["policies"].items():
        ph = p["phase_seconds"]
        lines.append(f"{name:<{w}} {p['utility']:>8.3f} {p['tokens_used']:>8} {ph.get('generate', 0):>7.1f} "
                     f"{ph.get('train', 0):>8.1f} {ph.get('probe', 0):>8.1f} {ph.get('bandit', 0):>9.1f} "
                     f"{ph.get('dev_eval', 0):>6.1f} {100 * p.get('overhead_share', 0.0):>6.1f}   " + " ".join(f"{p['profile'][c]:>6.2f}" for c in caps))
    t = report["teacher"]["profile"]
    teacher_u = report["teacher"].get("utility")
    lines.append(f"{'teacher':<{w}} {'' if teacher_u is None else f'{teacher_u:.3f}':>8} {'':>8} {'':>7} {'':>8} {'':>8} {'':>9} {'':>6} {'':>6}   "
                 + " ".join(f"{t[c]:>6.2f}" for c in caps))
    extras = sorted(init.get("extra_utility") or {})
    if extras:
        rows = [("initial", init), *report["policies"].items(), ("teacher", report["teacher"])]
        lines.append("extra benchmarks (test split): " + "; ".join(
            f"{name} " + " ".join(f"{e}={row['extra_utility'][e]:.3f}" for e in extras) for name, row in rows))
    req = report["requirement"]
    lines.append("requirement r (" + req["mode"] + "): " + " ".join(f"{v:.2f}" for v in req["estimated"]))
    if req["true"] is not None:
        lines.append("true r (hidden from ReAD):    " + " ".join(f"{v:.2f}" for v in req["true"]))
    lines.append("profile columns: mean log-likelihood of the teacher's probe answers under the model; "
                 "ovh % = probes + bandit + checkpointing, share of the intervals' wall time")
    return "\n".join(lines)
