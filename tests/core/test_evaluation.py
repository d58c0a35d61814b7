"""Evaluation protocols, few-label sampling, the pretrained encoder as a module, export and position tables."""

import csv

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import anymae
from anymae.cli import main
from anymae.cli.evaluate import run_protocol
from anymae.evaluation import (
    EncoderSource,
    FewLabels,
    FineTune,
    KNNClassifier,
    LinearProbe,
    few_label_indices,
    knn_predict,
    load_encoder,
)

from .toys import LabelledSeries, SeriesData, quiet_trainer, series_model, sinusoids


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A briefly pretrained series MAE."""
    root = tmp_path_factory.mktemp("pretrain")
    torch.manual_seed(0)
    trainer = quiet_trainer(max_epochs=2, enable_checkpointing=True, default_root_dir=root)
    trainer.fit(series_model(), SeriesData(n=64))
    return trainer.checkpoint_callback.best_model_path


LABELLED = {"class_path": "tests.core.toys.LabelledSeries", "init_args": {"n": 300}}


def protocol_args(checkpoint, data=LABELLED, **model):
    import json

    args = [
        "--model.encoder.checkpoint",
        str(checkpoint),
        "--model.num_outputs",
        "3",
        "--data",
        json.dumps(data),
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.enable_checkpointing",
        "false",
    ]
    for key, value in model.items():
        args += [f"--{key}", str(value)]
    return args


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=6), n=st.integers(1, 3), seed=st.integers(0, 99))
def test_few_label_sampler_draws_exactly_n_per_class(counts, n, seed):
    labels = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])[torch.randperm(sum(counts))]
    picked = few_label_indices(labels, n, seed)
    assert torch.equal(torch.bincount(labels[picked], minlength=len(counts)), torch.full((len(counts),), n))
    assert len(picked.unique()) == len(picked)
    assert torch.equal(picked, few_label_indices(labels, n, seed))


def test_few_label_sampler_refuses_too_few():
    with pytest.raises(ValueError, match=r"classes \[1\] have fewer than 5"):
        few_label_indices(torch.tensor([0] * 6 + [1] * 2), 5, 0)


def test_too_few_examples_of_a_class_is_one_line_naming_the_classes():
    data = LabelledSeries(n=30)  # 10 of each class
    data.classes = ["slow", "medium", "fast"]
    with pytest.raises(
        anymae.ConfigError, match=r"^data.labels_per_class: 12 .* fewer of 'slow' \(10\), 'medium' \(10\)"
    ):
        FewLabels(data, labels_per_class=12).setup("fit")


def test_fewlabels_wraps_any_labelled_datamodule():
    data = FewLabels(LabelledSeries(n=90, batch_size=8), labels_per_class=4, seed=3)
    data.setup("fit")
    labels = torch.cat([batch["label"] for batch in data.train_dataloader()])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(data.val_dataloader().dataset) == 30


def test_knn_weighted_votes():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    scores = knn_predict(torch.tensor([[1.0, 0.05]]), bank, torch.tensor([0, 0, 1]), 3, 0.07, "classification", 2)
    assert scores.argmax().item() == 0 and scores[0, 1] > 0  # all three vote, the nearest weigh most
    values = knn_predict(
        torch.tensor([[0.0, 1.0]]), bank, torch.tensor([[1.0], [1.0], [5.0]]), 1, 0.07, "regression", 1
    )
    assert values.item() == pytest.approx(5.0)


@pytest.mark.parametrize("protocol", ["knn", "probe"])
def test_probe_and_knn_reach_high_accuracy_on_a_separable_set(checkpoint, protocol):
    extra = {"trainer.max_epochs": 20, "model.optimizer": "torch.optim.AdamW", "model.optimizer.lr": 0.01}
    row = run_protocol(protocol, protocol_args(checkpoint, **(extra if protocol == "probe" else {})))
    assert row["metric"] == "val/acc" and row["value"] >= 0.9, row
    assert row["init"] == "pretrained" and row["labels_per_class"] == "all"


def test_finetune_with_few_labels_and_a_regression_probe(checkpoint, tmp_path):
    few = {
        "class_path": "anymae.evaluation.FewLabels",
        "init_args": {"data": LABELLED, "labels_per_class": 10, "seed": 1},
    }
    row = run_protocol("finetune", protocol_args(checkpoint, few, **{"trainer.max_epochs": 3}))
    assert row["labels_per_class"] == 10 and row["seed"] == 1 and 0 <= row["value"] <= 1
    regression = protocol_args(
        checkpoint, **{"model.task": "regression", "model.num_outputs": 1, "trainer.max_epochs": 2}
    )
    regression[regression.index("--model.num_outputs") + 1] = "1"
    row = run_protocol("probe", regression)
    assert row["metric"] == "val/mse" and row["value"] >= 0


def test_cli_rows_and_random_init_comparison(checkpoint, tmp_path, capsys):
    results = tmp_path / "rows.csv"
    assert main(["knn", "--compare-random", "--results", str(results), *protocol_args(checkpoint)]) == 0
    rows = list(csv.DictReader(results.open()))
    assert [r["init"] for r in rows] == ["pretrained", "random"]
    assert {r["protocol"] for r in rows} == {"knn"} and all(r["data"] == "LabelledSeries" for r in rows)
    assert "pretrained" in capsys.readouterr().out.splitlines()[-1]


def test_random_init_has_the_shapes_not_the_weights(checkpoint):
    pretrained, fresh = load_encoder(checkpoint), load_encoder(checkpoint, random_init=True)
    same = load_encoder(checkpoint, random_init=True)
    states = (pretrained.state_dict().items(), fresh.state_dict().values(), same.state_dict().values())
    for (name, a), b, c in zip(*states, strict=True):
        assert a.shape == b.shape and torch.equal(b, c), name
    assert not torch.equal(pretrained.encoder.token_embed.weight, fresh.encoder.token_embed.weight)


def test_encoder_module_features_and_export_roundtrip(checkpoint, tmp_path):
    encoder = load_encoder(checkpoint)
    batch = {"series": sinusoids(3)}
    out = encoder(batch)
    assert out.tokens.shape == (3, 1 + 8, 32) and torch.equal(out.pooled, out.tokens[:, 0])  # class token
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "exported")]) == 0
    again = load_encoder(tmp_path / "exported")
    assert torch.equal(again(batch).tokens, out.tokens)
    mean = load_encoder(checkpoint, pool="mean")(batch).pooled
    torch.testing.assert_close(mean, out.tokens[:, 1:].mean(dim=1))


def test_finetune_layer_decay_drop_path_and_learnable_positions(checkpoint):
    model = FineTune(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3, layer_decay=0.5, drop_path=0.2)
    scales = {}
    for group in model.param_groups():
        for param in group["params"]:
            scales[id(param)] = group["lr_scale"]
    encoder = model.backbone.encoder
    depth = encoder.num_layers  # 2: scales 0.5^3 (embeddings), 0.5^2, 0.5^1 (blocks), 1 (head)
    assert scales[id(encoder.token_embed.weight)] == 0.5 ** (depth + 1)
    assert scales[id(encoder.blocks[-1].attn.qkv.weight)] == 0.5
    assert scales[id(model.head.weight)] == 1.0
    assert isinstance(encoder.pos_embed, anymae.LearnedPositionEmbedding) and encoder.pos_embed.table.requires_grad
    assert encoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)
    assert isinstance(encoder.norm, torch.nn.Identity)  # MAE's global pool: the LayerNorm moves after pooling


def test_linear_probe_is_maes_head_on_a_frozen_encoder(checkpoint):
    probe = LinearProbe(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3)
    bn, _ = probe.head
    assert isinstance(bn, torch.nn.BatchNorm1d) and not bn.affine
    assert not any(p.requires_grad for p in probe.backbone.parameters())
    probe.train()
    assert not probe.backbone.training
    knn = KNNClassifier(EncoderSource(checkpoint=str(checkpoint), random_init=True), num_outputs=3)
    assert knn.k == 20 and knn.temperature == 0.07
    plain = LinearProbe(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3, batch_norm=False)
    features = torch.randn(5, plain.backbone.embed_dim) * 7
    norm, linear = plain.head
    assert isinstance(norm, torch.nn.Identity)
    torch.testing.assert_close(plain.head(features), linear(features))  # the raw features, their scale kept


def test_learned_positions_interpolate_to_another_grid():
    small = anymae.LearnedPositionEmbedding()
    small.build(16, anymae.LayoutSpec("grid", 2, (4, 4)))
    large = anymae.LearnedPositionEmbedding()
    large.build(16, anymae.LayoutSpec("grid", 2, (8, 8)))
    large.load_state_dict(small.state_dict())  # a table saved for 4x4 loads into an 8x8 model
    assert large.table.shape == (64, 16) and tuple(large.grid.tolist()) == (8, 8)
    back = anymae.model.position.resample_grid_table(large.table.detach(), (8, 8), (4, 4))
    assert torch.nn.functional.cosine_similarity(back, small.table.detach()).mean() > 0.95
    tokens = anymae.TokenBatch(torch.zeros(1, 36, 1), anymae.GridLayout((6, 6)))
    assert small(tokens, torch.arange(36)[None]).shape == (1, 36, 16)  # another grid at run time


def test_finetune_trains_the_encoder_in_train_mode(checkpoint):
    model = FineTune(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3, drop_path=0.2)
    assert model.backbone.training and model.backbone.encoder.blocks[-1].drop_path1.training


def test_layer_decay_scales_the_whole_schedule_min_lr_included():
    """MAE's adjust_learning_rate: lr_scale multiplies the scheduled lr, so a deep group ends at min_lr * scale."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD(
        [{"params": [params[0]], "lr_scale": 1.0}, {"params": [params[1]], "lr_scale": 1e-4}], lr=1.0
    )
    for group in optimizer.param_groups:
        group["lr"] *= group["lr_scale"]
    scheduler = anymae.WarmupCosine(warmup_steps=2, min_lr=0.1).scheduler(
        optimizer, total_steps=10, steps_per_epoch=None
    )
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append([g["lr"] for g in optimizer.param_groups])
    assert lrs[-1][0] == pytest.approx(0.1) and lrs[-1][1] == pytest.approx(0.1 * 1e-4)
    assert lrs[4][1] < lrs[2][1]  # the deep group decays too


