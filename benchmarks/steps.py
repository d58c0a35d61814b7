"""The image MAE steps that ``bench.py`` times and ``profile_step.py`` profiles: our model (with MAE's fused AdamW,
HF's plain AdamW, or trained in bf16 throughout), HF's ``ViTMAEForPreTraining``, and the full-token control; their
analytic FLOP and the matmul ceiling MFU is measured against."""

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from benchkit import hf_sizes, reference_optimizer
from torch import nn

import anymae

SIZES = {  # encoder (dim, depth, heads), decoder (dim, depth, heads)
    "ViT-S/16": ((384, 12, 6), (256, 4, 8)),
    "ViT-B/16": ((768, 12, 12), (512, 8, 16)),
}


def write_results(path: Path, device: torch.device, **results: Any) -> None:
    """A benchmark's results as JSON, with the torch version, device and thread count they were measured with."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}
    path.write_text(json.dumps({**header, **results}, indent=2))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_ceiling(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n matmul in ``dtype`` (the roofline MFU is measured against)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def mae_gflop(
    dim: int, depth: int, dec: tuple[int, int, int], n: int, keep: int, patch_dim: int, full: bool, hf: bool
) -> float:
    """Analytic matmul GFLOP of one training step per image (forward x 3 for forward + backward)."""
    ddim, ddepth, _ = dec
    enc_tokens = n + 1 if full else keep + 1
    embedded = n if (full or hf) else keep  # HF embeds every patch, we embed the visible ones
    macs = embedded * patch_dim * dim
    macs += depth * enc_tokens * (12 * dim * dim + 2 * enc_tokens * dim)
    macs += (keep + 1 if not full else n + 1) * dim * ddim  # decoder embed
    macs += ddepth * (n + 1) * (12 * ddim * ddim + 2 * (n + 1) * ddim)
    macs += (n + 1 if hf else n - keep) * ddim * patch_dim  # HF predicts every patch, we the hidden ones
    return 3 * 2 * macs / 1e9


def build(kind: str, size: str, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    from anymae_image import ImagePatchTokenizer

    (dim, depth, heads), (ddim, ddepth, dheads) = SIZES[size]
    torch.manual_seed(0)
    if kind == "hf":
        import transformers

        config = transformers.ViTMAEConfig(
            **hf_sizes((dim, depth, heads), (ddim, ddepth, dheads)),
            image_size=224,
            patch_size=16,
            mask_ratio=0.75,
            norm_pix_loss=True,
        )
        model = transformers.ViTMAEForPreTraining(config).to(device)
        return model, reference_optimizer(model)
    model = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=224, patch_size=16, in_chans=3),
        masker=anymae.RandomMasker(mask_ratio=0.75),
        # the full-token control is the library's SimMIM-style encoder: every token in, hidden ones as mask tokens
        encoder=anymae.ViTEncoder(embed_dim=dim, depth=depth, num_heads=heads, mask_token=kind == "full"),
        decoder=anymae.MAEDecoder(embed_dim=ddim, depth=ddepth, num_heads=dheads),
        target=anymae.PatchTarget(normalize="patch"),
    )
    module: nn.Module = model.to(device)
    if kind == "plain":  # HF's (and the reference code's) optimiser
        return module, reference_optimizer(module)
    if kind == "bf16w":  # bf16 working copy, fp32 masters in the optimiser
        module = module.to(torch.bfloat16)
        return module, anymae.MAEAdamW(module.parameters(), master_weights=True)
    return module, anymae.MAEAdamW(module.parameters())


def step_fn(kind: str, module: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, autocast):
    def step() -> None:
        with autocast():
            loss = module(pixel_values=images).loss if kind == "hf" else module({"image": images}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inputs(kind: str, batch: int, bf16: bool, device: torch.device) -> tuple[torch.Tensor, Any]:
    """A step's images and its autocast context: bf16 autocast for every bf16 case but ``bf16w``, whose model and
    images are bf16 already (as Lightning's bf16-true runs it)."""
    images = torch.randn(batch, 3, 224, 224, device=device)
    if kind == "bf16w":
        return images.bfloat16(), nullcontext
    return images, (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
