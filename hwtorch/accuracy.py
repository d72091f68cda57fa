"""What the hardware operators and 4-bit weights do to a vision transformer's top-1 accuracy.

Every approximated configuration runs through :mod:`hwtorch.nn`, i.e. through the operators'
bit-exact ``emulate`` models, so the accuracy measured is the hardware's.

The bundled benchmark
---------------------
A small DeiT (timm ``VisionTransformer``: 2x2 patches of the 8x8 image, a class token,
:attr:`DigitsConfig.depth` pre-norm blocks with multi-head attention, GELU MLPs and
LayerNorms) trained on scikit-learn's handwritten digits, which ship inside scikit-learn: no
download. 1,797 images, a stratified split (seed 0) of 1,347 for training and 450 held out; the
held-out images are used only for evaluation. Training is deterministic (fixed seeds, one
thread, deterministic algorithms) and cached under ``build/accuracy/`` keyed by the
configuration and the torch version, so the table is the same on a second run.

Configurations (:func:`standard_configs`)
-----------------------------------------
``exact`` (float32), each operator alone at its default Params (``gelu``, ``softmax``,
``layernorm``), all three (``peano-all``), the weights of every ``nn.Linear`` in the blocks on
the MAC (``w-fixp4``, ``w-posit4``, ``w-mixed-<budget>``: post-training quantization, mixed
assignment weighted by an empirical Fisher importance from training batches), each also with
the three operators (``...+peano``), the same weights after quantization-aware fine-tuning with
the posit gradient approximation (``...-qat``, bundled benchmark only), and a sweep of the
operators' tunable knobs (``gelu-s4`` ... ``softmax-pade11`` ... ``layernorm-nt0`` ...).

Real models
-----------
:func:`imagefolder_data` and :func:`timm_model` evaluate a timm model (DeiT-T/S/B, ...) with a
user checkpoint on an ImageNet-style validation folder (one sub-folder per class, sorted names
= ImageNet's class-index order, as torchvision's ``ImageFolder`` reads it).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from golden import gelu as gelu_model
from golden import layernorm as layernorm_model
from golden import softmax as softmax_model

from . import nn as gnn
from . import quant

__all__ = [
    "DigitsConfig",
    "Config",
    "digits_data",
    "digits_deit",
    "train_digits",
    "load_or_train_digits",
    "evaluate",
    "Shard",
    "shard_data",
    "ProcessGroup",
    "score_table",
    "merged_scores",
    "merge_parts",
    "standard_configs",
    "run_table",
    "format_table",
    "timm_model",
    "imagefolder_data",
    "forward_overhead",
]

#: Trained models, importance and cached rows: build/accuracy/ of the current folder (never
#: inside an installed package).
CACHE_DIR = Path("build") / "accuracy"

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


# -- the bundled benchmark -----------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsConfig:
    """The bundled DeiT and its training recipe.

    Parameters
    ----------
    embed_dim, depth, num_heads, mlp_ratio, patch_size
        ``VisionTransformer`` shape (8x8 images, 1 channel, 10 classes).
    epochs, batch_size, lr, weight_decay
        AdamW with a one-cycle schedule, cross entropy.
    shift : int
        Augmentation: each training image is moved by up to ``shift`` pixels per axis.
    seed : int
        Seeds the split, the initial weights and the batch order.
    """

    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    patch_size: int = 2
    epochs: int = 150
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    shift: int = 1
    seed: int = 0

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True) + torch.__version__
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def digits_data(seed: int = 0):
    """``(x_train, y_train), (x_test, y_test)``: digits as ``[N, 1, 8, 8]`` float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=450, random_state=seed, stratify=y
    )

    def images(a):
        return torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8)

    def labels(a):
        return torch.tensor(a, dtype=torch.int64)

    return (images(x_tr), labels(y_tr)), (images(x_te), labels(y_te))


