"""Multi-modal models: the joint tokens, masking across modalities (per-modality ratios, MultiMAE's Dirichlet split,
modality dropout), modality-specific blocks, padding, the contrastive term, figures and reading a subset."""

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import anymae
from anymae import (
    ConfigError,
    MaskedAutoencoder,
    MultiModalDecoder,
    MultiModalEncoder,
    MultiModalMasker,
    MultiModalTarget,
    MultiModalTokenizer,
    PatchTarget,
    RandomMasker,
    TubeMasker,
    info_nce,
)
from anymae.evaluation import PretrainedEncoder, recall_at
from anymae.testing.tools import fast_dev_run, multimodal_model

from .toys import SeriesTokenizer, VideoTokenizer

ROOT = Path(__file__).resolve().parents[2]


def pair() -> MultiModalTokenizer:
    """A clip (2 x 2 x 2 = 8 tubelets) and a series (8 patches, variable length)."""
    return MultiModalTokenizer({"video": VideoTokenizer(), "series": SeriesTokenizer()})


def batch(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "video/video": torch.randn(b, 1, 4, 8, 8, generator=g),
        "series/series": torch.randn(b, 2, 32, generator=g),
        "label": torch.arange(b),
    }


def model(**overrides) -> MaskedAutoencoder:
    parts = {
        "tokenizer": pair(),
        "masker": MultiModalMasker(),
        "encoder": MultiModalEncoder(embed_dim=24, depth=2, num_heads=2),
        "decoder": MultiModalDecoder(embed_dim=12, depth=1, num_heads=2),
        "target": MultiModalTarget({"video": PatchTarget(), "series": PatchTarget()}),
    }
    return MaskedAutoencoder(**{**parts, **overrides})


def counts(spec, bounds) -> torch.Tensor:
    """[B, M] visible tokens of each modality per sample."""
    hidden = spec.mask
    return torch.stack([(~hidden[:, a:b]).sum(dim=1) for a, b in bounds.values()], dim=1)


def test_joint_tokens_record_each_modality():
    tokens = pair()(batch())
    assert list(tokens.parts) == ["video", "series"] and tokens.segments() == {"video": (0, 8), "series": (8, 16)}
    assert tokens.tokens.shape == (4, 16, 32)  # tubelets of 32 values, series patches of 8 zero-padded to 32
    torch.testing.assert_close(tokens.tokens[:, 8:, :8], tokens.parts["series"].tokens)
    assert not tokens.tokens[:, 8:, 8:].any()
    spec = pair().spec
    assert set(spec.modalities) == {"video", "series"} and "series/inverse" in spec.provides


def test_a_batch_without_a_modality_says_which():
    with pytest.raises(ValueError, match=r"no 'series' entries.*modalities \['video'\]"):
        pair()({"video/video": torch.randn(2, 1, 4, 8, 8)})


def test_per_modality_ratios_are_exact_in_every_sample():
    tokens = pair()(batch(64))
    masker = MultiModalMasker({"video": TubeMasker(mask_ratio=0.75), "series": RandomMasker(mask_ratio=0.5)})
    masker.build(model().ctx)
    spec = masker(tokens, torch.Generator().manual_seed(0))
    assert counts(spec, tokens.segments()).tolist() == [[2, 4]] * 64  # 1 of 4 tubes x 2 and 8 x 0.5
    tubes = ~spec.mask[:, :8].view(64, 2, 4)  # [time, space]: a tube is visible in both frames or neither
    assert torch.equal(tubes[:, 0], tubes[:, 1])


def test_dirichlet_split_has_the_dirichlet_statistics():
    tokens = pair()(batch(4000))
    masker = MultiModalMasker(visible=8, alpha=1.0)
    masker.build(model().ctx)
    spec = masker(tokens, torch.Generator().manual_seed(0))
    share = counts(spec, tokens.segments()).float() / 8
    assert torch.equal(share.sum(dim=1), torch.ones(4000))  # the budget, exactly, in every sample
    # Dirichlet(1, 1): a share is uniform on [0, 1]: mean 1/2, variance 1/12 (plus rounding to 1/8: +1/768)
    assert abs(share[:, 0].mean() - 0.5) < 0.02
    assert abs(share[:, 0].var() - (1 / 12 + 1 / 768)) < 0.01
    few = MultiModalMasker(visible=8, alpha=0.1)
    few.build(model().ctx)
    lopsided = counts(few(tokens, torch.Generator().manual_seed(1)), tokens.segments())
    assert (lopsided.min(dim=1).values == 0).float().mean() > 0.6  # a small alpha keeps mostly one modality


