"""Small-sample statistics for seeds: t-intervals, paired tests, Holm's step-down correction.

With 3-10 seeds per cell a normal interval is too narrow; the t-interval is what the paper's
revision reports.  Paired tests compare two policies seed by seed (same world, same requirement,
same initial student), which removes the between-seed variance both share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the two-sided t-interval); half-width nan for fewer than 2 values."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of mean(a - b) = 0 (1.0 when every difference is 0, nan for n < 2)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.size < 2:
        return float("nan")
    if np.allclose(d, d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan entries stay nan and do not count as tests)."""
    p = np.asarray(pvalues, np.float64)
    ok = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(p.shape, np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