def test_finetune_exempts_the_learned_position_table_from_weight_decay(checkpoint):
    model = FineTune(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3)
    table = model.backbone.encoder.pos_embed.table
    group = next(g for g in model.param_groups() if any(p is table for p in g["params"]))
    assert group.get("weight_decay") == 0.0


def test_knn_bank_holds_every_few_label_example(checkpoint):
    data = FewLabels(LabelledSeries(n=90, batch_size=2), labels_per_class=1, seed=0)  # 3 examples, batches of 2
    data.setup("fit")
    knn = KNNClassifier(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3)
    trainer = quiet_trainer()
    trainer.validate(knn, data, verbose=False)
    assert sorted(knn.bank_targets.tolist()) == [0, 1, 2]


def test_soft_labels_train_a_head(checkpoint):
    probe = LinearProbe(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3)
    batch = {"series": sinusoids(4), "label": torch.softmax(torch.randn(4, 3), dim=-1)}  # MixUp-style targets
    loss = probe.training_step(batch, 0)
    assert torch.isfinite(loss)


def few(labels_per_class, seed=0, n=300):
    return {
        "class_path": "anymae.evaluation.FewLabels",
        "init_args": {"data": {**LABELLED, "init_args": {"n": n}}, "labels_per_class": labels_per_class, "seed": seed},
    }


