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

import copy
import hashlib
import json
import math
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
    ``loss`` (mean cross entropy, nats), ``images`` and ``preds`` (the predicted classes)."""
    model.eval()
    correct = total = 0
    loss = 0.0
    preds = []
    with torch.no_grad():
        for xb, yb in _batches(data, batch_size):
            logits = model(xb.to(device)).float().cpu()
            pred = logits.argmax(dim=-1)
            correct += int((pred == yb).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
            total += len(yb)
            preds.append(pred)
            if progress is not None:
                progress(len(yb))
    if total == 0:
        raise ValueError("no images to evaluate")
    return {
        "top1": 100.0 * correct / total,
        "loss": loss / total,
        "images": total,
        "preds": torch.cat(preds),
    }


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


def _importance(ctx: TableContext) -> dict | None:
    if ctx.train_data is None:
        return None
    if ctx.importance is None:
        x, y = ctx.train_data
        batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x), 64)]
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
        torch.save(model.state_dict(), path)
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


def run_table(
    ctx: TableContext,
    configs: list[Config],
    progress: Progress = _quiet,
    bar: bool = False,
) -> list[dict]:
    """Evaluate every configuration; rows with ``config``, ``top1``, ``loss`` (mean cross
    entropy), ``images``, ``seconds``, the settings and, when ``exact`` is among the rows,
    ``drop`` (top-1 points below ``exact``) and ``agree`` (percent of images whose predicted
    class equals the exact model's: finer than top-1 on a small test set)."""
    rows = []
    exact_top1 = exact_preds = None
    for n, config in enumerate(configs, 1):
        t0 = time.monotonic()
        model = build(ctx, config, progress)
        tick = None
        pbar = None
        if bar:
            from tqdm import tqdm

            total = len(ctx.eval_data[0]) if isinstance(ctx.eval_data, tuple) else None
            pbar = tqdm(total=total, desc=config.name, unit="img", leave=False)
            tick = pbar.update
        try:
            score = evaluate(model, ctx.eval_data, ctx.batch_size, ctx.device, tick)
        finally:
            if pbar is not None:
                pbar.close()
        seconds = time.monotonic() - t0
        top1 = score["top1"]
        if config.name == "exact":
            exact_top1, exact_preds = top1, score["preds"]
        row = {"config": config.name, "group": config.group, "top1": round(top1, 4)}
        row["loss"] = round(score["loss"], 5)
        row["images"] = score["images"]
        row.update(config.describe())
        row["seconds"] = round(seconds, 2)
        row["_preds"] = score["preds"]
        rows.append(row)
        progress(
            f"[{n}/{len(configs)}] {config.name:24s} top-1 {top1:6.2f} %  "
            f"loss {score['loss']:.4f}  ({seconds:.1f} s)"
        )
    for row in rows:
        preds = row.pop("_preds")
        if exact_top1 is not None:
            row["drop"] = round(exact_top1 - row["top1"], 4)
            agree = float((preds == exact_preds).float().mean()) * 100.0
            row["agree"] = round(agree, 4)
    return rows


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
    measurement (the emulations run in NumPy on one core); 0 keeps torch's setting.
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
