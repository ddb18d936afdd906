"""The KV-cache sampler: parity with transformers' greedy generate, cache == full forward,
row independence, sampling distributions, seeds, no recompiles, and the text helper."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from hf_fixtures import make_hf_model
from read_jax.models import KVCache, load_hf
from read_jax.models.decoder import StackedWeights
from read_jax.sampling import Sampler, bucket, cache_phases, compile_count, generate, generate_text, sample_logits

LENGTHS = [5, 11, 3]
NEW = 24


@contextlib.contextmanager
def _torch_single_thread():
    """The torch reference is tiny: one thread (2 threads on a busy 2-core machine is ~10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prompts(vocab, lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, n).tolist() for n in lengths]


@pytest.fixture(scope="module", params=["llama", "qwen2_tied", "qwen3"])
def family(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    with _torch_single_thread():
        torch_model = make_hf_model(request.param, d)
    model, config = load_hf(d)
    return request.param, torch_model, model, config


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama_s")
    make_hf_model("llama", d, seed=1)
    return load_hf(d)


def _hf_greedy(torch_model, prompts, new, eos, pad=0):
    t = max(map(len, prompts))
    ids = torch.full((len(prompts), t), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), t), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, t - len(p):] = torch.tensor(p)
        mask[i, t - len(p):] = 1
    with torch.no_grad(), _torch_single_thread():
        out = torch_model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                                   pad_token_id=pad, eos_token_id=eos)
    return out[:, t:].tolist()


def test_greedy_matches_transformers_generate(family):
    name, torch_model, model, config = family
    prompts = _prompts(config.vocab_size)
    free = generate(model, prompts, max_new_tokens=NEW, eos_id=[])
    assert [len(t) for t in free.tokens] == [NEW] * 3
    eos = free.tokens[1][6]  # a token row 1 really emits, so eos handling is exercised
    ours = generate(model, prompts, max_new_tokens=NEW, eos_id=eos)
    ref = _hf_greedy(torch_model, prompts, NEW, eos)
    stopped = 0
    for mine, theirs in zip(ours.tokens, ref):
        first = theirs.index(eos) + 1 if eos in theirs else len(theirs)
        assert mine == theirs[:first]
        stopped += eos in mine
        assert mine.count(eos) <= 1 and (eos not in mine or mine[-1] == eos)
    assert stopped >= 1 and ours.finished[1] and len(ours.tokens[1]) <= 7
    assert all(len(lp) == len(t) for lp, t in zip(ours.token_logprobs, ours.tokens))


@pytest.mark.parametrize("name,cpu", [("llama", True), ("llama", False), ("mistral", True), ("qwen2_tied", True),
                                      ("qwen2_tied", False), ("qwen3", True)])
def test_cached_decode_reproduces_full_forward(name, cpu, tmp_path):
    """One-token steps of the model's forward pass after a left-padded prefill == the full forward
    pass, with the stacked [out, in] weights (`StackedWeights`) the CPU sampler uses and with
    the model's own kernels (mistral: sliding window 7; qwen2: q/k/v biases, tied head; qwen3:
    q/k norms)."""
    make_hf_model(name, tmp_path, seed=2)
    model, config = load_hf(tmp_path)
    rng = np.random.default_rng(3)
    lengths, steps, t = [6, 2, 4], 12, 6
    full = np.zeros((3, t + steps), np.int32)
    mask = np.zeros((3, t + steps), bool)
    for i, n in enumerate(lengths):
        full[i, t - n:] = rng.integers(1, config.vocab_size, n + steps)
        mask[i, t - n:] = True
    forward = jax.jit(lambda m, ids, mask, cache=None: m(ids, attention_mask=mask, cache=cache))
    ref = np.asarray(forward(model, jnp.asarray(full), jnp.asarray(mask)))

    _, cache = forward(model, jnp.asarray(full[:, :t]), jnp.asarray(mask[:, :t]), KVCache.init(config, 3, t))
    cache = cache.grown(t + steps)
    position = jnp.asarray(mask[:, :t].sum(1), jnp.int32)
    stacked = StackedWeights.of(model) if cpu else None
    step = jax.jit(lambda m, token, pos, cache, w: m(token[:, None], positions=pos[:, None], cache=cache, stacked=w))
    for j in range(steps):
        logits, cache = step(model, jnp.asarray(full[:, t + j]), position + j, cache, stacked)
        np.testing.assert_allclose(np.asarray(logits[:, 0]), ref[:, t + j], atol=2e-5, rtol=0)


