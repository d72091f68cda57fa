"""hwtorch.accuracy and `python -m hwgen accuracy`: the pipeline on small, fast stand-ins.

The full table (the 150-epoch digits DeiT, every configuration) is `make accuracy`; here a
2-epoch model checks training determinism, caching, the table's rows and the real-model path
on an image folder and a checkpoint written by the test itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import cli
from hwtorch import accuracy, nn

TINY = accuracy.DigitsConfig(embed_dim=16, depth=1, num_heads=2, epochs=2, batch_size=128)


def test_digits_split_is_stratified_and_disjoint():
    (x_tr, y_tr), (x_te, y_te) = accuracy.digits_data()
    assert x_tr.shape == (1347, 1, 8, 8) and x_te.shape == (450, 1, 8, 8)
    assert float(x_tr.min()) == 0.0 and float(x_tr.max()) == 1.0
    counts = np.bincount(y_te.numpy(), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # ~45 of each class
    train_rows = {tuple(r) for r in x_tr.reshape(len(x_tr), -1).numpy().tolist()}
    overlap = sum(tuple(r) in train_rows for r in x_te.reshape(len(x_te), -1).numpy().tolist())
    assert overlap <= 2  # the data set itself has a couple of duplicate images, no more


def test_shift_augmentation_moves_each_image_by_its_own_offset():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 3:5, 3:5] = 1.0  # a centred blob survives any one-pixel move whole
    y = accuracy._shifted(x, 1, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))
    offsets = {tuple((torch.nonzero(img[0])[0] - 3).tolist()) for img in y}
    assert offsets == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def test_training_is_deterministic_and_cached(tmp_path):
    first = accuracy.load_or_train_digits(TINY, tmp_path)
    assert not first.cached and first.path.exists() and first.train_seconds > 0
    again = accuracy.train_digits(TINY)
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    cached = accuracy.load_or_train_digits(TINY, tmp_path)
    assert cached.cached and cached.train_seconds == pytest.approx(first.train_seconds)
    x = accuracy.digits_data()[1][0][:5]
    with torch.no_grad():
        assert torch.equal(cached.model(x), first.model(x))


def test_standard_configs_cover_the_issue_rows():
    names = [c.name for c in accuracy.standard_configs()]
    required = ["exact", "gelu", "softmax", "layernorm", "peano-all", "w-fixp4", "w-posit4"]
    required += ["w-fixp4+peano", "w-posit4+peano", "w-mixed-0.1", "w-mixed-0.25+peano"]
    required += ["w-mixed-0.5-qat+peano", "gelu-s4", "gelu-s64", "softmax-pade11"]
    required += ["layernorm-nt0"]
    assert all(n in names for n in required) and len(set(names)) == len(names)
    with pytest.raises(ValueError, match=r"unknown accuracy configuration 'fp8'; known: "):
        accuracy.select(accuracy.standard_configs(), ["exact", "fp8"])


@pytest.fixture(scope="module")
def tiny_context(tmp_path_factory):
    cache = tmp_path_factory.mktemp("acc")
    trained = accuracy.load_or_train_digits(TINY, cache)
    train, test = accuracy.digits_data()
    return accuracy.TableContext(
        model=trained.model,
        eval_data=(test[0][:96], test[1][:96]),
        train_data=(train[0][:256], train[1][:256]),
        cfg=TINY,
        cache_dir=cache,
    )


def test_table_rows_match_independent_evaluation(tiny_context, monkeypatch):
    monkeypatch.setattr(accuracy, "QAT_EPOCHS", 1)
    configs = accuracy.select(
        accuracy.standard_configs(),
        ["exact", "peano-all", "w-fixp4", "w-mixed-0.25-qat+peano"],
    )
    rows = accuracy.run_table(tiny_context, configs)
    assert [r["config"] for r in rows] == [c.name for c in configs]
    x, y = tiny_context.eval_data
    with torch.no_grad():
        logits = tiny_context.model(x)
        exact = 100.0 * float((logits.argmax(-1) == y).float().mean())
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        model = accuracy.build(tiny_context, configs[1])
        peano_pred = model(x).argmax(-1)
        peano = 100.0 * float((peano_pred == y).float().mean())
        agree = 100.0 * float((peano_pred == logits.argmax(-1)).float().mean())
    assert rows[0]["loss"] == pytest.approx(loss, abs=1e-4) and rows[0]["agree"] == 100.0
    assert rows[1]["agree"] == pytest.approx(agree, abs=1e-3)
    assert rows[0]["top1"] == pytest.approx(exact, abs=1e-3) and rows[0]["drop"] == 0
    assert rows[1]["top1"] == pytest.approx(peano, abs=1e-3)
    assert rows[1]["drop"] == pytest.approx(exact - peano, abs=2e-3)
    assert rows[2]["weights"] == "fixp4" and rows[3]["qat"] and rows[3]["budget"] == 0.25
    assert all(r["images"] == 96 for r in rows)
    # the QAT model carries QuantLinears, and the row runs them on the MAC as MacLinears
    qat = accuracy.build(tiny_context, configs[3])
    assert isinstance(qat.blocks[0].mlp.fc1, nn.MacLinear)
    table = accuracy.format_table(rows)
    assert "| w-mixed-0.25-qat+peano | weights-qat |" in table and "mixed 0.25 (QAT)" in table
    # a second run gives the same numbers (the QAT model now comes from the cache)
    tiny_context.qat_models.clear()
    again = accuracy.run_table(tiny_context, configs)
    assert [r["top1"] for r in again] == [r["top1"] for r in rows]


# -- real models: checkpoint and image folder written here --------------------------------------


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    for c in ("n0001", "n0002", "n0003"):
        (root / c).mkdir()
        for i in range(2):
            pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import timm

    torch.manual_seed(1)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=3)
    path = tmp_path_factory.mktemp("ckpt") / "deit_tiny_3.pth"
    torch.save({"model": model.state_dict(), "epoch": 7}, path)
    return path


def test_cli_accuracy_on_an_image_folder(image_folder, checkpoint, tmp_path, capsys):
    argv = ["accuracy", "--model", "deit_tiny_patch16_224", "--checkpoint", str(checkpoint)]
    argv += ["--data", str(image_folder), "--num-classes", "3", "--batch-size", "4"]
    argv += ["--configs", "exact,peano-all", "--out-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    rows = json.loads((tmp_path / "accuracy_deit_tiny_patch16_224.json").read_text())
    assert [r["config"] for r in rows] == ["exact", "peano-all"]
    # the exact row against an independent evaluation: plain torch, torchvision's ImageFolder
    import timm.data
    from torchvision.datasets import ImageFolder

    model = accuracy.timm_model("deit_tiny_patch16_224", checkpoint, num_classes=3)
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    data = ImageFolder(str(image_folder), transform=tf)
    with torch.no_grad():
        correct = sum(int(model(img[None]).argmax()) == label for img, label in data)
    assert (
        rows[0]["top1"] == pytest.approx(100.0 * correct / 6, abs=1e-3) and rows[0]["images"] == 6
    )
    assert "| peano-all |" in (tmp_path / "accuracy_deit_tiny_patch16_224.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--checkpoint", "missing.pth"], r"checkpoint 'missing.pth' does not exist"),
        (["--num-classes", "5"], r"does not fit deit_tiny_patch16_224: shape of 'head.weight'"),
        (["--data", "NOFOLDER"], r"image folder 'NOFOLDER' does not exist"),
        (["--model", "deit_huge_nonsense"], r"unknown timm model 'deit_huge_nonsense'"),
        (["--configs", "exact,w-int8"], r"unknown accuracy configuration 'w-int8'"),
    ],
)
def test_cli_accuracy_errors(image_folder, checkpoint, tmp_path, capsys, extra, message):
    args = {"--model": "deit_tiny_patch16_224", "--checkpoint": str(checkpoint)}
    args.update({"--data": str(image_folder), "--num-classes": "3", "--configs": "exact"})
    args.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    argv = ["accuracy", "--out-dir", str(tmp_path)] + [t for kv in args.items() for t in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("hwgen: error: ")
    assert pytest.importorskip("re").search(message, err), err


def test_not_a_checkpoint_and_not_an_image_folder(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a zip or a pickle")
    with pytest.raises(ValueError, match=r"is not a readable torch checkpoint"):
        accuracy.timm_model("deit_tiny_patch16_224", junk)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    model = accuracy.timm_model("deit_tiny_patch16_224")
    with pytest.raises(ValueError, match=r"is not an image folder: it needs one sub-folder"):
        accuracy.imagefolder_data(tmp_path / "flat", model)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"class folders hold no images"):
        accuracy.imagefolder_data(tmp_path / "empty", model)
    torch.save({"state_dict": {"weight": torch.zeros(3)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"does not fit deit_tiny_patch16_224: \d+ missing"):
        accuracy.timm_model("deit_tiny_patch16_224", tmp_path / "other.pth")


# -- shards: torchrun processes and separate jobs ------------------------------------------------


def test_shards_take_whole_batches_and_cover_every_image_once():
    for n, batch, count in [(10, 3, 1), (10, 3, 2), (10, 3, 4), (96, 32, 3), (5, 8, 3)]:
        parts = [accuracy.Shard(i, count).indices(n, batch) for i in range(count)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        for i, p in enumerate(parts):  # batch b goes to shard b % count
            assert all((k // batch) % count == i for k in p)
    assert accuracy.Shard.parse("1/4") == accuracy.Shard(1, 4)
    with pytest.raises(ValueError, match=r"--shard must be I/N, e.g. 0/4 .*, not '2'"):
        accuracy.Shard.parse("2")
    with pytest.raises(ValueError, match=r"shard index must be 0 to 3 for 4 shards, not 4"):
        accuracy.Shard.parse("4/4")
    with pytest.raises(ValueError, match=r"shard count must be at least 1, not 0"):
        accuracy.Shard(0, 0)


def test_sharded_scores_merge_to_the_single_process_table(tiny_context):
    """Three shards of the digits table, merged: the same rows and the same prediction,
    label and loss of every image as one process."""
    configs = accuracy.select(accuracy.standard_configs(), ["exact", "peano-all", "w-mixed-0.25"])
    tiny_context.batch_size = 32  # 96 images: one batch per shard
    tiny_context.shard = None
    whole = accuracy.score_table(tiny_context, configs)
    parts = []
    for i in (2, 0, 1):  # any order
        tiny_context.shard = accuracy.Shard(i, 3)
        parts.append(json.loads(json.dumps(accuracy.score_table(tiny_context, configs))))
    tiny_context.shard = None
    one, three = accuracy.merged_scores([whole]), accuracy.merged_scores(parts)
    for name in one:
        for key in ("pred", "label", "loss"):
            assert torch.equal(one[name][key], three[name][key]), (name, key)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(accuracy.merge_parts(parts)) == strip(accuracy.merge_parts([whole]))
    assert strip(accuracy.run_table(tiny_context, configs)) == strip(accuracy.merge_parts(parts))
    with pytest.raises(ValueError, match=r"shards 1/3 are missing; merge all 3"):
        accuracy.merge_parts([parts[0], parts[1]])
    with pytest.raises(ValueError, match=r"each shard must appear once, of one count"):
        accuracy.merge_parts([parts[0], parts[0], parts[1], parts[2]])
    with pytest.raises(ValueError, match=r"the shards come from different runs: their images"):
        accuracy.merge_parts([{**parts[0], "images": 95}, *parts[1:]])


@pytest.fixture(scope="module")
def test_vit_checkpoint(tmp_path_factory):
    import timm

    torch.manual_seed(2)
    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    path = tmp_path_factory.mktemp("ckpt") / "test_vit_3.pth"
    torch.save(model.state_dict(), path)
    return path


def test_torchrun_and_shard_jobs_equal_one_process(image_folder, test_vit_checkpoint, tmp_path):
    """`torchrun --nproc-per-node 2` (gloo, CPU) and two `--shard I/2` jobs merged give the
    single-process table: same top-1, loss, agreement; the shard files the same per-image
    predictions."""
    import os
    import subprocess
    import sys

    argv = ["accuracy", "--model", "test_vit", "--checkpoint", str(test_vit_checkpoint)]
    argv += ["--data", str(image_folder), "--num-classes", "3", "--batch-size", "2"]
    argv += ["--configs", "exact,gelu"]
    stem = "accuracy_test_vit"

    def rows(folder):
        text = (folder / f"{stem}.json").read_text()
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(text)]

    assert cli.main([*argv, "--out-dir", str(tmp_path / "one")]) == 0
    assert cli.main([*argv, "--shard", "0/1", "--out-dir", str(tmp_path / "one")]) == 0
    for i in (0, 1):
        assert cli.main([*argv, "--shard", f"{i}/2", "--out-dir", str(tmp_path / "jobs")]) == 0
    shards = sorted(str(p) for p in (tmp_path / "jobs").glob(f"{stem}.shard-*-of-2.json"))
    assert len(shards) == 2
    assert cli.main(["accuracy-merge", *shards, "--out-dir", str(tmp_path / "merged")]) == 0
    assert rows(tmp_path / "merged") == rows(tmp_path / "one")
    one = accuracy.merged_scores(
        [json.loads((tmp_path / "one" / f"{stem}.shard-0-of-1.json").read_text())]
    )
    two = accuracy.merged_scores([json.loads(Path(p).read_text()) for p in shards])
    assert all(torch.equal(one[c]["pred"], two[c]["pred"]) for c in ("exact", "gelu"))

    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += ["--nproc-per-node", "2", "-m", "hwgen", *argv, "--out-dir", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(tmp_path / "two") == rows(tmp_path / "one")
    assert "2 processes: rank r scores batches r, r + 2, r + 4, ..." in done.stdout