def digits_deit(cfg: DigitsConfig = DigitsConfig()) -> torch.nn.Module:
    """The bundled DeiT, freshly initialised from ``cfg.seed``."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(cfg.seed)
    return VisionTransformer(
        img_size=8,
        patch_size=cfg.patch_size,
        in_chans=1,
        num_classes=10,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
    )


def _shifted(xb: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by its own random offset in -shift .. shift (zero fill)."""
    if shift == 0:
        return xb
    n = xb.shape[0]
    padded = torch.nn.functional.pad(xb, (shift,) * 4)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(8)[None, :])[:, None, :, None].expand(n, 1, 8, 8 + 2 * shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(8)[None, :])[:, None, None, :].expand(n, 1, 8, 8)
    return out.gather(3, cols)


class _Deterministic:
    """One thread and deterministic kernels while training (restored afterwards)."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        self.det = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.det)


def _train_epochs(model, opt, sched, data, cfg: DigitsConfig, epochs, progress, what):
    (x, y) = data
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(
                model(_shifted(x[idx], cfg.shift, gen)), y[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 9 or epoch == epochs - 1:
            progress(f"{what}: epoch {epoch + 1}/{epochs}, loss {total / len(x):.4f}")
    model.eval()
    return model


def train_digits(cfg: DigitsConfig = DigitsConfig(), progress: Progress = _quiet):
    """Train the bundled DeiT from scratch (deterministic for a config); returns it in eval
    mode."""
    train, _ = digits_data(cfg.seed)
    with _Deterministic():
        model = digits_deit(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * math.ceil(len(train[0]) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1
        )
        return _train_epochs(model, opt, sched, train, cfg, cfg.epochs, progress, "train")


@dataclass
class Trained:
    """A model from :func:`load_or_train_digits` and how it came about."""

    model: torch.nn.Module
    train_seconds: float
    cached: bool
    path: Path


def load_or_train_digits(
    cfg: DigitsConfig = DigitsConfig(),
    cache_dir: Path | str = CACHE_DIR,
    progress: Progress = _quiet,
) -> Trained:
    """The trained bundled DeiT from ``cache_dir`` or, when absent, trained now and cached."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"digits_deit_{cfg.key()}.pt"
    model = digits_deit(cfg)
    if path.exists():
        blob = torch.load(path, weights_only=True)
        model.load_state_dict(blob["state_dict"])
        model.eval()
        return Trained(model, float(blob["train_seconds"]), True, path)
    progress(f"training the digits DeiT ({cfg.epochs} epochs), cached as {path}")
    t0 = time.monotonic()
    model = train_digits(cfg, progress)
    seconds = time.monotonic() - t0
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "train_seconds": seconds}, tmp)
    tmp.replace(path)
    return Trained(model, seconds, False, path)


# -- evaluation ----------------------------------------------------------------------------------


def _batches(data, batch_size: int):
    """``(x, y)`` batches from a pair of tensors or an iterable of batches (a DataLoader)."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
    else:
        yield from data


def evaluate(
    model: torch.nn.Module,
    data,
    batch_size: int = 256,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Scores of ``model`` on ``data`` (as for :func:`_batches`): ``top1`` (percent),
    ``loss`` (mean cross entropy, nats), ``images``, ``preds`` (the predicted classes),
    ``labels`` and ``losses`` (each image's cross entropy, float64)."""
    model.eval()
    preds, labels, losses = [], [], []
    with torch.no_grad():
        for xb, yb in _batches(data, batch_size):
            logits = model(xb.to(device)).float().cpu()
            preds.append(logits.argmax(dim=-1))
            labels.append(yb)
            # per image, so that shards merged in dataset order sum to the same mean
            ce = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
            losses.append(ce.double())
            if progress is not None:
                progress(len(yb))
    if not preds:
        raise ValueError("no images to evaluate")
    preds, labels, losses = torch.cat(preds), torch.cat(labels), torch.cat(losses)
    return {
        "top1": 100.0 * int((preds == labels).sum()) / len(labels),
        "loss": float(losses.sum()) / len(labels),
        "images": len(labels),
        "preds": preds,
        "labels": labels,
        "losses": losses,
    }


