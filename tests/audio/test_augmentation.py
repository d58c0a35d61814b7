"""Augmentation for small audio sets and the decoded-file cache: time shift moves the waveform, gain scales it,
SpecAugment masks whole bands and spans, mixup is a convex mix of samples and labels, all off by default and all off
with ``augment: false``; a cached read is the uncached waveform and the second one decodes nothing."""

from types import SimpleNamespace

import pytest
import torch

from anymae import decoded_cache
from anymae.testing import DataModuleContract
from anymae_audio import (
    AudioFolderDataModule,
    SpectrogramPatchTokenizer,
    SynthSoundsDataModule,
    read_audio,
    shift_and_gain,
    spec_augment,
)
from anymae_audio import features as audio_features
from anymae_audio.data import mixup

from .media import tone, write_audio


@pytest.fixture
def decodes(monkeypatch):
    """How many times an audio file is decoded."""
    calls = []
    original = audio_features._decode_audio

    def counted(path, sample_rate):
        calls.append(path)
        return original(path, sample_rate)

    monkeypatch.setattr(audio_features, "_decode_audio", counted)
    decoded_cache().clear()
    return calls


def noise_file(path, seconds=1.0, rate=22050, seed=0):
    wave = 0.1 * torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(seed))
    return str(write_audio(path, wave.numpy()[:, None], rate))


def test_a_cached_read_is_the_uncached_waveform_and_the_second_decodes_nothing(tmp_path, decodes):
    path = noise_file(tmp_path / "a.wav")
    plain = read_audio(path, 16000, cache=False)
    first = read_audio(path, 16000)
    first.mul_(0)  # each read is the caller's own copy
    second = read_audio(path, 16000)
    assert torch.equal(second, plain) and len(decodes) == 2  # the uncached read and the first cached one
    assert decoded_cache().hits == 1 and decoded_cache().misses == 1
    read_audio(path, 8000)  # another rate is another entry
    assert len(decodes) == 3
    write_audio(tmp_path / "a.wav", tone(440, 0.5, 22050), 22050)  # an edited file is read again
    assert len(read_audio(path, 16000)) == 8000 and len(decodes) == 4


def folder(tmp_path, count=3, seconds=1.0):
    for i in range(count):
        noise_file(tmp_path / "clips" / ("cat" if i % 2 else "dog") / f"{i}.wav", seconds, seed=i)
    return str(tmp_path / "clips")


def module(root, **kwargs):
    args = {"labeled": True, "target_length": 64, "num_mel_bins": 32, "batch_size": 4, "num_workers": 0}
    data = AudioFolderDataModule(root, **{**args, **kwargs})
    data.setup("fit")
    return data


def read(data, train, seed=0, index=0):
    torch.manual_seed(seed)
    return data.reader(train)(data.train_set.files.paths[index])["fbank"]


ALL_ON = {"crop": "random", "time_shift": 0.5, "gain_db": 6.0, "freqm": 8, "timem": 16, "mixup": 1.0}


def test_the_cache_gives_the_same_augmented_samples(tmp_path):
    root = folder(tmp_path, seconds=1.5)  # 148 frames: the random crop of 64 has room
    cached, plain = module(root, **ALL_ON), module(root, cache=False, **ALL_ON)
    for seed in range(3):
        assert torch.equal(read(cached, True, seed), read(plain, True, seed))


def test_augmentation_is_off_by_default_and_augment_false_turns_all_of_it_off(tmp_path):
    root = folder(tmp_path, seconds=1.5)
    default, off, on = module(root), module(root, augment=False, **ALL_ON), module(root, **ALL_ON)
    evaluation = read(default, train=False)
    for seed in range(4):
        assert torch.equal(read(default, True, seed), evaluation)
        assert torch.equal(read(off, True, seed), evaluation)
        assert not torch.equal(read(on, True, seed), evaluation)
    batch = {"fbank": torch.randn(4, 1, 64, 32), "label": torch.tensor([0, 1, 0, 1]), "frames": torch.full((4,), 64)}
    for data in (default, off, on):
        data.trainer = SimpleNamespace(training=True)
    assert default.on_after_batch_transfer(batch, 0) is batch and off.on_after_batch_transfer(batch, 0) is batch
    assert on.on_after_batch_transfer(batch, 0)["label"].shape == (4, 2)  # mixed: class probabilities
    on.trainer = SimpleNamespace(training=False)  # validation and evaluation batches are never mixed
    assert on.on_after_batch_transfer(batch, 0) is batch


def draws(wave: torch.Tensor, count: int, **kwargs) -> list[torch.Tensor]:
    """``shift_and_gain(wave, **kwargs)`` under seeds 0 to ``count - 1``."""
    outputs = []
    for seed in range(count):
        torch.manual_seed(seed)
        outputs.append(shift_and_gain(wave, **kwargs))
    return outputs


def test_gain_scales_the_waveform_within_its_range():
    wave = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    gains = set()
    for out in draws(wave, 10, time_shift=0.0, gain_db=6.0):
        ratio = out / wave
        torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio))  # one factor for the whole clip
        assert 10 ** (-6 / 20) - 1e-6 <= float(ratio[0]) <= 10 ** (6 / 20) + 1e-6
        gains.add(round(float(ratio[0]), 4))
    assert len(gains) == 10
    assert torch.equal(shift_and_gain(wave, 0.0, 0.0), wave)