def test_modality_dropout_hides_whole_modalities_never_all():
    tokens = pair()(batch(400))
    masker = MultiModalMasker(drop_modality=0.5)
    masker.build(model().ctx)
    seen = counts(masker(tokens, torch.Generator().manual_seed(0)), tokens.segments())
    assert torch.equal(seen.sum(dim=1), torch.full((400,), 4))  # 2 + 2 visible in every sample
    dropped = seen == 0
    assert not dropped.all(dim=1).any() and 0.2 < dropped.any(dim=1).float().mean() < 0.8


def test_masks_are_reproducible_and_take_given_noise():
    m = model()
    tokens = m.tokenizer(batch())
    first = m.masker(tokens, torch.Generator().manual_seed(3))
    again = m.masker(tokens, torch.Generator().manual_seed(3))
    assert torch.equal(first.ids_keep, again.ids_keep)
    noise = torch.rand(4, 16, generator=torch.Generator().manual_seed(0))
    given = m.masker(tokens, noise=noise)
    for name, (a, b) in tokens.segments().items():  # each modality keeps its lowest noise
        keep = torch.argsort(noise[:, a:b], dim=1)[:, :2]
        visible = ~given.mask[:, a:b]
        assert torch.equal(visible.sum(1), torch.full((4,), 2)) and visible.gather(1, keep).all(), name


def test_one_modality_computes_what_the_vit_encoder_does():
    """A multi-modal encoder over one modality, with ViTEncoder's weights copied and a zero modality embedding, is
    ViTEncoder: masked and with every token."""
    from anymae import BuildContext, ViTEncoder

    tokenizer = VideoTokenizer()
    joint = MultiModalTokenizer({"video": tokenizer})
    vit, encoder = ViTEncoder(24, 2, 2, class_token=False), MultiModalEncoder(24, 2, 0, 2)
    vit.build(BuildContext(tokenizer.spec, vit))
    encoder.build(BuildContext(joint.spec, encoder))
    with torch.no_grad():
        encoder.token_embed["video"].load_state_dict(vit.token_embed.state_dict())
        encoder.blocks.load_state_dict(vit.blocks.state_dict())
        encoder.norm.load_state_dict(vit.norm.state_dict())
        encoder.modality_embed.zero_()
    raw = tokenizer.example_batch(3)
    alone, inside = tokenizer(raw), joint({f"video/{key}": value for key, value in raw.items()})
    spec = RandomMasker(0.75)(alone, torch.Generator().manual_seed(0))
    torch.testing.assert_close(encoder(inside, spec).latent, vit(alone, spec).latent)
    torch.testing.assert_close(encoder(inside).latent, vit(alone).latent)


def test_modality_specific_blocks_see_only_their_tokens():
    m = model(encoder=MultiModalEncoder(embed_dim=24, depth=2, modality_depth=2, num_heads=2)).eval()
    assert len(m.encoder.blocks) == 0 and len(m.encoder.modality_blocks["video"]) == 2
    first, other = batch(), batch()
    other["series/series"] = torch.randn(4, 2, 32)  # another series, the same clip
    with torch.no_grad():
        a, b = m.tokenizer(first), m.tokenizer(other)
        out_a, out_b = m.encoder(a), m.encoder(b)
    # every block is the modality's own (no joint block): the clip's latents ignore the series
    torch.testing.assert_close(out_a.latent[:, :8], out_b.latent[:, :8])
    assert not torch.allclose(out_a.latent[:, 8:], out_b.latent[:, 8:])
    joint = model(encoder=MultiModalEncoder(embed_dim=24, depth=2, modality_depth=1, num_heads=2)).eval()
    with torch.no_grad():
        assert not torch.allclose(joint.encoder(a).latent[:, :8], joint.encoder(b).latent[:, :8])


