"""Spectrogram patches (plain, overlapping, variable length), the audio components against the core's contracts, and
spectrogram figures."""

import pytest
import torch

import anymae
from anymae.testing import DataModuleContract, TokenizerContract
from anymae_audio import SpectrogramFigure, SpectrogramPatchTokenizer, SynthSoundsDataModule, save_spectrograms


class TestSpectrogramPatchTokenizer(TokenizerContract):
    component_class = SpectrogramPatchTokenizer
    init_args = {"target_length": 64, "num_mel_bins": 32, "patch_size": 16}


class TestOverlappingSpectrogramPatches(TokenizerContract):
    component_class = SpectrogramPatchTokenizer
    init_args = {"target_length": 66, "num_mel_bins": 36, "patch_size": 16, "stride": 10}


class TestSynthSoundsDataModule(DataModuleContract):
    component_class = SynthSoundsDataModule
    init_args = {"per_class": 4, "num_mel_bins": 32, "target_length": 64, "batch_size": 8}

    def make_tokenizer(self):
        return SpectrogramPatchTokenizer(target_length=64, num_mel_bins=32, patch_size=16)


def test_audio_mae_grids_and_token_order():
    assert SpectrogramPatchTokenizer().layout.shape == (64, 8)  # AudioSet: 1024 frames x 128 bins
    assert SpectrogramPatchTokenizer(stride=10).layout.shape == (101, 12)  # Audio-MAE's fine-tuning overlap
    tokenizer = SpectrogramPatchTokenizer(target_length=32, num_mel_bins=32, patch_size=16)
    fbank = torch.randn(2, 1, 32, 32)
    tokens = tokenizer({"fbank": fbank})
    # token 1 is time row 0, frequency column 1: frequency fastest; inside, (time, frequency) order
    torch.testing.assert_close(tokens.tokens[0, 1].view(16, 16), fbank[0, 0, :16, 16:])
    with pytest.raises(anymae.ConfigError, match="does not fit"):
        SpectrogramPatchTokenizer(target_length=100, num_mel_bins=128)


def test_overlapping_inverse_averages_and_variable_length_marks_padding():
    tokenizer = SpectrogramPatchTokenizer(target_length=66, num_mel_bins=36, patch_size=16, stride=10)
    fbank = torch.randn(2, 1, 66, 36)
    tokens = tokenizer({"fbank": fbank})
    assert tokens.layout.shape == (6, 3) and tokenizer.spec.patch is None  # overlapping: no patch to unpatchify
    torch.testing.assert_close(tokenizer.inverse(tokens), fbank)
    padded = SpectrogramPatchTokenizer(target_length=64, num_mel_bins=32, variable_length=True)
    out = padded({"fbank": torch.randn(2, 1, 64, 32), "frames": torch.tensor([64, 20])})
    assert out.padding_mask.view(2, 4, 2)[1, :, 0].tolist() == [False, False, True, True]  # rows start at 0, 16, 32
    assert not out.padding_mask[0].any()
    model = anymae.MaskedAutoencoder(
        tokenizer=padded,
        masker=anymae.RandomMasker(mask_ratio=0.5),
        encoder=anymae.ViTEncoder(embed_dim=32, depth=1, num_heads=2),
        decoder=anymae.WindowDecoder(window=2, shift=(1, 0), embed_dim=16, depth=2, num_heads=2),
        target=anymae.PatchTarget(),
    )
    loss = model({"fbank": torch.randn(2, 1, 64, 32), "frames": torch.tensor([64, 40])}).loss
    assert torch.isfinite(loss)


def test_spectrogram_figure(tmp_path):
    images = {k: torch.randn(3, 1, 64, 32) for k in ("input", "masked", "reconstruction")}
    images["hidden"] = (torch.rand(3, 1, 64, 32) > 0.5).float()
    path = save_spectrograms(images, tmp_path / "s.png")
    from PIL import Image

    with Image.open(path) as png:
        assert png.size[0] > png.size[1] / 2
    assert SpectrogramFigure().drawings == {anymae.RAW_VALUES: frozenset({anymae.INVERSE})}
