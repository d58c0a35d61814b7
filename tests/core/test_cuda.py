"""The same model on a GPU, when there is one (CI has none: these are skipped there)."""

import pytest
import torch

from .toys import SeriesData, quiet_trainer, series_model, sinusoids

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.gpu
def test_forward_backward_and_reconstruct_on_cuda_in_bf16():
    model = series_model().cuda()
    batch = {"series": sinusoids(4).cuda(), "length": torch.tensor([32, 32, 16, 24]).cuda()}
    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(batch, generator=generator)
    out.loss.backward()
    assert out.pred.device.type == "cuda" and torch.isfinite(out.loss)
    assert model.reconstruct(batch, generator=generator)["reconstruction"].device.type == "cuda"


@cuda
@pytest.mark.gpu
def test_trainer_fit_on_gpu():
    trainer = quiet_trainer(accelerator="gpu", max_epochs=1, limit_train_batches=3, precision="bf16-mixed")
    trainer.fit(series_model(), SeriesData())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