@pytest.mark.parametrize("joint", [True, False])
def test_no_attention_to_another_modalitys_padding(joint):
    decoder = MultiModalDecoder(embed_dim=12, depth=1, num_heads=2, joint=joint, cross_attention=not joint)
    m = model(decoder=decoder, encoder=MultiModalEncoder(embed_dim=24, depth=2, modality_depth=1, num_heads=2))
    m.eval()
    first = {**batch(), "series/length": torch.tensor([32, 16, 16, 32])}  # samples 1, 2: 4 patches are padding
    second = dict(first)
    series = first["series/series"].clone()
    series[1:3, :, 16:] = 1e3 * torch.randn(2, 2, 16)  # only padding changes
    second["series/series"] = series
    with torch.no_grad():
        tokens = m.tokenizer(first)
        assert tokens.padding_mask is not None and tokens.padding_mask[:, 12:].sum() == 8
        everything = [m.encoder(m.tokenizer(b)) for b in (first, second)]  # every token in, padding included
        real = ~tokens.padding_mask
        torch.testing.assert_close(everything[0].latent[real], everything[1].latent[real])
        outs = [m(b, generator=torch.Generator().manual_seed(0)) for b in (first, second)]
    counted = outs[0].mask.counted
    torch.testing.assert_close(outs[0].pred[counted], outs[1].pred[counted])
    assert not outs[0].mask.ids_keep.ge(12).logical_and(tokens.padding_mask.gather(1, outs[0].mask.ids_keep)).any()


def test_contrastive_term_equals_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    t = 0.05
    na, nb = F.normalize(a, dim=1), F.normalize(b, dim=1)
    by_hand = 0.0
    for i in range(6):  # -log softmax of the true pair, a -> b and b -> a
        ab = torch.tensor([na[i] @ nb[j] / t for j in range(6)])
        ba = torch.tensor([nb[i] @ na[j] / t for j in range(6)])
        by_hand += -(ab[i] - torch.logsumexp(ab, 0)) - (ba[i] - torch.logsumexp(ba, 0))
    torch.testing.assert_close(info_nce(a, b, t), torch.tensor(by_hand / 12))
    keep = torch.tensor([True, False, True, True, False, True])
    torch.testing.assert_close(info_nce(a, b, t, keep), info_nce(a[keep], b[keep], t))
    # centred: a common part of every feature (an untrained MAE's pooled features) no longer hides the pairs
    common = 50 * torch.randn(1, 5, generator=g)
    assert abs(float(info_nce(a + common, b + common, t)) - math.log(6)) < 0.05
    torch.testing.assert_close(
        info_nce(a + common, b + common, t, center=True), info_nce(a - a.mean(0), b - b.mean(0), t)
    )


def test_loss_is_each_modalitys_mean_weighted_and_logged_by_name():
    m = model(target=MultiModalTarget({"video": PatchTarget(), "series": PatchTarget()}, {"series": 0.5}, 0.01))
    out = m(batch(), generator=torch.Generator().manual_seed(0))
    assert set(out.terms) == {"video", "series", "contrastive"}
    expected = out.terms["video"] + 0.5 * out.terms["series"] + 0.01 * out.terms["contrastive"]
    torch.testing.assert_close(out.loss, expected)
    # each modality's term is its own target's loss on its hidden tokens, as in a model of that modality alone
    which = out.mask.ids_decode >= 8
    video = PatchTarget()
    video.build(anymae.BuildContext(m.tokenizer.spec.modalities["video"], m.encoder))
    values = video.normalized(out.tokens.parts["video"].tokens)
    ids = out.mask.ids_decode
    own = [(out.pred[i, ~which[i]] - values[i, ids[i, ~which[i]]]).pow(2).mean() for i in range(4)]
    torch.testing.assert_close(out.terms["video"], torch.stack(own).mean())
    assert out.terms["contrastive"] > 0


