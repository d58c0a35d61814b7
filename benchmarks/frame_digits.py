"""Is the moving digits' *digit* out of reach of masked pretraining because of video, or because of where the digit is?

    python benchmarks/frame_digits.py            # about 3 minutes on 2 cores

docs/recipes.md ("Video") finds that no video recipe makes the encoder tell the moving digits apart by digit. This
takes video out of the question: it pretrains an *image* MAE (the video example's encoder and decoder sizes, random
masking at 0.75, 4 x 4 patches, per-patch normalised pixels, the same 880 steps of 32) on the clips' frames, and
scores the middle frame of each clip by digit with k-NN on mean-pooled features (k = 20, ``exp(cos / 0.07)`` votes,
as ``anymae knn``): 5 labels per class from the training clips, seeds 0, 1, 2, scored on the validation clips. Each
setting is scored at random init too. Settings:

* ``anywhere``: the frames as they are (the digit anywhere on the black canvas, as in the clips);
* ``centred``: every frame shifted so the digit's centre of mass is at the canvas centre (a diagnostic: it needs to
  know where the digit is, which a clip does not say);
* ``anywhere, 3000 steps``: the first setting trained 3.4x longer.
"""

import argparse
import math

import torch
from torch import Tensor

import anymae
from anymae import MaskedAutoencoder
from anymae.evaluation.data import few_label_indices
from anymae.evaluation.knn import knn_predict


def model_config(mask_ratio: float) -> dict:
    """The video example's encoder and decoder (examples/video/videomae_moving_digits.yaml) on 32 x 32 frames."""
    return {
        "tokenizer": {
            "class_path": "anymae_image.ImagePatchTokenizer",
            "init_args": {"image_size": 32, "patch_size": 4, "in_chans": 1},
        },
        "masker": {"class_path": "anymae.RandomMasker", "init_args": {"mask_ratio": mask_ratio}},
        "encoder": {
            "class_path": "anymae.ViTEncoder",
            "init_args": {"embed_dim": 96, "depth": 4, "num_heads": 3, "class_token": False},
        },
        "decoder": {"class_path": "anymae.MAEDecoder", "init_args": {"embed_dim": 64, "depth": 2, "num_heads": 4}},
        "target": {"class_path": "anymae.PatchTarget", "init_args": {"normalize": "patch"}},
    }


def centred(frames: Tensor) -> Tensor:
    """``[S, 1, H, W]`` frames each rolled so that its centre of mass (above the background) is at the centre."""
    weight = (frames - frames.amin(dim=(2, 3), keepdim=True))[:, 0]
    size = frames.shape[-1]
    axis = torch.arange(size, dtype=frames.dtype)
    rows = (weight.sum(2) * axis).sum(1) / weight.sum((1, 2))
    cols = (weight.sum(1) * axis).sum(1) / weight.sum((1, 2))
    shift_r, shift_c = (size // 2 - rows).round().long(), (size // 2 - cols).round().long()
    # a per-sample roll as one gather: source index (i - shift) mod size along each axis
    index = torch.arange(size)
    src_r = (index[None] - shift_r[:, None]) % size  # [S, H]
    src_c = (index[None] - shift_c[:, None]) % size  # [S, W]
    out = torch.gather(frames, 2, src_r[:, None, :, None].expand_as(frames))
    return torch.gather(out, 3, src_c[:, None, None, :].expand_as(frames))


def features(model: MaskedAutoencoder, images: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        chunks = [model.encoder(model.tokenizer({"image": x}, frozenset())).body.mean(1) for x in images.split(256)]
    return torch.cat(chunks)


def knn_score(model: MaskedAutoencoder, train: Tensor, train_y: Tensor, val: Tensor, val_y: Tensor) -> list[float]:
    bank, query = features(model, train), features(model, val)
    scores = []
    for seed in (0, 1, 2):
        pick = few_label_indices(train_y, 5, seed)
        votes = knn_predict(query, bank[pick], train_y[pick], 20, 0.07, "classification", 10)
        scores.append(float((votes.argmax(1) == val_y).float().mean()))
    return scores


def pretrain(model: MaskedAutoencoder, frames: Tensor, steps: int, seed: int = 0) -> None:
    """MAE's AdamW (lr 1e-3 as the video example, betas 0.9/0.95, weight decay 0.05 off biases and norms) with 10%
    linear warm-up and a cosine to 0, batches of 32 frames drawn at random."""
    optimizer = torch.optim.AdamW(model.param_groups(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    warmup = steps // 10

    def rate(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = {"image": frames[torch.randint(len(frames), (32,), generator=generator)]}
        loss = model(batch, generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=880)
    parser.add_argument("--long-steps", type=int, default=3000)
    options = parser.parse_args()
    anymae.load_plugins().registry  # noqa: B018 (the configs' class paths resolve through the plugins)
    from anymae_video import MovingDigitsDataModule

    train, val = MovingDigitsDataModule(label="digit").build()
    clips, labels = train.tensors["video"], train.tensors["label"]  # [S, 1, T, H, W]
    val_clips, val_labels = val.tensors["video"], val.tensors["label"]
    frames = clips.transpose(1, 2).reshape(-1, 1, *clips.shape[-2:])
    middle, val_middle = clips[:, :, clips.shape[2] // 2], val_clips[:, :, val_clips.shape[2] // 2]
    settings = [
        ("anywhere", frames, middle, val_middle, options.steps),
        ("centred", centred(frames), centred(middle), centred(val_middle), options.steps),
        (f"anywhere, {options.long_steps} steps", frames, middle, val_middle, options.long_steps),
    ]
    print("| frames | steps | digit k-NN: pretrained | random init |")
    print("|---|---|---|---|")
    for name, pretraining, bank, query, steps in settings:
        torch.manual_seed(0)
        model = MaskedAutoencoder.from_config(model_config(0.75))
        random_init = knn_score(model, bank, labels, query, val_labels)
        pretrain(model, pretraining, steps)
        pretrained = torch.tensor(knn_score(model, bank, labels, query, val_labels))
        print(f"| {name} | {steps} | {pretrained.mean():.3f} ± {pretrained.std():.3f} | {sum(random_init) / 3:.3f} |")


if __name__ == "__main__":
    main()