# -- shards: one table from many processes -------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """The part of the evaluation images that one process scores.

    The images are cut into batches of the evaluation batch size, in dataset order; shard
    ``index`` of ``count`` takes batches ``index``, ``index + count``, ... . Whole batches keep
    every forward pass the same as in a single-process run (the same images in the same batch
    shape, so the same kernels), and the predictions merged back in dataset order equal that
    run's image for image.

    Parameters
    ----------
    index : int
        This shard, 0 to ``count - 1``.
    count : int
        Number of shards.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"shard count must be at least 1, not {self.count!r}")
        if not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index must be 0 to {self.count - 1} for {self.count} shards, "
                f"not {self.index!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` (``--shard 0/4``) as a Shard."""
        head, sep, tail = text.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"--shard must be I/N, e.g. 0/4 (the first of four), not {text!r}")
        return cls(int(head), int(tail))

    def indices(self, n: int, batch_size: int) -> list[int]:
        """Dataset indices of this shard's images, in order."""
        out: list[int] = []
        for start in range(self.index * batch_size, n, self.count * batch_size):
            out += range(start, min(n, start + batch_size))
        return out


def shard_data(data, batch_size: int, shard: Shard | None):
    """``(data, indices, n)``: this shard's part of ``data`` (as for :func:`_batches`), its
    images' dataset indices and the number of images in all shards together.

    A pair of tensors is cut with ``batch_size``, a DataLoader with its own batch size."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        n = len(data[0])
        idx = (shard or Shard()).indices(n, batch_size)
        if shard is None or shard.count == 1:
            return data, idx, n
        pick = torch.tensor(idx, dtype=torch.long)
        return (data[0][pick], data[1][pick]), idx, n
    if isinstance(data, torch.utils.data.DataLoader):
        n = len(data.dataset)
        idx = (shard or Shard()).indices(n, data.batch_size)
        if shard is None or shard.count == 1:
            return data, idx, n
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(data.dataset, idx),
            batch_size=data.batch_size,
            shuffle=False,
            num_workers=data.num_workers,
            collate_fn=data.collate_fn,
        )
        return loader, idx, n
    raise ValueError(
        "evaluation data must be a pair of tensors (x, y) or a torch DataLoader to be sharded"
    )


class ProcessGroup:
    """The processes of one ``torchrun`` launch, which share one table.

    Reads the launch from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ...) and joins it with the gloo backend: only predictions and scores
    travel between the processes, so CPU-only machines, GPUs and several nodes all work.

    Members
    -------
    rank : int
        This process, 0 to ``size - 1``; rank 0 trains what needs training and writes files.
    size : int
        Number of processes.
    local_rank : int
        This process on its node (which GPU it takes with ``--device cuda``).
    """

    def __init__(self, timeout_s: float = 4 * 3600.0):
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_gloo_available():
            raise RuntimeError("this torch has no gloo backend for torch.distributed")
        self.rank = int(os.environ["RANK"])
        self.size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        # training on rank 0 can keep the others at a barrier for minutes: generous timeout
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
        self._dist = dist

    @staticmethod
    def launched() -> bool:
        """Whether this process is one of several started by torchrun."""
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ

    def gather(self, obj) -> list:
        """``obj`` of every process, in rank order, in every process."""
        out = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` in every process."""
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        self._dist.barrier()

    @contextlib.contextmanager
    def rank0_first(self):
        """Rank 0 runs the block first (e.g. training into a cache), then the others."""
        if self.rank != 0:
            self.barrier()
        yield
        if self.rank == 0:
            self.barrier()

    def close(self) -> None:
        self._dist.destroy_process_group()