def test_trains_draws_every_modality_and_reads_subsets(tmp_path):
    from anymae import ModalityFigures, PeriodicFigure

    drawn = {}

    class Record(PeriodicFigure):
        folder, label, drawings = "r", "r", {anymae.RAW_VALUES: frozenset({anymae.INVERSE})}

        def draw(self, module, batch, generator, path):
            drawn[path.parent.name] = module.reconstruct(batch, generator=generator)
            return path

    m = model(target=MultiModalTarget({"video": PatchTarget(), "series": PatchTarget()}, contrastive_weight=0.01))
    with pytest.raises(ConfigError, match=r"VideoTokenizer does not provide.*modality 'video' of ModalityFigures"):
        ModalityFigures({"video": Record(0, 2, 0)}).check(m)  # the toy clip tokenizer has no inverse
    figures = ModalityFigures({"series": Record(0, 2, 0)}, every_n_epochs=0)
    figures.check(m)
    m.eval()
    path = figures.draw(m, batch(), torch.Generator().manual_seed(0), tmp_path / "final.png")
    assert path == tmp_path and set(drawn) == {"series"} and drawn["series"]["input"].shape == (4, 2, 32)
    seen = drawn["series"]["hidden"] == 0  # the visible patches come back as they were
    assert seen.any() and not seen.all()
    torch.testing.assert_close(drawn["series"]["reconstruction"][seen], drawn["series"]["input"][seen])
    m.train()
    fast_dev_run(m, [batch()])
    encoder = PretrainedEncoder(m.tokenizer, m.encoder)
    both = encoder(batch()).pooled
    encoder.use_modalities(["series"])
    series_only = encoder(batch())
    assert series_only.tokens.shape[1] == 8 and not torch.allclose(series_only.pooled, both)
    with pytest.raises(ConfigError, match=r"cannot use modalities \['audio'\]"):
        encoder.use_modalities(["audio"])


def test_wrong_pairings_fail_at_build_naming_the_part():
    from .toys import SeriesTokenizer as One

    with pytest.raises(ConfigError, match="MultiModalEncoder needs a multi-modal tokenizer"):
        model(tokenizer=One())
    with pytest.raises(ConfigError, match=r"targets for \['video'\] but the tokenizer's modalities"):
        model(target=MultiModalTarget({"video": PatchTarget()}))
    with pytest.raises(ConfigError, match=r"MultiModalMasker.maskers names \['audio'\]"):
        model(masker=MultiModalMasker({"audio": RandomMasker()}))
    with pytest.raises(ConfigError, match=r"the maskers of \['video'\] learn from each step's loss"):
        model(masker=MultiModalMasker({"video": anymae.AdaptiveMasker(mask_ratio=0.5, num_heads=2)}))
    with pytest.raises(ConfigError, match="modality names must be non-empty and hold no '/'"):
        MultiModalTokenizer({"a/b": SeriesTokenizer()})


def test_the_config_roundtrips_through_yaml():
    from anymae.testing.tools import config_roundtrip

    for part in (pair(), MultiModalMasker(visible=6, alpha=0.5), MultiModalTarget({"v": PatchTarget()})):
        config_roundtrip(part, type(part).__mro__[1])


def test_recall_at_k_counts_ties_against_the_query():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g)
    assert recall_at(x, x, (1,))[1] == 1.0
    shuffled = recall_at(x, x[torch.randperm(50, generator=g)], (1, 50))
    assert shuffled[50] == 1.0 and shuffled[1] < 0.2
    same = torch.ones(10, 4)  # every candidate ties: no query ranks its partner first
    assert recall_at(same, same, (1, 10)) == {1: 0.0, 10: 1.0}


def test_the_template_dna_tokenizer_joins_images_unchanged():
    """A third-party tokenizer (the plugin template's) and the image plugin's, in one model."""
    pytest.importorskip("anymae_image")
    sys.path.insert(0, str(ROOT / "plugins" / "_template" / "src"))
    try:
        from anymae_dna.targets import BaseClassTarget
        from anymae_dna.tokenizers import DNAKmerTokenizer
    finally:
        sys.path.pop(0)
    from anymae_image import ImagePatchTokenizer

    dna, image = DNAKmerTokenizer(length=32, k=4), ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=1)
    m = multimodal_model({"dna": dna, "image": image}, {"dna": BaseClassTarget()})
    joint = {**{f"dna/{k}": v for k, v in dna.example_batch(4).items()}}
    joint.update({f"image/{k}": v for k, v in image.example_batch(4).items()})
    out = m(joint, generator=torch.Generator().manual_seed(0))
    assert set(out.terms) == {"dna", "image", "contrastive"} and math.isfinite(float(out.loss))
    fast_dev_run(m, [joint])