def test_time_shift_rolls_the_waveform_by_at_most_its_share():
    wave = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    shifts = set()
    for out in draws(wave, 20, time_shift=0.1, gain_db=0.0):
        found = [k for k in range(-100, 101) if torch.equal(out, torch.roll(wave, k))]
        assert len(found) == 1  # the same samples, moved (circularly) by at most 100
        shifts.add(found[0])
    assert len(shifts) > 5 and any(k < 0 for k in shifts) and any(k > 0 for k in shifts)


def test_time_shift_and_gain_in_the_folder_module_change_the_features_as_they_should(tmp_path):
    root = folder(tmp_path, count=1)
    plain = read(module(root), train=True)
    louder = read(module(root, gain_db=12.0), train=True, seed=1)
    offset = louder - plain  # a gain adds one constant to every log-mel value (no dither), here on every frame
    torch.testing.assert_close(offset, offset.flatten()[:1].expand_as(offset).view_as(offset), atol=1e-3, rtol=0)
    assert float(offset.abs().max()) > 0.01
    shifted = read(module(root, time_shift=0.5), train=True, seed=1)
    assert not torch.equal(shifted, plain)
    assert torch.allclose(shifted.mean(dim=(0, 1)), plain.mean(dim=(0, 1)), atol=0.05)  # the same sound, moved


def test_spec_augment_masks_whole_bands_and_spans_with_the_fill():
    fbank = torch.randn(1, 64, 32, generator=torch.Generator().manual_seed(0))
    bands = spans = 0
    for seed in range(10):
        torch.manual_seed(seed)
        out = spec_augment(fbank, freqm=8, timem=16, fill=-3.0)
        changed = out != fbank
        assert (out[changed] == -3.0).all()
        band = changed.all(dim=1)[0]  # mel bins masked on every frame
        span = changed.all(dim=2)[0]  # frames masked on every bin
        assert torch.equal(changed[0], band[None, :] | span[:, None])  # nothing but whole bands and spans
        for mask, widest in ((band, 8), (span, 16)):
            where = torch.nonzero(mask).flatten()
            if len(where):
                assert int(where[-1] - where[0]) + 1 == len(where) <= widest  # one contiguous band
        bands += bool(band.any())
        spans += bool(span.any())
    assert bands > 5 and spans > 5


def test_the_folder_module_masks_training_clips_with_the_raw_fbanks_zero(tmp_path):
    root = folder(tmp_path, count=1)
    data = module(root, freqm=8, timem=16)
    fill = -data.mean / (2 * data.std)
    clean = read(data, train=False)
    masked = 0
    for seed in range(6):
        out = read(data, True, seed)
        changed = out != clean
        assert torch.allclose(out[changed], torch.tensor(fill))
        masked += bool(changed.any())
    assert masked > 3


def test_mixup_is_a_convex_mix_of_samples_and_their_labels():
    torch.manual_seed(0)
    x = torch.randn(6, 1, 16, 8)
    batch = {"fbank": x, "label": torch.tensor([0, 1, 2, 0, 1, 2]), "frames": torch.tensor([16, 9, 16, 12, 16, 5])}
    mixed = mixup(batch, probability=1.0, classes=3)
    assert set(mixed) == set(batch) and torch.equal(batch["fbank"], x)  # the input batch is left as it was
    partner = torch.roll(torch.arange(6), 1)
    lam = mixed["label"][torch.arange(6), batch["label"]]  # each sample's own class keeps weight lam
    assert ((lam > 0) & (lam < 1)).all()
    one_hot = torch.nn.functional.one_hot(batch["label"], 3).float()
    torch.testing.assert_close(mixed["label"], lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[partner])
    torch.testing.assert_close(mixed["fbank"], lam.view(6, 1, 1, 1) * x + (1 - lam.view(6, 1, 1, 1)) * x[partner])
    assert torch.equal(mixed["frames"], torch.maximum(batch["frames"], batch["frames"][partner]))
    unmixed = mixup(batch, probability=0.0, classes=3)
    assert torch.equal(unmixed["fbank"], x) and torch.equal(unmixed["label"], one_hot)


def test_synth_sounds_take_spec_augment_and_mixup_off_by_default():
    base = {"per_class": 2, "num_mel_bins": 32, "target_length": 64, "batch_size": 4}
    plain = SynthSoundsDataModule(**base)
    plain.setup("fit")
    assert plain.train_set.transform is None
    data = SynthSoundsDataModule(freqm=8, timem=16, mixup=1.0, **base)
    data.setup("fit")
    fill = -audio_features.AUDIOSET_MEAN / (2 * audio_features.AUDIOSET_STD)
    masked = 0
    for seed in range(6):
        out, clean = data.train_set[(0, seed)]["fbank"], plain.train_set[0]["fbank"]
        changed = out != clean
        assert torch.allclose(out[changed], torch.tensor(fill))
        masked += bool(changed.any())
    assert masked > 3 and torch.equal(data.val_set[0]["fbank"], plain.val_set[0]["fbank"])
    batch = next(iter(data.train_dataloader()))
    data.trainer = SimpleNamespace(training=True)
    assert data.on_after_batch_transfer(batch, 0)["label"].shape == (len(batch["label"]), 6)


class TestAugmentedSynthSoundsDataModule(DataModuleContract):
    component_class = SynthSoundsDataModule
    init_args = {"per_class": 4, "num_mel_bins": 32, "target_length": 64, "freqm": 8, "timem": 8, "mixup": 0.5}

    def make_tokenizer(self):
        return SpectrogramPatchTokenizer(target_length=64, num_mel_bins=32, patch_size=16)
