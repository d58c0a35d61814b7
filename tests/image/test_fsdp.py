"""FSDP: the ViT-B example shards each transformer block; Lightning runs FSDP on GPUs only, so on a CPU machine the
test checks the example's strategy and that Lightning still refuses the CPU (and says so in its skip), and on a GPU
it steps the model (benchmarks/fsdp_check.py runs the full ViT-B config there)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.strategies import FSDPStrategy, Strategy
from timm.models.vision_transformer import Block

import anymae
from anymae.config import instantiate_component
from anymae_image import DigitsDataModule, ImagePatchTokenizer
from tests.core.toys import quiet_trainer

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "image" / "mae_vit_base_fsdp.yaml"


def build_model() -> anymae.MaskedAutoencoder:
    """The tiny digits MAE of examples/image/mae_tiny_digits.yaml."""
    torch.manual_seed(0)
    return anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=32, patch_size=4, in_chans=1),
        masker=anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(embed_dim=96, depth=4, num_heads=3),
        decoder=anymae.MAEDecoder(embed_dim=64, depth=2, num_heads=4),
        target=anymae.PatchTarget(normalize="patch"),
    )


def first_digits(count: int = 8) -> dict[str, torch.Tensor]:
    data = DigitsDataModule(image_size=32, batch_size=count)
    data.setup("fit")
    return {"image": data.train_set.tensors["image"][:count]}


def test_the_fsdp_example_wraps_each_transformer_block_in_bf16():
    config = yaml.safe_load(CONFIG.read_text())
    strategy = instantiate_component(config["trainer"]["strategy"], Strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    assert config["trainer"]["precision"] == "bf16-mixed" and config["model"]["blr"] == 1.5e-4
    encoder_blocks = build_model().encoder.blocks
    assert all(isinstance(block, Block) for block in encoder_blocks)  # what the policy wraps is what we build


def test_fsdp_steps_the_digits_mae():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="requires a GPU accelerator"):
            pl.Trainer(strategy=FSDPStrategy(), accelerator="cpu", devices=2)
        pytest.skip("Lightning runs FSDP on GPUs only (FSDPStrategy refuses accelerator='cpu'); no GPU here")
    from anymae import TensorSamples, make_loader

    class EightDigits(pl.LightningDataModule):
        def train_dataloader(self):
            return make_loader(TensorSamples(first_digits()), batch_size=4, train=True, seed=0)

    model = build_model()
    trainer = quiet_trainer(
        strategy=FSDPStrategy(auto_wrap_policy={Block}, state_dict_type="full"),
        accelerator="cuda",
        precision="bf16-mixed",
        max_steps=2,
    )
    trainer.fit(model, EightDigits())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
