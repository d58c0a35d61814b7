"""The video case of ``make bench``: our VideoMAE step beside HF transformers' ``VideoMAEForPreTraining`` (ViT-S,
16 x 224 x 224, tubelets 2 x 16 x 16, tube masking 0.9, batch 2, fp32 and bf16 autocast, steps interleaved in one
process), and the decoding pipeline (PyAV in 2 loader workers) beside that step.

    python benchmarks/bench.py --only video
"""

import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from benchkit import hf_sizes, loader_rate, reference_optimizer

import anymae

ENCODER, DECODER = (384, 12, 6), (192, 4, 3)  # VideoMAE ViT-S: decoder 192 wide, 3 heads, 4 blocks
FRAMES, SIZE, TUBELET, PATCH = 16, 224, 2, 16


def build(kind: str, device: torch.device):
    from anymae_video import VideoTubeletTokenizer

    (dim, depth, heads), (ddim, ddepth, dheads) = ENCODER, DECODER
    torch.manual_seed(0)
    if kind == "hf":
        import transformers

        config = transformers.VideoMAEConfig(
            **hf_sizes(ENCODER, DECODER),
            image_size=SIZE,
            patch_size=PATCH,
            num_frames=FRAMES,
            tubelet_size=TUBELET,
            norm_pix_loss=True,
            use_mean_pooling=False,
        )
        model = transformers.VideoMAEForPreTraining(config).to(device)
        return model, reference_optimizer(model)
    flat = anymae.SinCosPositionEmbedding(axes="flat")
    model = anymae.MaskedAutoencoder(
        tokenizer=VideoTubeletTokenizer(num_frames=FRAMES, image_size=SIZE, tubelet_size=TUBELET, patch_size=PATCH),
        masker=anymae.TubeMasker(mask_ratio=0.9),
        encoder=anymae.ViTEncoder(embed_dim=dim, depth=depth, num_heads=heads, class_token=False, pos_embed=flat),
        decoder=anymae.MAEDecoder(
            embed_dim=ddim,
            depth=ddepth,
            num_heads=dheads,
            embed_bias=False,
            pos_embed=anymae.SinCosPositionEmbedding(axes="flat"),
        ),
        target=anymae.PatchTarget(
            normalize="channel", input_mean=(0.485, 0.456, 0.406), input_std=(0.229, 0.224, 0.225)
        ),
    ).to(device)
    return model, anymae.MAEAdamW(model.parameters())


def gflop(hf: bool, batch: int) -> float:
    """Analytic matmul GFLOP of one step (forward x 3 for forward + backward)."""
    (dim, depth, _), (ddim, ddepth, _) = ENCODER, DECODER
    cells = (SIZE // PATCH) ** 2
    steps = FRAMES // TUBELET
    n, keep = steps * cells, steps * (cells - int(0.9 * cells))
    token = TUBELET * PATCH * PATCH * 3
    macs = (n if hf else keep) * token * dim  # HF's Conv3d embeds every tubelet, we the visible ones
    macs += depth * keep * (12 * dim * dim + 2 * keep * dim)
    macs += keep * dim * ddim + ddepth * n * (12 * ddim * ddim + 2 * n * ddim) + (n - keep) * ddim * token
    return batch * 3 * 2 * macs / 1e9


def step(kind: str, model, optimizer, clips: torch.Tensor, autocast, tokenizer, masker) -> None:
    """One training step: forward, backward, AdamW."""
    with autocast():
        if kind == "hf":
            mask = masker(tokenizer({"video": clips})).mask  # drawn outside HF's model, as its users must
            loss = model(pixel_values=clips.transpose(1, 2), bool_masked_pos=mask).loss
        else:
            loss = model({"video": clips}).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run(device: torch.device, ceiling: dict[str, float], steps: int = 5, warmup: int = 2, batch: int = 2) -> list[dict]:
    print(f"\nvideo: VideoMAE ViT-S, {FRAMES} x {SIZE} x {SIZE}, tubelet {TUBELET}, tube mask 0.9, batch {batch}")
    header = f"{'precision':<10}{'impl':<6}{'median s':>9}{'min':>7}{'max':>7}{'clips/s':>9}{'GFLOP':>8}{'MFU':>7}"
    print(header + f"{'ours/HF':>9}")
    rows = []
    clips = torch.randn(batch, 3, FRAMES, SIZE, SIZE, device=device)
    for precision in ("fp32", "bf16"):
        autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
        models = {kind: build(kind, device) for kind in ("ours", "hf")}
        tokenizer, masker = models["ours"][0].tokenizer, anymae.TubeMasker(mask_ratio=0.9)
        times: dict[str, list[float]] = {"ours": [], "hf": []}
        for i in range(warmup + steps):
            for kind in times:  # interleaved, so a drift in the machine's speed affects both alike
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                step(kind, *models[kind], clips, autocast, tokenizer, masker)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= warmup:
                    times[kind].append(time.perf_counter() - start)
        ratio = statistics.median(times["hf"]) / statistics.median(times["ours"])
        for kind, t in times.items():
            median, flops = statistics.median(t), gflop(kind == "hf", batch)
            mfu = flops / median / ceiling[precision]
            shown = f"{ratio:>9.2f}" if kind == "ours" else ""
            print(
                f"{precision:<10}{kind:<6}{median:>9.3f}{min(t):>7.3f}{max(t):>7.3f}{batch / median:>9.2f}"
                f"{flops:>8.0f}{mfu:>7.1%}{shown}"
            )
            rows.append({"case": "video", "precision": precision, "impl": kind, "median": median, "mfu": mfu})
    return rows


def decoding(step_seconds: float, batch: int = 2, videos: int = 8, workers: int = 2) -> dict:
    """Clips/s that VideoFolderDataModule (PyAV in ``workers`` processes, 16 frames at rate 4, multi-scale crop to
    224) delivers from 10-second 340 x 256 H.264 files, beside the clips/s a step of ``step_seconds`` consumes."""
    import av
    import numpy as np

    from anymae_video import VideoFolderDataModule

    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for i in range(videos):  # 10 s at 30 fps, a moving gradient plus noise (so the codec has work to do)
            with av.open(str(Path(folder) / f"v{i}.mp4"), mode="w") as container:
                stream = container.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
                base = np.linspace(0, 255, 340, dtype=np.float32)[None, :, None]
                for t in range(300):
                    frame = (np.roll(base, 3 * t, axis=1) + rng.normal(0, 8, (256, 340, 3))).clip(0, 255)
                    frame = av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        data = VideoFolderDataModule(folder, crop="multiscale", batch_size=batch, num_workers=workers)
        rate = loader_rate(data, "video", epochs=4)
    need = batch / step_seconds
    print(
        f"\nvideo decoding ({workers} workers, PyAV, 16 frames at rate 4 of 340 x 256 H.264, crop 224): "
        f"{rate:.2f} clips/s; the bf16 step consumes {need:.2f} clips/s: {rate / need:.2f}x"
    )
    return {"decoding_clips_per_s": rate, "step_clips_per_s": need}
