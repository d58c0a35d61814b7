"""What several benchmarks share: HF peer models sized as ours, the reference optimiser, and loader throughput."""

import time
from typing import Any

import torch

#: MAE's (and HF's examples') AdamW settings, which the peer runs use
REFERENCE_ADAMW = {"lr": 1.5e-4, "betas": (0.9, 0.95), "weight_decay": 0.05}


def hf_sizes(encoder: tuple[int, int, int], decoder: tuple[int, int, int]) -> dict[str, Any]:
    """transformers' ``ViTMAEConfig``/``VideoMAEConfig`` arguments for an encoder and decoder given as ``(width,
    depth, heads)``, with MLPs 4x wide, MAE's LayerNorm epsilon and SDPA attention, as our models are built."""
    (dim, depth, heads), (ddim, ddepth, dheads) = encoder, decoder
    return {
        "hidden_size": dim,
        "num_hidden_layers": depth,
        "num_attention_heads": heads,
        "intermediate_size": 4 * dim,
        "decoder_hidden_size": ddim,
        "decoder_num_hidden_layers": ddepth,
        "decoder_num_attention_heads": dheads,
        "decoder_intermediate_size": 4 * ddim,
        "layer_norm_eps": 1e-6,
        "attn_implementation": "sdpa",
    }


def reference_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), **REFERENCE_ADAMW)


def loader_rate(data: Any, key: str, epochs: int) -> float:
    """Samples per second a data module's training loader yields over ``epochs`` epochs, timed from its second
    batch (after the workers are up)."""
    data.setup("fit")
    loader = data.train_dataloader()
    count, start = 0, None
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            if start is None:
                start = time.perf_counter()
                continue
            count += len(batch[key])
    return count / (time.perf_counter() - start)
