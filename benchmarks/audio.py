"""The audio case of ``make bench``: our Audio-MAE step (ViT-B, 1024 x 128 fbank, 512 patches, mask 0.8) with its
local-window decoder, beside the same model with the global decoder and beside a full-token control (the encoder on
every patch, hidden ones replaced by a mask token), steps interleaved in one process; the local decoder against the
global one at 512 and 1,024 tokens; and fbank extraction (kaldi's per clip in 2 loader workers, and our batched
fbank) beside the step.

    python benchmarks/bench.py --only audio
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from benchkit import loader_rate
from torch import nn

import anymae

ENCODER = (768, 12, 12)  # ViT-B
DECODER = (512, 16, 16)  # Audio-MAE's local decoder: 16 blocks, 512 wide, 16 heads


def build(decoder: str, frames: int, device: torch.device, full: bool = False) -> anymae.MaskedAutoencoder:
    """Audio-MAE's model; ``full``: the control, the library's encoder with mask tokens (every patch in)."""
    from anymae_audio import SpectrogramPatchTokenizer

    (dim, depth, heads), (ddim, ddepth, dheads) = ENCODER, DECODER
    torch.manual_seed(0)
    if decoder == "local":
        dec = anymae.WindowDecoder(window=(4, 4), shift=(2, 0), embed_dim=ddim, depth=ddepth, num_heads=dheads)
    else:
        dec = anymae.MAEDecoder(embed_dim=ddim, depth=ddepth, num_heads=dheads)
    return anymae.MaskedAutoencoder(
        tokenizer=SpectrogramPatchTokenizer(target_length=frames, num_mel_bins=128),
        masker=anymae.RandomMasker(mask_ratio=0.8),
        encoder=anymae.ViTEncoder(embed_dim=dim, depth=depth, num_heads=heads, mask_token=full),
        decoder=dec,
        target=anymae.PatchTarget(normalize="patch"),
    ).to(device)


def gflop(full: bool, local: bool, tokens: int, batch: int) -> float:
    """Analytic matmul GFLOP of one step (forward x 3)."""
    (dim, depth, _), (ddim, ddepth, _) = ENCODER, DECODER
    keep = tokens - int(tokens * 0.8) if not full else tokens
    macs = keep * 256 * dim + depth * (keep + 1) * (12 * dim * dim + 2 * (keep + 1) * dim)
    context = 16 if local else tokens
    macs += keep * dim * ddim + ddepth * tokens * (12 * ddim * ddim + 2 * context * ddim) + tokens * 0.8 * ddim * 256
    return batch * 3 * 2 * macs / 1e9


def time_steps(steps_of: dict, steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in steps_of}
    for i in range(warmup + steps):
        for name, step in steps_of.items():  # interleaved: a drift in the machine's speed affects all alike
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def step_of(module: nn.Module, batch: dict, bf16: bool, device: torch.device):
    optimizer = anymae.MAEAdamW(module.parameters())

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = module(batch)
            loss = out if isinstance(out, torch.Tensor) else out.loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run(device: torch.device, ceiling: dict[str, float], steps: int = 3, warmup: int = 1, batch: int = 8) -> list[dict]:
    rows = []
    print(f"\naudio: Audio-MAE ViT-B, 1024 x 128 fbank (512 patches), mask 0.8, batch {batch}, bf16 autocast")
    fbank = {"fbank": torch.randn(batch, 1, 1024, 128, device=device)}
    local = build("local", 1024, device)
    steps_of = {
        "local": step_of(local, fbank, True, device),
        "global": step_of(build("global", 1024, device), fbank, True, device),
        "full-token": step_of(build("local", 1024, device, full=True), fbank, True, device),
    }
    medians = time_steps(steps_of, steps, warmup, device)
    for name, median in medians.items():
        flops = gflop(name == "full-token", name != "global", 512, batch)
        print(
            f"  {name:<11}{median:>8.3f} s  {batch / median:>6.2f} clips/s  {flops:>6.0f} GFLOP  "
            f"MFU {flops / median / ceiling['bf16']:.1%}"
        )
        rows.append({"case": "audio", "impl": name, "median": median, "gflop": flops})
    flop_ratio = gflop(True, True, 512, batch) / gflop(False, True, 512, batch)
    print(
        f"  full-token / ours: {medians['full-token'] / medians['local']:.2f}x time (FLOP ratio {flop_ratio:.2f}x); "
        f"global / local decoder: {medians['global'] / medians['local']:.2f}x"
    )
    longer = {"fbank": torch.randn(batch // 2, 1, 2048, 128, device=device)}
    medians2 = time_steps(
        {
            "local": step_of(build("local", 2048, device), longer, True, device),
            "global": step_of(build("global", 2048, device), longer, True, device),
        },
        steps,
        warmup,
        device,
    )
    print(
        f"  1,024 patches (2048 frames), batch {batch // 2}: local {medians2['local']:.3f} s, global "
        f"{medians2['global']:.3f} s: global / local {medians2['global'] / medians2['local']:.2f}x"
    )
    rows.append({"case": "audio-2048", **medians2})
    return rows


def features(step_seconds: float, batch: int = 8, workers: int = 2, clips: int = 32) -> dict:
    """Clips/s of fbank features from 10-second 16 kHz WAV files: kaldi's per clip in ``workers`` loader processes
    (AudioFolderDataModule), and our batched fbank in the main process; beside what a step consumes."""
    import numpy as np
    import soundfile

    from anymae_audio import AudioFolderDataModule
    from anymae_audio.features import batched_fbank

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(clips):
            soundfile.write(str(Path(folder) / f"{i}.wav"), rng.normal(0, 0.1, 160000).astype(np.float32), 16000)
        data = AudioFolderDataModule(folder, batch_size=batch, num_workers=workers)
        workers_rate = loader_rate(data, "fbank", epochs=3)
    waves = torch.randn(batch, 160000) * 0.1
    batched_fbank(waves)
    start = time.perf_counter()
    for _ in range(5):
        batched_fbank(waves)
    batched_rate = 5 * batch / (time.perf_counter() - start)
    need = batch / step_seconds
    print(
        f"\naudio features (10 s clips): kaldi fbank in {workers} workers {workers_rate:.1f} clips/s, our batched "
        f"fbank (1 process) {batched_rate:.1f} clips/s; the step consumes {need:.2f} clips/s: "
        f"{workers_rate / need:.1f}x"
    )
    return {"kaldi_workers_clips_per_s": workers_rate, "batched_clips_per_s": batched_rate, "step_clips_per_s": need}