# -- configurations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One row of the accuracy table: what :func:`hwtorch.nn.patch_model` gets.

    ``weights`` is a :class:`hwtorch.nn.WeightSpec` or None; ``qat`` fine-tunes the quantized
    weights first (bundled benchmark only).
    """

    name: str
    gelu: object = None
    softmax: object = None
    layernorm: object = None
    weights: gnn.WeightSpec | None = None
    qat: bool = False
    group: str = "operators"

    def apply(self, model: torch.nn.Module, importance: dict | None = None) -> gnn.PatchSummary:
        """Patch ``model`` in place as this row says (``importance``: for mixed weights)."""
        return gnn.patch_model(
            model,
            gelu=self.gelu,
            softmax=self.softmax,
            layernorm=self.layernorm,
            weights=self.weights,
            importance=importance,
        )

    def describe(self) -> dict:
        def text(v):
            if v is None:
                return "exact"
            if v is True:
                return "default"
            return getattr(v, "name", str(v))

        out = {
            "gelu": text(self.gelu),
            "softmax": text(self.softmax),
            "layernorm": text(self.layernorm),
            "weights": "float" if self.weights is None else self.weights.mode,
        }
        if self.weights is not None and self.weights.mode == "mixed":
            out["budget"] = self.weights.budget
        if self.qat:
            out["qat"] = True
        return out


BUDGETS = (0.1, 0.25, 0.5)


def standard_configs(qat: bool = True) -> list[Config]:
    """The table's rows: exact, each operator alone, all three, weights (with and without the
    operators, PTQ and optionally QAT), and the tunable-knob sweep."""
    ops = {"gelu": True, "softmax": True, "layernorm": True}
    rows = [
        Config("exact", group="operators"),
        Config("gelu", gelu=True),
        Config("softmax", softmax=True),
        Config("layernorm", layernorm=True),
        Config("peano-all", **ops),
    ]
    specs = [("w-fixp4", gnn.WeightSpec(mode="fixp4")), ("w-posit4", gnn.WeightSpec("posit4"))]
    specs += [(f"w-mixed-{b:g}", gnn.WeightSpec(mode="mixed", budget=b)) for b in BUDGETS]
    for name, spec in specs:
        rows.append(Config(name, weights=spec, group="weights"))
        rows.append(Config(f"{name}+peano", weights=spec, group="weights", **ops))
    if qat:
        for name, spec in specs:
            rows.append(Config(f"{name}-qat", weights=spec, qat=True, group="weights-qat"))
            rows.append(
                Config(f"{name}-qat+peano", weights=spec, qat=True, group="weights-qat", **ops)
            )
    g, s, ln = gelu_model.GeluParams(), softmax_model.SoftmaxParams(), None
    ln = layernorm_model.LayerNormParams()
    pade11 = softmax_model.PadeOrder.P11
    for k in (4, 8, 32, 64):
        rows.append(Config(f"gelu-s{k}", gelu=g.replace(segments=k), group="sweep"))
    mult = g.replace(slope_mode=gelu_model.SlopeMode.MULT)
    rows.append(Config("gelu-s16-mult", gelu=mult, group="sweep"))
    rows += [
        Config("softmax-pade11", softmax=s.replace(pade=pade11), group="sweep"),
        Config("softmax-r64-nt1", softmax=s.replace(recip_bits=6, newton_steps=1), group="sweep"),
        Config("softmax-r16-nt0", softmax=s.replace(recip_bits=4, newton_steps=0), group="sweep"),
        Config("softmax-nt2", softmax=s.replace(newton_steps=2), group="sweep"),
        Config("softmax-exp2-t10", softmax=s.replace(exp_table_bits=10), group="sweep"),
        Config("softmax-exp2-t8", softmax=s.replace(exp_table_bits=8), group="sweep"),
        Config("layernorm-nt0", layernorm=ln.replace(newton_steps=0), group="sweep"),
        Config("layernorm-nt2", layernorm=ln.replace(newton_steps=2), group="sweep"),
        Config(
            "layernorm-rb4-nt1", layernorm=ln.replace(rsqrt_bits=4, newton_steps=1), group="sweep"
        ),
    ]
    return rows


def select(configs: list[Config], names: Iterable[str] | None) -> list[Config]:
    """The configurations named (in table order); a one-line error for an unknown name."""
    if not names:
        return configs
    wanted = list(names)
    known = {c.name for c in configs}
    bad = [n for n in wanted if n not in known]
    if bad:
        raise ValueError(
            f"unknown accuracy configuration {bad[0]!r}; known: {', '.join(sorted(known))}"
        )
    return [c for c in configs if c.name in wanted]


# -- running the table ---------------------------------------------------------------------------


@dataclass
class TableContext:
    """What the rows of one table share: the float model, the data, and what is cached."""

    model: torch.nn.Module
    eval_data: object
    train_data: tuple | None = None  # (x, y) for importance and QAT (bundled benchmark)
    batch_size: int = 256
    device: str = "cpu"
    cfg: DigitsConfig | None = None
    cache_dir: Path = CACHE_DIR
    importance: dict | None = None
    qat_models: dict = field(default_factory=dict)
    #: which images this process scores (None: all of them)
    shard: Shard | None = None
    #: the processes of a torchrun launch that share the table (None: this process alone)
    group: ProcessGroup | None = None


def _importance(ctx: TableContext) -> dict | None:
    if ctx.train_data is None:
        return None
    if ctx.importance is None:
        x, y = ctx.train_data
        batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x), 64)]
        # one thread, deterministic kernels: the same importance (hence the same mixed
        # assignment) in every process, whatever its thread count
        with _Deterministic():
            ctx.importance = quant.importance_from_grad(
                ctx.model, torch.nn.functional.cross_entropy, batches
            )
    return ctx.importance


def _qat_model(ctx: TableContext, spec: gnn.WeightSpec, progress: Progress):
    """The float model with its block Linears fine-tuned as :class:`hwtorch.quant.QuantLinear`
    (posit gradient approximation), cached per weight spec."""
    if ctx.train_data is None or ctx.cfg is None:
        raise ValueError("quantization-aware fine-tuning needs the bundled benchmark's data")
    key = (spec.mode, spec.budget, spec.es)
    if key in ctx.qat_models:
        return ctx.qat_models[key]
    cfg = ctx.cfg
    tag = f"{spec.mode}_{spec.budget:g}_es{spec.es}"
    path = ctx.cache_dir / f"digits_deit_{cfg.key()}_qat_{tag}.pt"
    imp = _importance(ctx) if spec.mode == "mixed" else None
    model = quant.to_qat(
        ctx.model, spec.mode, skip=spec.skip, es=spec.es, budget=spec.budget, importance=imp
    )
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        progress(f"quantization-aware fine-tuning ({spec.mode}, budget {spec.budget:g})")
        with _Deterministic():
            opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0)
            _train_epochs(model, opt, None, ctx.train_data, cfg, QAT_EPOCHS, progress, "qat")
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")  # shard jobs may share the cache: never a half file
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    model.eval()
    ctx.qat_models[key] = model
    return model


#: epochs of quantization-aware fine-tuning (lr 2e-4, AdamW) for the ``-qat`` rows
QAT_EPOCHS = 15


def build(ctx: TableContext, config: Config, progress: Progress = _quiet) -> torch.nn.Module:
    """The model of one configuration: a patched copy of the float (or QAT) model."""
    base = ctx.model
    if config.qat:
        base = _qat_model(ctx, config.weights, progress)
    model = copy.deepcopy(base)
    config.apply(model, _importance(ctx) if config.weights is not None and not config.qat else None)
    return model.eval()


#: ``format`` of a shard file (``hwgen accuracy --shard I/N``)
SHARD_FORMAT = "hwgen-accuracy-shard-1"


def score_table(
    ctx: TableContext,
    configs: list[Config],
    progress: Progress = _quiet,
    bar: bool = False,
) -> dict:
    """Score every configuration on this process's shard of the images (``ctx.shard``).

    Returns a part for :func:`merge_parts` (plain JSON data, so it can go to a file or
    between processes): ``format``, ``shard`` (``[index, count]``), ``images`` (all shards
    together), ``batch_size``, ``rows`` (each configuration's name, group, settings and
    seconds) and ``scores`` (per configuration: dataset ``index``, ``pred``, ``label`` and
    ``loss`` of each image of the shard)."""
    shard = ctx.shard or Shard()
    data, idx, n = shard_data(ctx.eval_data, ctx.batch_size, ctx.shard)
    first = ctx.group.rank0_first if ctx.group is not None else contextlib.nullcontext
    if ctx.group is not None and ctx.train_data is not None:
        if any(c.weights is not None for c in configs):
            # the importance behind the mixed assignment: rank 0's, in every process
            imp = _importance(ctx) if ctx.group.rank == 0 else None
            ctx.importance = ctx.group.broadcast(imp)
    part = {
        "format": SHARD_FORMAT,
        "shard": [shard.index, shard.count],
        "images": n,
        "batch_size": getattr(ctx.eval_data, "batch_size", ctx.batch_size),
        "rows": [],
        "scores": {},
    }
    for k, config in enumerate(configs, 1):
        t0 = time.monotonic()
        with first() if config.qat else contextlib.nullcontext():
            # QAT fine-tuning happens once (rank 0); the others load its cached result
            model = build(ctx, config, progress)
        pbar = tick = None
        if bar:
            from tqdm import tqdm

            pbar = tqdm(total=len(idx), desc=config.name, unit="img", leave=False)
            tick = pbar.update
        try:
            if idx:
                score = evaluate(model, data, ctx.batch_size, ctx.device, tick)
            else:  # more shards than batches: nothing to do here
                empty = torch.zeros(0)
                score = {"preds": empty, "labels": empty, "losses": empty.double()}
                score.update(top1=math.nan, loss=math.nan)
        finally:
            if pbar is not None:
                pbar.close()
        seconds = time.monotonic() - t0
        part["rows"].append(
            {"config": config.name, "group": config.group, **config.describe(), "seconds": seconds}
        )
        part["scores"][config.name] = {
            "index": idx,
            "pred": score["preds"].tolist(),
            "label": score["labels"].tolist(),
            "loss": score["losses"].tolist(),
        }
        where = f"shard {shard.index}/{shard.count}: " if shard.count > 1 else ""
        progress(
            f"[{k}/{len(configs)}] {config.name:24s} {where}top-1 {score['top1']:6.2f} %  "
            f"loss {score['loss']:.4f}  ({seconds:.1f} s)"
        )
    return part


def _check_parts(parts: list[dict]) -> None:
    """One-line errors for parts that do not make one table."""
    if not parts:
        raise ValueError("no shards to merge")
    for part in parts:
        if not isinstance(part, dict) or part.get("format") != SHARD_FORMAT:
            raise ValueError(
                f"not an accuracy shard (format {SHARD_FORMAT!r}); write shards with "
                "`hwgen accuracy --shard I/N`"
            )
    count = parts[0]["shard"][1]
    for key in ("images", "batch_size", "source"):
        values = {json.dumps(p.get(key), sort_keys=True) for p in parts}
        if len(values) > 1:
            raise ValueError(f"the shards come from different runs: their {key} differ")
    names = [[r["config"] for r in p["rows"]] for p in parts]
    if any(n != names[0] for n in names):
        raise ValueError("the shards come from different runs: their configurations differ")
    got = sorted(p["shard"][0] for p in parts)
    if any(p["shard"][1] != count for p in parts) or len(set(got)) != len(got):
        shards = ", ".join(f"{i}/{c}" for i, c in sorted(p["shard"] for p in parts))
        raise ValueError(f"each shard must appear once, of one count; got {shards}")
    if got != list(range(count)):
        missing = sorted(set(range(count)) - set(got))
        raise ValueError(
            f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing; merge all {count}"
        )


def merged_scores(parts: list[dict]) -> dict[str, dict]:
    """Per configuration, the shards' images back in dataset order: ``pred``, ``label``
    (int64 tensors) and ``loss`` (float64)."""
    _check_parts(parts)
    n = parts[0]["images"]
    out = {}
    for row in parts[0]["rows"]:
        name = row["config"]
        index = torch.tensor([i for p in parts for i in p["scores"][name]["index"]])
        if len(index) != n or not torch.equal(index.sort().values, torch.arange(n)):
            raise ValueError(f"the shards of {name!r} do not cover the {n} images once each")
        order = index.argsort()
        out[name] = {
            key: torch.tensor(
                [v for p in parts for v in p["scores"][name][key]],
                dtype=torch.float64 if key == "loss" else torch.int64,
            )[order]
            for key in ("pred", "label", "loss")
        }
    return out


def merge_parts(parts: list[dict]) -> list[dict]:
    """The table's rows from the parts of :func:`score_table` (every shard once): the same
    rows, image for image, as one process scoring every image; ``seconds`` is the slowest
    shard's."""
    scores = merged_scores(parts)
    rows = []
    for k, meta in enumerate(parts[0]["rows"]):
        s = scores[meta["config"]]
        n = len(s["label"])
        row = {"config": meta["config"], "group": meta["group"]}
        row["top1"] = round(100.0 * int((s["pred"] == s["label"]).sum()) / n, 4)
        row["loss"] = round(float(s["loss"].sum()) / n, 5)
        row["images"] = n
        row.update({key: v for key, v in meta.items() if key not in ("config", "group", "seconds")})
        row["seconds"] = round(max(p["rows"][k]["seconds"] for p in parts), 2)
        rows.append(row)
    if "exact" in scores:
        exact_top1 = next(r["top1"] for r in rows if r["config"] == "exact")
        for row in rows:
            row["drop"] = round(exact_top1 - row["top1"], 4)
            same = scores[row["config"]]["pred"] == scores["exact"]["pred"]
            row["agree"] = round(float(same.double().mean()) * 100.0, 4)
    return rows