def test_decoding_across_cache_phases_matches_full_forward(llama):
    """100 new tokens decode in three cache phases (16 + 32, + 64, + 128 slots); every greedy token
    is the full forward pass's argmax and every log-prob its log-softmax, across the phase ends."""
    model, config = llama
    assert cache_phases(16, 128) == (48, 80, 144)
    prompts = _prompts(config.vocab_size, seed=5)
    out = generate(model, prompts, max_new_tokens=100, temperature=0.0, eos_id=[])
    assert [len(t) for t in out.tokens] == [100] * len(prompts)
    right_padded = np.zeros((len(prompts), max(map(len, prompts)) + 100), np.int32)  # causal: right padding is inert
    for i, (p, toks) in enumerate(zip(prompts, out.tokens)):
        right_padded[i, :len(p) + 100] = p + toks
    full = np.asarray(jax.jit(lambda m, x: jax.nn.log_softmax(m(x), axis=-1))(model, jnp.asarray(right_padded)))
    for i, (p, toks, lps) in enumerate(zip(prompts, out.tokens, out.token_logprobs)):
        logp = full[i, len(p) - 1:len(p) - 1 + len(toks)]
        picked = logp[np.arange(len(toks)), toks]
        np.testing.assert_allclose(lps, picked, atol=2e-5)
        np.testing.assert_array_less(logp.max(axis=1) - picked, 1e-4)  # greedy, up to float near-ties


def test_logprobs_and_topk_match_full_forward(llama):
    model, config = llama
    prompts = _prompts(config.vocab_size, seed=4)
    out = generate(model, prompts, max_new_tokens=NEW, temperature=[0.0, 1.0, 0.7], top_k=[0, 0, 5],
                   eos_id=[], topk_logprobs=4)
    seqs = [p + t for p, t in zip(prompts, out.tokens)]
    right_padded = np.zeros((len(seqs), max(map(len, seqs))), np.int32)  # causal: right padding is inert
    for i, seq in enumerate(seqs):
        right_padded[i, :len(seq)] = seq
    full = np.asarray(jax.jit(lambda m, x: jax.nn.log_softmax(m(x), axis=-1))(model, jnp.asarray(right_padded)))
    for i, (p, toks, lps, ids, tlps) in enumerate(
            zip(prompts, out.tokens, out.token_logprobs, out.topk_ids, out.topk_logprobs)):
        logp = full[i, len(p) - 1:len(p) - 1 + len(toks)]  # the untempered teacher distribution
        np.testing.assert_allclose(lps, logp[np.arange(len(toks)), toks], atol=2e-5)
        assert ids.shape == tlps.shape == (len(toks), 4) and ids.dtype == np.int32
        np.testing.assert_allclose(tlps, np.take_along_axis(logp, ids, axis=1), atol=2e-5)
        np.testing.assert_allclose(tlps, -np.sort(-logp, axis=1)[:, :4], atol=2e-5)


def test_row_independent_of_other_rows_and_padding(llama):
    model, config = llama
    a, b, c, d = _prompts(config.vocab_size, [4, 9, 30, 12], seed=5)
    kw = dict(max_new_tokens=NEW, eos_id=[], temperature=[0.0, 0.9, 0.0], seed=11)
    base = generate(model, [a, b, d], **kw)
    # other rows changed: row 0 gets 16 more columns of left padding (prompt bucket 16 -> 32),
    # rows 1 / 2 are other prompts; the greedy row 0 and the sampled row 1 keep their outputs
    other = generate(model, [a, b, c], **kw)
    assert other.tokens[:2] == base.tokens[:2]
    np.testing.assert_allclose(other.token_logprobs[0], base.token_logprobs[0], atol=2e-5)
    np.testing.assert_allclose(other.token_logprobs[1], base.token_logprobs[1], atol=2e-5)
    swapped = generate(model, [c, b, a], **kw)
    assert swapped.tokens[1] == base.tokens[1]
    # an early-finishing neighbour (and the dummy 4th row) do not change a row either
    eos = base.tokens[0][3]
    mixed = generate(model, [a, b, d], **{**kw, "eos_id": eos})
    assert mixed.tokens[0] == base.tokens[0][:base.tokens[0].index(eos) + 1] and mixed.finished[0]
    for got, want in zip(mixed.tokens[1:], base.tokens[1:]):
        assert got == (want[:want.index(eos) + 1] if eos in want else want)


_SAMPLE = jax.jit(sample_logits)


def _reference_probs(logits, temperature, top_p, top_k):
    z = logits / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros_like(z, bool)
    k = top_k if 0 < top_k < len(z) else len(z)
    keep[order[:k]] = True
    p = np.exp(z - z.max()) * keep
    p /= p.sum()
    cum_before = np.cumsum(p[order]) - p[order]
    nucleus = np.zeros_like(keep)
    nucleus[order[(cum_before < top_p) | (top_p >= 1)]] = True
    p = p * (keep & nucleus)
    return p / p.sum()


@pytest.mark.parametrize("temperature,top_p,top_k", [
    (1.0, 1.0, 0), (0.6, 1.0, 0), (1.7, 1.0, 3), (1.0, 0.75, 0), (1.3, 0.6, 4), (0.8, 0.95, 2)])