def test_data_sets_are_named_by_what_they_read():
    from anymae.evaluation.data import data_set_name

    class Folder:
        root = "/data/cells/train"

    class Files:
        path = "series/*.parquet"

    class Named:
        name = "GunPoint"
        root = "/ignored"

    assert [data_set_name(d) for d in (Folder(), Files(), Named())] == [
        "/data/cells/train",
        "series/*.parquet",
        "GunPoint",
    ]
    assert data_set_name(LabelledSeries()) == "LabelledSeries"  # nothing better: the class
    assert FewLabels(LabelledSeries(), labels_per_class=1).name == "LabelledSeries"


def test_seeds_give_mean_and_spread_and_rows_per_seed(checkpoint, tmp_path, capsys):
    results = tmp_path / "rows.csv"
    args = ["knn", "--compare-random", "--seeds", "0", "1", "2", "--results", str(results)]
    assert main([*args, *protocol_args(checkpoint, few(2))]) == 0
    rows = list(csv.DictReader(results.open()))
    assert [(r["seed"], r["init"]) for r in rows] == [(str(s), i) for s in range(3) for i in ("pretrained", "random")]
    values = {i: [float(r["value"]) for r in rows if r["init"] == i] for i in ("pretrained", "random")}
    last = capsys.readouterr().out.splitlines()[-1]
    import statistics

    expected = f"pretrained {statistics.mean(values['pretrained']):.4f} ± {statistics.stdev(values['pretrained']):.4f}"
    assert "mean ± std over seeds 0 1 2" in last and expected in last and "random init" in last