def run_table(
    ctx: TableContext,
    configs: list[Config],
    progress: Progress = _quiet,
    bar: bool = False,
) -> list[dict]:
    """Evaluate every configuration; rows with ``config``, ``top1``, ``loss`` (mean cross
    entropy), ``images``, ``seconds``, the settings and, when ``exact`` is among the rows,
    ``drop`` (top-1 points below ``exact``) and ``agree`` (percent of images whose predicted
    class equals the exact model's: finer than top-1 on a small test set).

    With ``ctx.group`` (a torchrun launch) each process scores its shard and every process
    gets the merged rows, equal to a single-process run's."""
    if ctx.group is not None:
        ctx.shard = Shard(ctx.group.rank, ctx.group.size)
    part = score_table(ctx, configs, progress, bar)
    parts = ctx.group.gather(part) if ctx.group is not None else [part]
    return merge_parts(parts)


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    has_drop = any("drop" in r for r in rows)
    head = "| config | group | top-1 % |" + (" drop (points) | agree % |" if has_drop else "")
    head += " loss |"
    head += " gelu | softmax | layernorm | weights |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        w = r["weights"] + (f" {r['budget']:g}" if "budget" in r else "")
        w += " (QAT)" if r.get("qat") else ""
        line = f"| {r['config']} | {r['group']} | {r['top1']:.2f} |"
        if has_drop:
            line += f" {r.get('drop', 0.0):+.2f} | {r.get('agree', 100.0):.2f} |"
        line += f" {r['loss']:.4f} |"
        line += f" {r['gelu']} | {r['softmax']} | {r['layernorm']} | {w} |"
        lines.append(line)
    return "\n".join(lines)


