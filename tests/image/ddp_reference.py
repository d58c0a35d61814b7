"""The model and data of the DDP equivalence test, shared by the DDP script and the one-process reference."""

from functools import partial

import torch

import anymae
from anymae_image import DigitsDataModule, ImagePatchTokenizer


def build_model() -> anymae.MaskedAutoencoder:
    """The tiny digits MAE of examples/image/mae_tiny_digits.yaml, with no warm-up (the first step has its full lr).

    The step is plain SGD: it applies the gradient as it is, so the comparison checks DDP's gradient (Adam's first
    step divides each gradient by its own magnitude, and turns the float noise of gradients that are zero in exact
    arithmetic, such as the key biases', into steps of the full learning rate).
    """
    torch.manual_seed(0)
    return anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=32, patch_size=4, in_chans=1),
        masker=anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(embed_dim=96, depth=4, num_heads=3),
        decoder=anymae.MAEDecoder(embed_dim=64, depth=2, num_heads=4),
        target=anymae.PatchTarget(normalize="patch"),
        optimizer=partial(torch.optim.SGD, lr=0.5),
        lr_schedule=anymae.WarmupCosine(warmup_epochs=0),
    )


def first_digits(count: int = 8) -> dict[str, torch.Tensor]:
    data = DigitsDataModule(image_size=32, batch_size=count)
    data.setup("fit")
    return {"image": data.train_set.tensors["image"][:count]}