def test_warnings_when_every_seed_is_the_same_or_k_exceeds_the_bank(checkpoint):
    # 300 series of 3 classes: 100 labels per class take the whole split; k = 20 > the 3 x 2 = 6 examples of a bank
    with pytest.warns(UserWarning, match="takes the whole labelled training split"):
        run_protocol("knn", protocol_args(checkpoint, few(100)))
    with pytest.warns(UserWarning, match=r"k = 20 is larger than the label bank \(6 labelled examples\)"):
        run_protocol("knn", protocol_args(checkpoint, few(2)))


def test_carved_validation_scores_the_undrawn_training_examples_never_the_validation_split(checkpoint):
    data = FewLabels(LabelledSeries(n=90, batch_size=8), labels_per_class=2, seed=3, carve_validation=True)
    data.setup("fit")
    drawn = set(data.train_subset.indices)
    carved = data.val_dataloader().dataset
    assert len(drawn) == 6 and set(carved.indices) == set(range(90)) - drawn  # the rest of the training split
    assert carved.dataset is data.data.train  # not the validation split
    assert data.name == "LabelledSeries/carved"  # rows never mix with the scored split's
    knn = KNNClassifier(EncoderSource(checkpoint=str(checkpoint)), num_outputs=3, k=3)
    trainer = quiet_trainer()
    trainer.validate(knn, data, verbose=False)
    assert len(knn.bank_targets) == 6
    assert knn.bank_targets.tolist() == data.data.train.labels[sorted(drawn)].tolist()
    with pytest.raises(anymae.ConfigError, match="needs labels_per_class"):
        FewLabels(LabelledSeries(n=90), carve_validation=True)
    with pytest.raises(anymae.ConfigError, match="nothing is left to validate on"):
        FewLabels(LabelledSeries(n=90), labels_per_class=30, carve_validation=True).setup("fit")


def test_the_last_blocks_averaged_as_a_read_out(checkpoint):
    one, two = load_encoder(checkpoint), load_encoder(checkpoint, layers=2, pool="mean")
    batch = {"series": sinusoids(4)}
    with torch.no_grad():
        tokens = two.tokenizer(batch)
        hidden = two.encoder(tokens, layers=True).layers
        norm = two.encoder.norm
        expected = ((norm(hidden[-1]) + norm(hidden[-2])) / 2)[:, two.encoder.num_prefix_tokens :].mean(dim=1)
        torch.testing.assert_close(two(batch).pooled, expected)
        torch.testing.assert_close(one(batch).tokens, norm(hidden[-1]))  # layers=1 is the encoder's output
    blocks = two.encoder.num_layers
    with pytest.raises(anymae.ConfigError, match=f"has {blocks} blocks to average"):
        load_encoder(checkpoint, layers=blocks + 1)
    row = run_protocol("knn", protocol_args(checkpoint, **{"model.layers": 2}))
    assert row["value"] >= 0.8, row  # the separable set (chance: 0.33) stays separable under the averaged read-out


def test_max_pooling_takes_the_largest_feature_of_the_real_tokens(checkpoint):
    encoder = load_encoder(checkpoint, pool="max")
    prefix = encoder.encoder.num_prefix_tokens
    features = torch.randn(2, prefix + 4, 3)
    padding = torch.tensor([[False, False, True, True], [False] * 4])
    features[0, prefix + 2 :] = 100.0  # padding never wins
    pooled = encoder.pooled(features, padding)
    torch.testing.assert_close(pooled[0], features[0, prefix : prefix + 2].amax(dim=0))
    torch.testing.assert_close(pooled[1], features[1, prefix:].amax(dim=0))