# -- real models and data ------------------------------------------------------------------------


def timm_model(
    name: str, checkpoint: Path | str | None = None, num_classes: int | None = None
) -> torch.nn.Module:
    """A timm model (random weights, nothing downloaded) with ``checkpoint`` loaded strictly.

    ``num_classes`` overrides the model's classifier width (default: timm's, 1000 for the
    ImageNet models).

    The checkpoint may be a state dict or a dict holding one under ``model``,
    ``state_dict`` or ``model_state``. Errors are one line: unknown model, missing file, a
    file that is not a torch checkpoint, a checkpoint that does not fit the model.
    """
    import timm

    if name not in timm.list_models():
        raise ValueError(
            f"unknown timm model {name!r}; e.g. deit_tiny_patch16_224, deit_small_patch16_224, "
            "deit_base_patch16_224 (see timm.list_models())"
        )
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"--num-classes must be at least 1, not {num_classes}")
    model = timm.create_model(name, pretrained=False, **extra)
    if checkpoint is None:
        return model.eval()
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist; pass the path of a .pth file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip or torch errors: all mean "not a checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{str(path)!r} is not a readable torch checkpoint ({first[:120]})"
        ) from None
    state = blob
    if isinstance(blob, dict):
        for key in ("model", "state_dict", "model_state"):
            if key in blob and isinstance(blob[key], dict):
                state = blob[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} holds no state dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit {name}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys (e.g. {example!r}); pass the matching --model"
        )
    if wrong:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit {name}: shape of {wrong[0]!r} is "
            f"{tuple(state[wrong[0]].shape)}, the model's {tuple(own[wrong[0]].shape)}"
        )
    model.load_state_dict(state)
    return model.eval()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def imagefolder_data(
    root: Path | str,
    model: torch.nn.Module,
    batch_size: int = 64,
    limit: int | None = None,
    workers: int = 0,
):
    """A DataLoader over an ImageNet-style folder with the model's own preprocessing.

    ``root`` holds one sub-folder per class; sorted folder names give the class indices
    (ImageNet's order for its ``n0...`` folder names). ``limit`` takes an evenly spread subset
    of that many images (every k-th, so all classes are represented). Returns
    ``(loader, n_images, n_classes)``.
    """
    import timm.data
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(
            f"{str(root)!r} is not an image folder: it needs one sub-folder of images per "
            "class (ImageNet layout: val/n01440764/*.JPEG ...)"
        )
    if not any(f.suffix.lower() in IMAGE_SUFFIXES for d in classes for f in (root / d).iterdir()):
        raise ValueError(
            f"{str(root)!r} is not an image folder: its class folders hold no images "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    cfg = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**cfg)
    dataset = ImageFolder(str(root), transform=transform)
    n_classes = len(dataset.classes)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be at least 1, not {limit}")
        step = max(1, len(dataset) // limit)
        dataset = torch.utils.data.Subset(dataset, list(range(0, len(dataset), step))[:limit])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers
    )
    return loader, len(dataset), n_classes


