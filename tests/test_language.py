"""Hugging Face encoders through patch_model, any LayerNorm eps, and the MiniLM language table's
whole path on a randomly initialised small BertModel (the real model's table is `make
accuracy`).

Expected values are independent of the code under test: transformers' own (sdpa) attention
for the exact stand-ins, the golden models' emulate called directly on hand-gathered rows for
the hardware attention, float64 LayerNorm for eps, and NumPy formulas for the metrics.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from golden import layernorm as layernorm_model  # noqa: E402
from golden import softmax as softmax_model  # noqa: E402
from hwgen import cli  # noqa: E402
from hwtorch import accuracy, language  # noqa: E402
from hwtorch import nn as gnn  # noqa: E402


def small_bert(hidden_act="gelu", layers=2, vocab=30522, eps=1e-12, seed=0):
    cfg = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_act=hidden_act,
        layer_norm_eps=eps,
    )
    torch.manual_seed(seed)
    model = transformers.BertModel(cfg).eval()
    with torch.no_grad():  # trained-looking LayerNorms: gamma and beta away from 1 and 0
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model


def padded_batch(seed=1, vocab=30522):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, 12), generator=gen)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    return ids, mask


# -- LayerNorm eps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-12, 1e-6, 1e-5])
def test_layernorm_drop_in_takes_any_eps_within_the_error_bound(eps):
    """Rows of 384 on the s8.8 grid, ordinary ones and ones whose variance is about 1e-5 (so
    eps 1e-5 matters), against float64 (x - mean) / sqrt(var + eps): within 2^-7 (the
    LayerNorm's stated bound) and closer to the right eps than to a wrong one."""
    ln = gnn.LayerNorm(384, eps=eps, elementwise_affine=False)
    rng = np.random.default_rng(0)
    big = np.round(rng.normal(0, 2.0, (8, 384)) * 256) / 256
    tiny = rng.integers(-1, 2, (8, 384)) / 256.0  # var ~ 1e-5
    x = np.concatenate([big, tiny])
    y = ln(torch.tensor(x, dtype=torch.float64)).numpy()
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    ref = (x - mean) / np.sqrt(var + eps)
    assert np.abs(y - ref).max() <= 2.0**-7
    wrong = (x - mean) / np.sqrt(var + (1e-3 if eps < 1e-4 else 1e-8))
    assert np.abs(y - ref)[8:].max() < np.abs(wrong - ref)[8:].max() / 4
    assert ln.params.eps == eps
    assert ln.params.eps_extra_bits == layernorm_model.eps_guard_bits(eps, ln.params.in_fmt)


def test_layernorm_guard_bits_resolve_eps_and_below_the_grid_is_the_floor():
    p = gnn.hardware_eps(layernorm_model.LayerNormParams(), 1e-12)
    # eps code = eps 2^(2F+G) at least 64 units, and two fewer guard bits would not do
    assert p.eps_code >= layernorm_model.EPS_UNITS
    assert 1e-12 * 2.0 ** (16 + p.eps_extra_bits - 2) < layernorm_model.EPS_UNITS
    for eps in (0.0, 1e-30):
        ln = gnn.LayerNorm(16, eps=eps, elementwise_affine=False)
        assert ln.params.eps == 2.0**-48 and ln.params.eps_extra_bits == 32
        out = ln(torch.full((2, 16), 3.0))  # a constant row: 0, not NaN
        assert torch.equal(out, torch.zeros(2, 16))
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        gnn.LayerNorm(16, eps=-1.0)


# -- patch_model on Hugging Face BERT ------------------------------------------------------------


def test_patch_bert_with_exact_standins_reproduces_transformers():
    """EXACT stand-ins through the registered attention function equal transformers' own
    sdpa attention, padding masks included; the state dict keeps its keys."""
    model = small_bert()
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state
    keys = list(model.state_dict())
    patched = copy.deepcopy(model)
    summary = gnn.patch_model(patched, gelu=gnn.EXACT, softmax=gnn.EXACT, layernorm=gnn.EXACT)
    assert summary.counts() == {"gelu": 2, "softmax": 2, "layernorm": 5, "linear": 0}
    assert patched.config._attn_implementation == gnn.HF_ATTENTION
    assert model.config._attn_implementation == "sdpa"  # the original is untouched
    assert list(patched.state_dict()) == keys
    with torch.no_grad():
        out = patched(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_patch_bert_with_the_hardware_operators():
    model = small_bert()
    ids, mask = padded_batch()
    patched = copy.deepcopy(model)
    summary = gnn.patch_model(patched, gelu=True, softmax=True, layernorm=True)
    assert summary.counts() == {"gelu": 2, "softmax": 2, "layernorm": 5, "linear": 0}
    layer = patched.encoder.layer[0]
    assert isinstance(layer.intermediate.intermediate_act_fn, gnn.GELU)
    assert isinstance(layer.attention.self.hw_softmax, gnn.Softmax)
    assert isinstance(layer.output.LayerNorm, gnn.LayerNorm)
    assert layer.output.LayerNorm.params.eps == 1e-12
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out = patched(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    cos = torch.nn.functional.cosine_similarity(out[valid], ref[valid], dim=-1)
    assert cos.min() > 0.99


def test_hardware_attention_softmax_sees_only_the_unmasked_row():
    """Each probability row is emulate() of the row's unmasked scores (gathered by hand) and
    0 at masked keys; the output is those probabilities times V."""
    p = softmax_model.SoftmaxParams()

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hw_softmax = gnn.Softmax(dim=-1, params=p)

    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 5, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    keep = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    keep[1, :, :, 3:] = False  # batch 1: keys 3 and 4 are padding
    out, probs = gnn.hardware_attention(Holder(), q, k, v, keep, scaling=0.25)
    scores = (q @ k.transpose(2, 3) * 0.25).numpy()
    for b, h, i in np.ndindex(2, 2, 5):
        n = 5 if b == 0 else 3
        codes = p.in_fmt.encode(scores[b, h, i, :n])
        want = p.out_fmt.decode(softmax_model.emulate(p, codes))
        assert np.array_equal(probs[b, h, i, :n].numpy(), want)
        assert not probs[b, h, i, n:].any()
    want_out = (probs @ v).transpose(1, 2)
    torch.testing.assert_close(out, want_out, atol=0, rtol=0)
    # an additive float mask (eager style) gives the same probabilities
    additive = torch.zeros(2, 1, 5, 5, dtype=torch.float64)
    additive[~keep] = torch.finfo(torch.float64).min
    _, probs2 = gnn.hardware_attention(Holder(), q, k, v, additive, scaling=0.25)
    assert torch.equal(probs, probs2)


@pytest.mark.parametrize(
    ("act", "replaced", "approximate"),
    [("gelu", 1, "none"), ("gelu_new", 1, "tanh"), ("quick_gelu", 0, None)],
)
def test_hugging_face_gelu_classes(act, replaced, approximate):
    model = small_bert(hidden_act=act, layers=1, vocab=64)
    summary = gnn.patch_model(model, gelu=True)
    assert summary.counts()["gelu"] == replaced
    fn = model.encoder.layer[0].intermediate.intermediate_act_fn
    if replaced:
        assert isinstance(fn, gnn.GELU) and fn.approximate == approximate
    else:
        assert [why for _, why in summary.skipped] == [gnn._HF_GELU_OTHER["QuickGELUActivation"]]
        assert "QuickGELU" in str(summary)


# -- the language table ----------------------------------------------------------------------------


def test_english_sentences_are_prose_and_the_split_is_disjoint():
    sentences = language.english_sentences()
    assert len(sentences) >= 500 and len(set(sentences)) == len(sentences)
    assert all(8 <= len(s.split()) <= 40 and s[-1] in ".!?" for s in sentences)
    cal, ev = language.split_sentences(sentences)
    assert len(cal) == language.CALIBRATION and len(cal) + len(ev) == len(sentences)
    assert not set(cal) & set(ev)
    assert language.split_sentences(sentences) == (cal, ev)  # deterministic


def test_similarity_metrics_against_hand_computed_values():
    exact = np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0, 0, 1.0], [0, 0.6, 0.8]])
    same = language.similarity_metrics(exact, exact * 3.0)  # scale does not matter
    want = {"cos_min": 1.0, "cos_mean": 1.0, "nn_agree": 100.0, "spearman": 1.0}
    assert same == pytest.approx(want)
    moved = exact.copy()
    moved[0] = [0.0, 0.6, 0.8]  # sentence 0 now points where sentence 3 does
    m = language.similarity_metrics(exact, moved)
    assert m["cos_min"] == pytest.approx(0.0) and m["cos_mean"] == pytest.approx(0.75)
    # nearest other sentence, by hand: exact 0->1, 1->0, 2->3, 3->2; moved 0->3 (cos 1),
    # 1->0 (0.36, tied with 3: the first wins), 2->0 (0.8, tied with 3), 3->0: only 1 agrees
    assert m["nn_agree"] == pytest.approx(25.0)
    assert -1.0 <= m["spearman"] < 1.0


