"""Properties of the masked KD losses against small numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from read_jax.distill.chunked import HiddenTeacher, kd_loss_from_hidden
from read_jax.distill.losses import IGNORE_INDEX, LossConfig, kd_loss, sparse_topk_kl_terms, token_mask
from read_jax.errors import ReadJaxError

B, T, D, V = 2, 11, 8, 23


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _np_kl(p_logits, q_logits):
    lp, lq = _log_softmax(p_logits), _log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def _masked_mean(term, mask):
    return float((term * mask).sum() / max(mask.sum(), 1.0))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(B, T, V)).astype(np.float32) * 2
    t = rng.normal(size=(B, T, V)).astype(np.float32) * 2
    labels = rng.integers(0, V, (B, T)).astype(np.int32)
    labels[0, -1] = IGNORE_INDEX
    loss_mask = (rng.random((B, T)) > 0.3).astype(np.int32)
    attn = np.ones((B, T), np.int32)
    attn[1, -3:] = 0
    mask = np.asarray(token_mask(jnp.asarray(labels), jnp.asarray(loss_mask), jnp.asarray(attn)))
    return s, t, labels, mask


def test_token_mask_combines_all_three():
    labels = jnp.array([[1, IGNORE_INDEX, 3, 4]])
    m = token_mask(labels, jnp.array([[1, 1, 0, 1]]), jnp.array([[1, 1, 1, 0]]))
    np.testing.assert_array_equal(np.asarray(m), [[1, 0, 0, 0]])
    assert m.dtype == jnp.float32


def test_cross_entropy_matches_numpy(data):
    s, t, labels, mask = data
    loss, metrics = kd_loss(LossConfig(ce=1.0), jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask))
    ref = -np.take_along_axis(_log_softmax(s), np.clip(labels, 0, V - 1)[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(loss), _masked_mean(ref, mask), rtol=1e-5)
    total, count = metrics["ce"]
    assert float(count) == mask.sum()
    np.testing.assert_allclose(float(total) / float(count), _masked_mean(ref, mask), rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_forward_kl_t2_scaling_and_identity(data, temperature):
    s, t, labels, mask = data
    cfg = LossConfig(ce=0.0, kl=1.0, temperature=temperature)
    loss, m = kd_loss(cfg, jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask), teacher_logits=jnp.asarray(t))
    ref = temperature ** 2 * _np_kl(t / temperature, s / temperature)
    np.testing.assert_allclose(float(loss), _masked_mean(ref, mask), rtol=1e-5)
    # KL = cross-entropy - teacher entropy (both T²-scaled), and KL at T = 1 reported alongside
    kl, xent, ent = (float(m[k][0]) for k in ("kl", "kl_xent", "kl_entropy"))
    np.testing.assert_allclose(kl, xent - ent, rtol=1e-5, atol=1e-4)
    lt = _log_softmax(t / temperature)
    ref_ent = -(np.exp(lt) * lt).sum(-1) * temperature ** 2
    np.testing.assert_allclose(ent / mask.sum(), _masked_mean(ref_ent, mask), rtol=1e-5)
    np.testing.assert_allclose(float(m["kl_t1"][0]) / mask.sum(), _masked_mean(_np_kl(t, s), mask), rtol=1e-5)


def test_kl_zero_when_student_equals_teacher(data):
    s, _, labels, mask = data
    cfg = LossConfig(ce=0.0, kl=1.0, reverse_kl=1.0, logit_mse=1.0, temperature=1.7)
    loss, m = kd_loss(cfg, jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask), teacher_logits=jnp.asarray(s) + 3.0)
    assert abs(float(loss)) < 1e-5
    for k in ("kl", "reverse_kl", "logit_mse", "kl_t1"):
        assert abs(float(m[k][0])) < 1e-4, k
    # sparse top-k with k = V and the teacher's own log-probs
    ids = np.broadcast_to(np.arange(V), (B, T, V)).astype(np.int32)
    lp = _log_softmax(s).astype(np.float32)
    for tail in (False, True):
        cfg = LossConfig(ce=0.0, topk_kl=1.0, tail_bucket=tail)
        loss, _ = kd_loss(cfg, jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask), topk_ids=jnp.asarray(ids),
                          topk_logprobs=jnp.asarray(lp))
        assert abs(float(loss)) < 1e-5


def test_reverse_kl_and_logit_mse_match_numpy(data):
    s, t, labels, mask = data
    T_ = 1.5
    loss, _ = kd_loss(LossConfig(ce=0.0, reverse_kl=1.0, temperature=T_), jnp.asarray(s), jnp.asarray(labels),
                      jnp.asarray(mask), teacher_logits=jnp.asarray(t))
    np.testing.assert_allclose(float(loss), _masked_mean(T_ ** 2 * _np_kl(s / T_, t / T_), mask), rtol=1e-5)
    loss, _ = kd_loss(LossConfig(ce=0.0, logit_mse=1.0), jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask),
                      teacher_logits=jnp.asarray(t))
    d = s.astype(np.float64) - t
    d = d - d.mean(-1, keepdims=True)
    np.testing.assert_allclose(float(loss), _masked_mean((d * d).mean(-1), mask), rtol=1e-5)


def _topk(t_logits, k):
    lp = _log_softmax(t_logits)
    ids = np.argsort(-lp, axis=-1)[..., :k].astype(np.int32)
    return ids, np.take_along_axis(lp, ids, -1).astype(np.float32)


@pytest.mark.parametrize("tail", [False, True])
def test_sparse_topk_equals_full_kl_when_k_is_vocab(data, tail):
    s, t, labels, mask = data
    ids, lp = _topk(t, V)
    loss, _ = kd_loss(LossConfig(ce=0.0, topk_kl=1.0, tail_bucket=tail), jnp.asarray(s), jnp.asarray(labels),
                      jnp.asarray(mask), topk_ids=jnp.asarray(ids), topk_logprobs=jnp.asarray(lp))
    np.testing.assert_allclose(float(loss), _masked_mean(_np_kl(t, s), mask), rtol=1e-5)


def test_sparse_topk_conventions_match_numpy(data):
    s, t, _, _ = data
    k = 5
    ids, lp = _topk(t, k)
    ls = _log_softmax(s)
    log_p = np.take_along_axis(ls, ids, -1)
    # renormalised over the top-k, at temperature T (student tempered over its full softmax)
    T_ = 2.0
    lq = _log_softmax(lp / T_)
    lpT = np.take_along_axis(_log_softmax(s / T_), ids, -1)
    ref = T_ ** 2 * (np.exp(lq) * (lq - lpT)).sum(-1)
    ours = sparse_topk_kl_terms(jnp.asarray(s), jnp.asarray(ids), jnp.asarray(lp), T_, tail_bucket=False)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)
    # tail bucket: k given probabilities + 1 - Σ; student tail = mass off the top-k
    q = np.exp(lp.astype(np.float64))
    q_tail = 1 - q.sum(-1)
    p_tail = 1 - np.exp(log_p).sum(-1)
    ref = (q * (lp - log_p)).sum(-1) + q_tail * (np.log(q_tail) - np.log(p_tail))
    ours = sparse_topk_kl_terms(jnp.asarray(s), jnp.asarray(ids), jnp.asarray(lp), 1.0, tail_bucket=True)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)
    # coarsening onto k+1 buckets can only lose information: tail KL <= full KL
    assert np.all(np.asarray(ours) <= _np_kl(t, s) + 1e-5)
    assert np.all(np.asarray(ours) >= -1e-6)


def test_tail_bucket_needs_temperature_one():
    with pytest.raises(ReadJaxError, match="temperature 1"):
        LossConfig(topk_kl=1.0, tail_bucket=True, temperature=2.0)


def test_vocab_mismatch_is_one_clear_error(data):
    s, t, labels, mask = data
    with pytest.raises(ReadJaxError, match=rf"teacher vocabulary size {V + 1} != student vocabulary size {V}"):
        kd_loss(LossConfig(kl=1.0), jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask),
                teacher_logits=jnp.zeros((B, T, V + 1)))
    h = jnp.zeros((B, T, D))
    with pytest.raises(ReadJaxError, match=rf"{V + 5} != student vocabulary size {V}"):
        kd_loss_from_hidden(LossConfig(kl=1.0), h, jnp.zeros((D, V)), jnp.asarray(labels), jnp.asarray(mask),
                            teacher=HiddenTeacher(h, jnp.zeros((D, V + 5))))
    with pytest.raises(ReadJaxError, match="top-k id"):
        kd_loss(LossConfig(topk_kl=1.0), jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask),
                topk_ids=jnp.full((B, T, 2), V), topk_logprobs=jnp.zeros((B, T, 2)))


def _hidden_data(seed=1):
    rng = np.random.default_rng(seed)
    h = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(D, V)), jnp.float32)
    th = jnp.asarray(rng.normal(size=(B, T, D + 3)), jnp.float32)
    tw = jnp.asarray(rng.normal(size=(D + 3, V)), jnp.float32)
    return h, w, th, tw


ALL_TERMS = LossConfig(ce=1.0, kl=0.7, reverse_kl=0.3, topk_kl=0.5, logit_mse=0.05, temperature=2.0)


@pytest.mark.parametrize("impl,chunk", [("fused", 7), ("remat", 4), ("fused", 64)])
def test_chunked_equals_dense_values_and_gradients(data, impl, chunk):
    _, _, labels, mask = data
    h, w, th, tw = _hidden_data()
    t_logits = jnp.einsum("btd,dv->btv", th, tw)
    ids, lp = _topk(np.asarray(t_logits), 4)
    kw = dict(topk_ids=jnp.asarray(ids), topk_logprobs=jnp.asarray(lp))
    lab, msk = jnp.asarray(labels), jnp.asarray(mask)

    def dense(h, w):
        return kd_loss(ALL_TERMS, jnp.einsum("btd,dv->btv", h, w), lab, msk, teacher_logits=t_logits, **kw)

    def chunked(h, w):
        return kd_loss_from_hidden(ALL_TERMS, h, w, lab, msk, teacher=HiddenTeacher(th, tw), chunk_size=chunk,
                                   impl=impl, **kw)

    (l0, m0), g0 = jax.jit(jax.value_and_grad(dense, argnums=(0, 1), has_aux=True))(h, w)
    (l1, m1), g1 = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1), has_aux=True))(h, w)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    assert set(m0) == set(m1)
    for k in m0:
        np.testing.assert_allclose(float(m1[k][0]), float(m0[k][0]), rtol=1e-5, atol=1e-4)
        assert float(m1[k][1]) == float(m0[k][1])
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_chunked_with_given_teacher_logits_and_scaled_cotangent(data):
    _, t, labels, mask = data
    h, w, _, _ = _hidden_data()
    cfg = LossConfig(ce=0.5, kl=1.0)
    lab, msk = jnp.asarray(labels), jnp.asarray(mask)

    def dense(h, w):
        return 3.0 * kd_loss(cfg, jnp.einsum("btd,dv->btv", h, w), lab, msk, teacher_logits=jnp.asarray(t))[0]

    def chunked(h, w):
        return 3.0 * kd_loss_from_hidden(cfg, h, w, lab, msk, teacher_logits=jnp.asarray(t), chunk_size=5)[0]

    g0 = jax.jit(jax.grad(dense, argnums=(0, 1)))(h, w)
    g1 = jax.jit(jax.grad(chunked, argnums=(0, 1)))(h, w)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunked", [False, True])
def test_masked_positions_get_exactly_zero_gradient(data, chunked):
    s, t, labels, mask = data
    ids, lp = _topk(t, 3)
    lp = lp.copy()
    lp[mask == 0] = -np.inf  # garbage where masked must not leak
    lab = labels.copy()
    lab[mask == 0] = IGNORE_INDEX
    kw = dict(teacher_logits=jnp.asarray(t), topk_ids=jnp.asarray(ids), topk_logprobs=jnp.asarray(lp))
    if not chunked:
        g = jax.jit(jax.grad(lambda x: kd_loss(ALL_TERMS, x, jnp.asarray(lab), jnp.asarray(mask), **kw)[0]))(
            jnp.asarray(s))
        g = np.asarray(g)
        assert np.all(g[mask == 0] == 0.0)
        assert np.all(np.isfinite(g)) and np.any(g[mask > 0] != 0)
        return
    h, w, _, _ = _hidden_data()
    g = jax.jit(jax.grad(lambda x: kd_loss_from_hidden(ALL_TERMS, x, w, jnp.asarray(lab), jnp.asarray(mask),
                                                       chunk_size=4, **kw)[0]))(h)
    g = np.asarray(g)
    assert np.all(g[mask == 0] == 0.0)
    assert np.all(np.isfinite(g)) and np.any(g[mask > 0] != 0)


def test_padding_changes_nothing(data):
    s, t, labels, mask = data
    pad = 5
    rng = np.random.default_rng(3)
    s2 = np.concatenate([s, rng.normal(size=(B, pad, V)).astype(np.float32) * 50], 1)
    t2 = np.concatenate([t, rng.normal(size=(B, pad, V)).astype(np.float32) * 50], 1)
    lab2 = np.concatenate([labels, rng.integers(0, V, (B, pad))], 1).astype(np.int32)
    attn2 = np.concatenate([np.ones((B, T)), np.zeros((B, pad))], 1)
    loss_mask2 = np.concatenate([mask, np.ones((B, pad))], 1)
    mask2 = token_mask(jnp.asarray(lab2), jnp.asarray(loss_mask2), jnp.asarray(attn2))
    cfg = LossConfig(ce=1.0, kl=1.0, logit_mse=0.1)
    loss = jax.jit(lambda *a: kd_loss(cfg, *a[:3], teacher_logits=a[3]))
    l0, m0 = loss(jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask), jnp.asarray(t))
    l1, m1 = loss(jnp.asarray(s2), jnp.asarray(lab2), mask2, jnp.asarray(t2))
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
    assert float(m1["kl"][1]) == float(m0["kl"][1])


def test_weights_and_temperature_follow_schedules(data):
    s, t, labels, mask = data
    cfg = LossConfig(ce=optax.linear_schedule(1.0, 0.0, 10), kl=optax.linear_schedule(0.0, 1.0, 10),
                     temperature=optax.linear_schedule(1.0, 3.0, 10))
    args = (jnp.asarray(s), jnp.asarray(labels), jnp.asarray(mask))
    ce_only = float(kd_loss(LossConfig(ce=1.0), *args)[0])
    kl3 = float(kd_loss(LossConfig(ce=0.0, kl=1.0, temperature=3.0), *args, teacher_logits=jnp.asarray(t))[0])
    at0 = jax.jit(lambda st: kd_loss(cfg, *args, teacher_logits=jnp.asarray(t), step=st))
    l0, m0 = at0(0)
    l10, m10 = at0(10)
    np.testing.assert_allclose(float(l0), ce_only, rtol=1e-5)
    np.testing.assert_allclose(float(l10), kl3, rtol=1e-5)
    assert float(m10["temperature"][0]) == pytest.approx(3.0)


def test_all_zero_mask_gives_zero_loss_and_finite_grad(data):
    s, t, labels, _ = data
    zero = jnp.zeros((B, T))
    loss, g = jax.jit(jax.value_and_grad(lambda x: kd_loss(
        ALL_TERMS, x, jnp.asarray(labels), zero, teacher_logits=jnp.asarray(t),
        topk_ids=jnp.zeros((B, T, 2), jnp.int32), topk_logprobs=jnp.zeros((B, T, 2)))[0]))(jnp.asarray(s))
    assert float(loss) == 0.0 and np.all(np.asarray(g) == 0.0)


def test_config_validation():
    with pytest.raises(ReadJaxError, match="every loss weight is 0"):
        LossConfig(ce=0.0)
    with pytest.raises(ReadJaxError, match="temperature"):
        LossConfig(temperature=0.0)
    with pytest.raises(ReadJaxError, match="teacher logits"):
        kd_loss(LossConfig(kl=1.0), jnp.zeros((1, 2, V)), jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2)))


def test_chunks_without_loss_tokens_are_skipped_exactly(data):
    """Right padding and a prompt-only prefix make whole chunks empty: same values and grads."""
    _, t, labels, _ = data
    h, w, _, _ = _hidden_data()
    mask = np.zeros((B, T), np.float32)
    mask[:, 4:7] = 1.0  # chunks [0, 4) and [8, 11) hold no loss token
    lab, msk, tl = jnp.asarray(labels), jnp.asarray(mask), jnp.asarray(t)
    cfg = LossConfig(ce=1.0, kl=0.5)

    def dense(h, w):
        return kd_loss(cfg, jnp.einsum("btd,dv->btv", h, w), lab, msk, teacher_logits=tl)[0]

    def chunked(h, w):
        return kd_loss_from_hidden(cfg, h, w, lab, msk, teacher_logits=tl, chunk_size=4)[0]

    l0, g0 = jax.jit(jax.value_and_grad(dense, argnums=(0, 1)))(h, w)
    l1, g1 = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1)))(h, w)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(g1[0])[:, :4] == 0) and np.all(np.asarray(g1[0])[:, 8:] == 0)
