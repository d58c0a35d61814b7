"""One run, one process: a multi-modal step beside the single-modality steps it joins, at the same token counts.

    python benchmarks/multimodal.py            # ViT-S widths, video 8 x 64 x 64 (64 tubelets) + fbank 256 x 64 (64)
    python benchmarks/multimodal.py --quick    # fewer steps (a smoke test)

Each case times a full pretraining step (forward, backward, AdamW) of

* ``video``: VideoMAE on the clips alone (ViTEncoder, MAEDecoder, pixel target; 25% of 64 tubelets visible),
* ``audio``: Audio-MAE on the fbank alone (the same widths; 25% of 64 patches visible),
* ``joint``: one multi-modal model over both, the same widths, depths and ratios: CAV-MAE's (11 modality-specific
  blocks and 1 joint, one joint decoder, the InfoNCE term with each modality pooled on its own) and MultiMAE's (every
  encoder block joint, a decoder per modality cross-attending to every encoder token),

steps interleaved so that a drift in the machine's speed affects them alike, and prints each joint step over the sum
of the two single steps (the issue's target: at most 1.1).
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import anymae

WIDTH, DEPTH, HEADS, DEC_WIDTH, DEC_DEPTH, DEC_HEADS = 384, 12, 6, 192, 4, 6


def tokenizers() -> dict[str, anymae.Tokenizer]:
    from anymae_audio import SpectrogramPatchTokenizer
    from anymae_video import VideoTubeletTokenizer

    return {
        "video": VideoTubeletTokenizer(num_frames=8, image_size=64, patch_size=16, tubelet_size=2, in_chans=3),
        "audio": SpectrogramPatchTokenizer(target_length=256, num_mel_bins=64, patch_size=16),
    }


def single(name: str) -> anymae.MaskedAutoencoder:
    return anymae.MaskedAutoencoder(
        tokenizers()[name],
        anymae.RandomMasker(0.75),
        anymae.ViTEncoder(WIDTH, DEPTH, HEADS, class_token=False),
        anymae.MAEDecoder(embed_dim=DEC_WIDTH, depth=DEC_DEPTH, num_heads=DEC_HEADS),
        anymae.PatchTarget(),
    )


def joint(kind: str) -> anymae.MaskedAutoencoder:
    cav = kind == "cav-mae"
    return anymae.MaskedAutoencoder(
        anymae.MultiModalTokenizer(tokenizers()),
        anymae.MultiModalMasker(mask_ratio=0.75),
        anymae.MultiModalEncoder(WIDTH, DEPTH, DEPTH - 1 if cav else 0, HEADS, pool_separately=cav),
        anymae.MultiModalDecoder(
            embed_dim=DEC_WIDTH, depth=DEC_DEPTH, num_heads=DEC_HEADS, joint=cav, cross_attention=not cav
        ),
        anymae.MultiModalTarget(
            {"video": anymae.PatchTarget(), "audio": anymae.PatchTarget()}, contrastive_weight=0.01 if cav else 0.0
        ),
    )


def batches(batch_size: int) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    video = torch.randn(batch_size, 3, 8, 64, 64, generator=g)
    audio = torch.randn(batch_size, 1, 256, 64, generator=g)
    return {
        "video": {"video": video},
        "audio": {"fbank": audio},
        "joint": {"video/video": video, "audio/fbank": audio},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/multimodal.json"))
    options = parser.parse_args()
    steps = 3 if options.quick else options.steps
    data = batches(options.batch)
    models = {"video": single("video"), "audio": single("audio")}
    models.update({kind: joint(kind) for kind in ("cav-mae", "multimae")})
    optims = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(steps + 2):  # two warm-up steps
        for name, model in models.items():
            batch = data[name if name in ("video", "audio") else "joint"]
            generator = torch.Generator().manual_seed(step)
            start = time.perf_counter()
            loss = model(batch, generator=generator).loss
            loss.backward()
            optims[name].step()
            optims[name].zero_grad(set_to_none=True)
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) * 1000 for name, t in times.items()}
    singles = median["video"] + median["audio"]
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}; batch {options.batch}, fp32")
    print("| step | median ms | over video + audio |")
    print("|---|---|---|")
    for name, value in median.items():
        ratio = f"{value / singles:.2f}x" if name not in ("video", "audio") else ""
        print(f"| {name} | {value:.1f} | {ratio} |")
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"median_ms": median, "batch": options.batch, "steps": steps}, indent=1))


if __name__ == "__main__":
    main()