# -- the cost of emulation -----------------------------------------------------------------------


def forward_overhead(
    name: str = "deit_small_patch16_224", batch: int = 1, repeats: int = 3, threads: int = 0
) -> dict:
    """Seconds of one forward pass of a timm model, exact and with the three operators
    replaced by their emulations (both with fused attention off), and the ratio.

    The two are timed alternately, ``repeats`` times each, and the fastest of each is kept,
    so a busy machine slows both alike. ``threads`` > 0 sets torch's thread count for the
    measurement (the emulations are element-wise torch passes plus small per-row units in
    NumPy, mostly on one core); 0 keeps torch's setting.
    """
    import timm

    torch.manual_seed(0)
    exact = timm.create_model(name, pretrained=False).eval()
    for m in exact.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    approx = copy.deepcopy(exact)
    gnn.patch_model(approx, gelu=True, softmax=True, layernorm=True)
    x = torch.randn(batch, 3, 224, 224)
    saved = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    best = {"exact": math.inf, "emulated": math.inf}
    try:
        with torch.no_grad():
            exact(x)
            approx(x)
            for _ in range(repeats):
                for key, model in (("exact", exact), ("emulated", approx)):
                    t0 = time.perf_counter()
                    model(x)
                    best[key] = min(best[key], time.perf_counter() - t0)
    finally:
        torch.set_num_threads(saved)
    return {
        "model": name,
        "batch": batch,
        "threads": threads or saved,
        "exact_s": best["exact"],
        "emulated_s": best["emulated"],
        "ratio": best["emulated"] / best["exact"],
    }