def test_sampling_distribution(temperature, top_p, top_k):
    n, v = 4000, 8
    logits = np.asarray([1.2, 0.3, -0.5, 2.0, 0.9, -1.5, 0.0, 1.6], np.float32)
    keys = jax.random.split(jax.random.key(1234), n)
    full = lambda x, dt: jnp.full((n,), x, dt)
    draws = _SAMPLE(jnp.broadcast_to(jnp.asarray(logits), (n, v)), keys,
                                   full(temperature, jnp.float32), full(top_p, jnp.float32), full(top_k, jnp.int32))
    counts = np.bincount(np.asarray(draws), minlength=v) / n
    ref = _reference_probs(logits.astype(np.float64), temperature, top_p, top_k)
    assert np.all(counts[ref == 0] == 0), (counts, ref)  # truncated tokens are never drawn
    assert 0.5 * np.abs(counts - ref).sum() < 0.05, (counts, ref)


def test_greedy_rows_are_argmax_in_a_mixed_batch():
    n, v = 4000, 8  # the shapes of test_sampling_distribution: same compiled program
    logits = jax.random.normal(jax.random.key(0), (n, v))
    keys = jax.random.split(jax.random.key(1), n)
    temperature = jnp.where(jnp.arange(n) % 2 == 0, 0.0, 1.0).astype(jnp.float32)
    ones = jnp.ones(n, jnp.float32)
    out = np.asarray(_SAMPLE(logits, keys, temperature, ones, jnp.zeros(n, jnp.int32)))
    greedy = np.asarray(jnp.argmax(logits, -1))
    np.testing.assert_array_equal(out[::2], greedy[::2])
    assert (out[1::2] != greedy[1::2]).mean() > 0.2  # the sampled rows really sample
    topk1 = _SAMPLE(logits, keys, jnp.full(n, 5.0, jnp.float32), ones, jnp.ones(n, jnp.int32))
    np.testing.assert_array_equal(np.asarray(topk1), greedy)  # top_k=1 is greedy at any temperature


def test_no_recompile_when_sampling_values_change_and_seeds(llama):
    model, config = llama
    prompts = _prompts(config.vocab_size, [5, 9, 2], seed=6)
    kw = dict(max_new_tokens=NEW, eos_id=[])
    first = generate(model, prompts, temperature=1.0, seed=3, **kw)
    before = compile_count()
    again = generate(model, prompts, temperature=1.0, seed=3, **kw)
    assert again.tokens == first.tokens and again.token_logprobs == first.token_logprobs  # same seed
    other = generate(model, prompts, temperature=1.0, seed=4, **kw)
    assert other.tokens != first.tokens  # different seed
    for t, p, k in [(0.0, 1.0, 0), ([0.5, 1.5, 0.0], [0.9, 1.0, 0.3], [0, 7, 2]), (2.0, 0.5, 10)]:
        generate(model, prompts, temperature=t, top_p=p, top_k=k, seed=9, **kw)
    generate(model, prompts, temperature=0.3, max_new_tokens=17, eos_id=[5, 6])  # same buckets, other traced values
    generate(model, [prompts[1] + [7, 8], prompts[0][:1], prompts[2]], **kw)  # other lengths, same buckets
    sampler = Sampler(model)  # split once, reused
    assert sampler.generate(prompts, temperature=1.0, seed=3, **kw).tokens == first.tokens
    assert generate(sampler, prompts, temperature=1.0, seed=3, **kw).tokens == first.tokens
    assert compile_count() == before


def test_bucketing_bounds_programs():
    assert [bucket(n) for n in (1, 2, 3, 5, 8, 9, 100)] == [1, 2, 4, 8, 8, 16, 128]
    assert bucket(3, 8) == 8


def test_generate_text_with_chat_template(llama, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model, config = llama
    words = ["<pad>", "<s>", "</s>", "<user>", "<assistant>"] + [f"w{i}" for i in range(config.vocab_size - 5)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   additional_special_tokens=["<user>", "<assistant>"])
    fast.chat_template = ("{% for m in messages %}<user> {{ m['content'] }} </s> {% endfor %}"
                          "{% if add_generation_prompt %}<assistant>{% endif %}")
    prompts = ["w1 w2 w3 w4 w5 w6 w7", "w40 w41", "w9 w8 w7 w6"]
    texts = generate_text(model, fast, prompts, max_new_tokens=NEW)
    ids = [fast.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
           for p in prompts]
    ids = [list(i["input_ids"]) if hasattr(i, "keys") else list(i) for i in ids]
    assert fast.convert_ids_to_tokens(ids[1]) == ["<user>", "w40", "w41", "</s>", "<assistant>"]
    out = generate(model, ids, max_new_tokens=NEW, eos_id=list(config.eos_ids) + [fast.eos_token_id], pad_id=0)
    for text, toks in zip(texts, out.tokens):
        body = [t for t in toks if t != fast.eos_token_id]
        assert text == fast.decode(body, skip_special_tokens=True)
        assert "</s>" not in text


def test_bad_arguments(llama):
    model, _ = llama
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[1, 2], []])
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [[1, 2]], temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [[1, 2]], top_p=0.0)
    with pytest.raises(ValueError, match="one per prompt"):
        generate(model, [[1, 2]], temperature=[0.5, 0.5])
    assert generate(model, []).tokens == []