@pytest.fixture(scope="module")
def tiny_language_context(tmp_path_factory):
    """A random 2-layer BertModel (MiniLM's tokenizer) on 24 evaluation sentences."""
    _, tokenizer = language.load_minilm()
    encoder = small_bert()
    model = language.SentenceEncoder(encoder).eval()
    sentences = language.english_sentences()[:64]
    ctx = language.make_context(
        model,
        tokenizer,
        sentences=sentences,
        calibration=16,
        batch_size=8,
        limit=24,
        cache_dir=tmp_path_factory.mktemp("minilm-cache"),
    )
    return ctx


def test_language_table_whole_path(tiny_language_context, tmp_path, monkeypatch):
    ctx = tiny_language_context
    monkeypatch.setattr(language, "QAT_EPOCHS", 1)
    names = ["exact", "peano-all", "w-fixp4", "w-mixed-0.25+peano", "w-fixp4-qat"]
    configs = accuracy.select(language.language_configs(), names)
    rows = language.run_language_table(ctx, configs)
    by = {r["config"]: r for r in rows}
    assert by["exact"]["cos_min"] == 1.0 and by["exact"]["nn_agree"] == 100.0
    for r in rows:
        assert r["sentences"] == 24
        assert -1.0 <= r["cos_min"] <= r["cos_mean"] <= 1.0 + 1e-9
    # the patched models' embeddings, recomputed here, give the same metrics
    for name in ("peano-all", "w-mixed-0.25+peano"):
        config = next(c for c in configs if c.name == name)
        emb = language.embed(language.build(ctx, config), ctx.eval_batches, ctx.eval_order)
        want = language.similarity_metrics(ctx.exact, emb)
        assert by[name]["cos_mean"] == pytest.approx(want["cos_mean"], abs=1e-6)
    assert by["w-mixed-0.25+peano"]["budget"] == 0.25
    # the mixed row used the Gauss-Newton importance of every encoder Linear (pooler kept)
    assert set(ctx.importance) == {
        n for n, m in ctx.model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    # a second run reads every row from the cache
    again = language.run_language_table(ctx, configs)
    assert [r["cos_mean"] for r in again] == [r["cos_mean"] for r in rows]
    assert sorted(p.name.split("_")[0] for p in ctx.cache_dir.iterdir()).count("row") == 5
    # the fine-tuned model is cached and its Linears keep their QAT scales on the MAC
    assert len(list(ctx.cache_dir.glob("qat_fixp4_*.pt"))) == 1
    qat = next(c for c in configs if c.name == "w-fixp4-qat")
    built = language.build(ctx, qat)
    assert sum(isinstance(m, gnn.MacLinear) for m in built.modules()) == 12
    assert by["w-fixp4-qat"]["qat"] is True
    plot = language.plot_budget(rows, tmp_path / "budget.png")
    assert plot.exists() and plot.stat().st_size > 1000
    table = language.format_language_table(rows)
    assert table.count("\n") == len(rows) + 1 and "w-mixed-0.25+peano" in table


def test_importance_is_the_gauss_newton_diagonal():
    """For a linear model e = W a the Gauss-Newton diagonal of 0.5 |e - e0|^2 is
    sum over samples of a_j^2 for every row i: the random-projection estimate converges to
    it."""

    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2, bias=False)

        def forward(self, a):
            return self.lin(a)

    a = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    imp = language.importance(Lin(), [a], draws=4000)["lin"].numpy()
    want = np.tile((a.numpy() ** 2).sum(axis=0), (2, 1))
    np.testing.assert_allclose(imp, want, rtol=0.1)


def test_cli_minilm_rejects_image_options(tmp_path, capsys):
    argv = ["accuracy", "--model", "minilm", "--data", str(tmp_path), "--out-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "--model minilm takes no --checkpoint, --data" in capsys.readouterr().err


def test_cli_minilm_table_on_the_real_model(tmp_path, monkeypatch, capsys):
    """The real all-MiniLM-L6-v2 on 6 sentences, two rows: the files and the exact row."""
    monkeypatch.setattr(language, "CACHE_DIR", tmp_path / "cache")
    argv = ["accuracy", "--model", "minilm", "--limit", "6", "--configs", "exact,softmax"]
    assert cli.main([*argv, "--out-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "accuracy_minilm.json").read_text())
    assert [r["config"] for r in rows] == ["exact", "softmax"]
    assert rows[0]["cos_min"] == 1.0 and rows[1]["sentences"] == 6
    assert 0.99 < rows[1]["cos_min"] <= 1.0
    assert "all-MiniLM-L6-v2" in (tmp_path / "accuracy_minilm.md").read_text()
