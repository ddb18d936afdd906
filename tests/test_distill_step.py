"""The jitted, sharded train step and the Distiller wrapper."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.distill.batching import TokenExample, make_batches
from read_jax.distill.losses import LossConfig, kd_loss, token_mask
from read_jax.distill.train_step import Distiller, OptimizerConfig, add_metrics, make_loss_fn, summarize
from read_jax.errors import ReadJaxError
from read_jax.models import DecoderConfig, init_decoder
from read_jax.sharding import make_mesh

FAST = {"xla_backend_optimization_level": 0}  # tiny models: compile time dominates on CPU
CFG = DecoderConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=8)


def _distiller(*args, **kw):
    return Distiller(*args, compiler_options=FAST, **kw)


def _examples(seed, n, vocab=64):
    rng = np.random.default_rng(seed)
    return [TokenExample(list(rng.integers(1, vocab, rng.integers(2, 6))), list(rng.integers(1, vocab, rng.integers(3, 10))))
            for _ in range(n)]


def _batch(seed=0, rows=8):
    (batch,), _ = make_batches(_examples(seed, rows), rows=rows, min_length=16, max_length=16)
    return batch


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def single_run():
    """Reference: 4 steps on one device."""
    loss = LossConfig(ce=0.5, kl=1.0, temperature=2.0, chunk_size=24)
    d = _distiller(init_decoder(CFG, 0), init_decoder(CFG, 1), loss, OptimizerConfig(learning_rate=1e-3),
                  make_mesh((1, 1, 1), jax.devices()[:1]))
    metrics = [d.step(_batch(i).arrays) for i in range(4)]
    return loss, jax.device_get(d.params), jax.device_get(d.opt_state), metrics


@pytest.mark.parametrize("shape", [(2, 2, 2), (8, 1, 1)])
def test_sharded_step_equals_single_device(eight_devices, single_run, shape):
    loss, params, opt_state, metrics = single_run
    d = _distiller(init_decoder(CFG, 0), init_decoder(CFG, 1), loss, OptimizerConfig(learning_rate=1e-3),
                  make_mesh(shape))
    got = [d.step(_batch(i).arrays) for i in range(4)]
    if shape == (2, 2, 2):  # really sharded: fsdp and tp axes are used
        spec = d.params["layers"][0]["mlp"]["gate_proj"]["kernel"].sharding.spec
        assert tuple(spec) == ("fsdp", "tp")
    for a, b in zip(_leaves(d.params), _leaves(params)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    for a, b in zip(_leaves(d.opt_state), _leaves(opt_state)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    for m, ref in zip(got, metrics):
        assert m.keys() == ref.keys()
        for k in m:
            np.testing.assert_allclose(m[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_distillation_lowers_kl_steadily():
    student, teacher = init_decoder(CFG, 0), init_decoder(CFG.replace(initializer_range=0.2), 7)
    loss = LossConfig(ce=0.0, kl=1.0, chunk_size=None)
    d = _distiller(student, teacher, loss, OptimizerConfig(learning_rate=3e-3, max_grad_norm=1.0))
    batches = [_batch(i).arrays for i in range(2)]
    kls = [np.mean([d.step(b)["kl"] for b in batches]) for _ in range(12)]
    assert all(b < a for a, b in zip(kls, kls[1:])), kls
    assert kls[-1] < 0.5 * kls[0], kls
    assert d.step_count == 24


def test_teacher_forward_in_step_equals_given_teacher_logits():
    student, teacher = init_decoder(CFG, 0), init_decoder(CFG, 1)
    batch = _batch(3).arrays
    logits = np.asarray(jax.jit(lambda i, m: teacher(i, m))(batch["input_ids"], batch["attention_mask"]))
    loss = LossConfig(ce=1.0, kl=1.0, reverse_kl=0.5, chunk_size=16)
    a = _distiller(student, teacher, loss)
    b = _distiller(init_decoder(CFG, 0), None, loss)
    ma, mb = a.step(batch), b.step({**batch, "teacher_logits": logits})
    for k in ma:
        np.testing.assert_allclose(ma[k], mb[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for x, y in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_allclose(x, y, atol=1e-5)  # Adam step 1 ~ lr·sign(g): 1 % of lr


def test_step_loss_matches_dense_reference_and_token_counts():
    student = init_decoder(CFG, 0)
    batch = _batch(4)
    d = _distiller(student, None, LossConfig(ce=1.0, chunk_size=8), OptimizerConfig(learning_rate=0.0))
    m = d.step(batch.arrays)
    a = {k: jnp.asarray(v) for k, v in batch.arrays.items()}
    model = init_decoder(CFG, 0)

    @jax.jit
    def ref_loss(a):
        logits = model(a["input_ids"], a["attention_mask"])
        return kd_loss(LossConfig(ce=1.0), logits, a["labels"],
                       token_mask(a["labels"], a["loss_mask"], a["attention_mask"]))[0]

    ref = ref_loss(a)
    np.testing.assert_allclose(m["loss"], float(ref), rtol=1e-5)
    assert m["tokens/label"] == batch.label_tokens == m["tokens/loss"]
    assert m["tokens/prompt"] == batch.prompt_tokens
    assert m["tokens/padding"] == batch.padding_tokens


def test_right_padding_changes_nothing_in_the_step():
    (short,), _ = make_batches(_examples(5, 4), rows=4, min_length=16, max_length=16)
    (long,), _ = make_batches(_examples(5, 4), rows=4, min_length=32, max_length=32)
    fn = jax.jit(make_loss_fn(*_split(init_decoder(CFG, 0))[:1], LossConfig(ce=1.0, chunk_size=16)),
                 compiler_options=FAST)
    params = _split(init_decoder(CFG, 0))[1]
    l16, _ = fn(params, short.arrays, 0)
    l32, _ = fn(params, long.arrays, 0)
    np.testing.assert_allclose(float(l32), float(l16), rtol=1e-5)


def _split(model):
    from flax import nnx
    g, s = nnx.split(model)
    return g, nnx.to_pure_dict(s)


def test_gradient_accumulation_equals_one_big_step():
    rows = 4
    batches, _ = make_batches(_examples(6, 2 * rows), rows=rows, min_length=16, max_length=16)
    loss = LossConfig(ce=1.0, chunk_size=None)
    big = _distiller(init_decoder(CFG, 0), None, loss, OptimizerConfig(learning_rate=1e-3, max_grad_norm=None))
    acc = _distiller(init_decoder(CFG, 0), None, loss,
                    OptimizerConfig(learning_rate=1e-3, max_grad_norm=None, accumulation_steps=2))
    # token-weighted: give both micro-batches the same loss-token count by equalising the loss masks
    arrays = [b.arrays for b in batches]
    n = min(a["loss_mask"].sum() for a in arrays)
    for a in arrays:
        idx = np.argwhere(a["loss_mask"] == 1)[n:]
        a["loss_mask"][tuple(idx.T)] = 0
    big_arrays = {k: np.concatenate([arrays[0][k], arrays[1][k]]) for k in arrays[0]}
    big.step(big_arrays)
    acc.step(arrays[0])
    assert acc.step_count == 0
    acc.step(arrays[1])
    assert acc.step_count == 1
    for x, y in zip(_leaves(acc.params), _leaves(big.params)):
        np.testing.assert_allclose(x, y, atol=1e-5)  # Adam step 1 ~ lr·sign(g): 1 % of lr


def test_topk_from_batch_trains_and_state_roundtrip():
    batch = _batch(7)
    rng = np.random.default_rng(0)
    arrays = dict(batch.arrays)
    k = 4
    arrays["topk_ids"] = rng.integers(0, 64, arrays["input_ids"].shape + (k,)).astype(np.int32)
    lp = np.log(rng.dirichlet(np.ones(k + 1), arrays["input_ids"].shape)[..., :k]).astype(np.float32)
    arrays["topk_logprobs"] = lp
    d = _distiller(init_decoder(CFG, 0), None, LossConfig(ce=0.1, topk_kl=1.0, tail_bucket=True, chunk_size=32),
                  OptimizerConfig(learning_rate=1e-2))
    first = d.step(arrays)["topk_kl"]
    state = jax.device_get(d.state())
    later = [d.step(arrays)["topk_kl"] for _ in range(3)]
    assert later[-1] < first
    d.load_state(state)
    again = d.step(arrays)["topk_kl"]
    np.testing.assert_allclose(again, later[0], rtol=1e-6)
    student = d.student  # an NNX view of the current parameters
    np.testing.assert_array_equal(np.asarray(student.embed_tokens.get_value()),
                                  np.asarray(d.params["embed_tokens"]))


def test_errors_and_metric_helpers():
    other = init_decoder(CFG.replace(vocab_size=65), 1)
    with pytest.raises(ReadJaxError, match="teacher vocabulary size 65 != student vocabulary size 64"):
        _distiller(init_decoder(CFG, 0), other, LossConfig(kl=1.0))
    d = _distiller(init_decoder(CFG, 0), None, LossConfig(kl=1.0))
    with pytest.raises(ReadJaxError, match="teacher_logits"):
        d.step(_batch(0).arrays)
    with pytest.raises(ReadJaxError, match="65 != student vocabulary size 64"):
        d.step({**_batch(0).arrays, "teacher_logits": np.zeros((8, 16, 65), np.float32)})
    m = add_metrics({"a": (1.0, 2.0)}, {"a": (3.0, 2.0), "b": (1.0, 1.0)})
    assert summarize(m)["a"] == 1.0 and summarize(m)["b"] == 1.0
