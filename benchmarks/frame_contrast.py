"""A frame-level contrastive term beside pixel reconstruction: does it teach the moving digits' *digit*, and what does
it cost the motion?

    python benchmarks/frame_contrast.py                      # every setting, about 80 minutes on 2 cores
    python benchmarks/frame_contrast.py --only "still frames"

docs/recipes.md ("Video") finds that no masking recipe makes the video encoder tell the moving digits apart by digit:
pixel targets at fixed grid positions do not ask for features that name a shape wherever it stands. A clip offers
what a single picture does not: the same digit at several places. This study pairs views of one clip and asks their
pooled, projected encodings to find each other among the batch (InfoNCE, temperature 0.1; a 2-layer projection, as
ViC-MAE and CMAE put a contrastive branch beside MAE: Hernandez et al. 2023, https://arxiv.org/abs/2303.12001; Huang
et al. 2022, https://arxiv.org/abs/2207.13532), added to the pixel loss with a weight. Each view's intensity is
scaled about its mean by a random factor in [0.6, 1.4], so that ink alone does not match a pair. Settings:

* ``frames``: an image MAE (``frame_digits.py``'s) on single frames; the views are two frames of one clip (batches of
  64 pairs, both frames also reconstructed).
* ``slots``: the video example (VideoMAE, tube masking 0.9); the views are two time slots (2-frame tubelets) of the
  clip, each encoded alone.
* ``still frames``: the video example; each view is one frame of the clip held still for the whole clip, one time
  slot of it encoded (what moves is out of the view, so only appearance can match a pair).
* ``still frames, weight 0.2`` and ``0.02``: as above, the term weighted 0.2 or 0.02; ``1e-9``: a control that
  runs every pass of the term and gives the encoder no gradient from it.
* ``still frame and moving slot``: one view a still frame, the other a moving time slot.
* ``moving slot and shuffled frames``: one view a time slot of the clip, the other a time slot of the clip with its
  frames in a random order (the digit in two unrelated places in each tubelet: no motion to match by).
* ``still frames, class token``: the encoder gets a class token and the term reads it instead of the mean.
* ``still frames, then pixels alone``: the still-frame term first, then the example's 880 steps again (a new
  warm-up and cosine) on pixels alone: does the motion come back and the digit stay?
* ``still frames, embedding held``: the term's gradient reaches every part of the encoder but its token embedding.
* ``still frames, sum and difference``: the token embedding reads each tubelet as its frames' sum and difference
  (an orthogonal change of its input), so a still view gives the weights that read motion no gradient at all;
  ``example, sum and difference`` is the example with the same embedding and no term.
* ``still frames, half the channels``: the term's projection reads only the first half of the pooled latents'
  channels (the other half is left to the pixels); ``..., sum and difference``: the same with the embedding above.
* ``still frame and moving slot, sum and difference`` (and ``half the channels``): a still frame against a moving
  slot, with that embedding (and the term on half the channels).
* ``still frames, balanced 0.1``, ``0.3``, ``1``, ``3``, ``10`` and ``30``: the term's gradient on each parameter
  tensor scaled to that multiple of the pixel loss's gradient norm on the tensor, so that it steers none more than
  that share; ``still frame and moving slot, half the channels, sum and difference, balanced 3`` combines them.
* ``example``: the video example alone (no term), in the same loop.

``--width 192`` makes the video encoder twice as wide (6 heads of 32; the example's is 96, 3 heads).
``--tubelet 1`` gives the video tokenizer tubelets of 1 frame (a time slot is then one frame; the sum-and-difference
settings need 2).

All pretrain 880 steps of 32 clips (the example's schedule: lr 1e-3, 10% warm-up, cosine to 0, AdamW 0.9/0.95, weight
decay 0.05). Scored on the validation clips at 5 labels per class, seeds 0, 1, 2: k-NN (k = 20, as ``anymae knn``)
and a linear probe (L-BFGS on standardised features) on mean-pooled latents (the class token's too where there is
one), by digit and by direction, next to the same model at random init.
"""

import argparse
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frame_digits import model_config as frame_model_config

import anymae
from anymae import MaskedAutoencoder
from anymae.evaluation.data import few_label_indices
from anymae.evaluation.knn import knn_predict
from anymae.model.multimodal.target import info_nce
from anymae.model.types import MaskSpec, TokenBatch

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
STEPS, WARMUP, FRAMES, TEMPERATURE = 880, 88, 8, 0.1


@dataclass(frozen=True)
class Setting:
    """One row of the study: which views the term pairs (``none``: no term) and how the model takes it."""

    views: str  # none, frames, slots, still, still+slot, slot+shuffled
    weight: float = 1.0  # of the term, beside the pixel loss
    class_token: bool = False  # the encoder gets one and the term reads it
    hold_embedding: bool = False  # the term gives no gradient to the token embedding (the tubelets' linear layer)
    then_pixels: bool = False  # pretrained a second time, from where the first left off, on pixels alone
    sum_difference: bool = False  # the token embedding reads each tubelet as its frames' sum and difference
    half_channels: bool = False  # the term reads only the first half of the latents' channels
    balance: float | None = None  # each tensor's term gradient scaled to this share of its pixel gradient's norm


SETTINGS = {
    "example": Setting("none", 0.0),
    "frames": Setting("frames"),
    "slots": Setting("slots"),
    "still frames": Setting("still"),
    "still frames, weight 0.2": Setting("still", 0.2),
    "still frames, weight 0.02": Setting("still", 0.02),
    "still frames, weight 1e-9": Setting("still", 1e-9),
    "still frame and moving slot": Setting("still+slot"),
    "moving slot and shuffled frames": Setting("slot+shuffled"),
    "still frames, class token": Setting("still", class_token=True),
    "still frames, then pixels alone": Setting("still", then_pixels=True),
    "still frames, embedding held": Setting("still", hold_embedding=True),
    "still frames, sum and difference": Setting("still", sum_difference=True),
    "example, sum and difference": Setting("none", 0.0, sum_difference=True),
    "still frames, half the channels": Setting("still", half_channels=True),
    "still frames, half the channels, sum and difference": Setting("still", sum_difference=True, half_channels=True),
    "still frame and moving slot, sum and difference": Setting("still+slot", sum_difference=True),
    "still frame and moving slot, half the channels, sum and difference": Setting(
        "still+slot", sum_difference=True, half_channels=True
    ),
    "still frames, balanced 0.1": Setting("still", balance=0.1),
    "still frames, balanced 0.3": Setting("still", balance=0.3),
    "still frames, balanced 1": Setting("still", balance=1.0),
    "still frames, balanced 3": Setting("still", balance=3.0),
    "still frames, balanced 10": Setting("still", balance=10.0),
    "still frames, balanced 30": Setting("still", balance=30.0),
    "still frame and moving slot, half the channels, sum and difference, balanced 3": Setting(
        "still+slot", sum_difference=True, half_channels=True, balance=3.0
    ),
}


class SumDifference(nn.Module):
    """The token embedding ``linear`` fed each 2-frame tubelet ``(a, b)`` as ``((a + b), (b - a)) / sqrt(2)``.

    An orthogonal change of the input: the same functions as ``linear`` alone, but the weights that read the frames'
    difference are parameters of their own. A still view (``a == b``) gives them no gradient, so AdamW, which scales
    each parameter's step by its own gradient history, cannot move them from a term computed on still frames."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.unflatten(-1, (2, -1)).unbind(-2)  # tokens flatten (t, p, p, c): the first half is frame 0
        return self.linear(torch.cat([a + b, b - a], -1) / math.sqrt(2))


def jitter(x: Tensor, generator: torch.Generator, strength: float = 0.4) -> Tensor:
    """Each sample's values scaled about its own mean by a factor drawn from ``[1 - strength, 1 + strength]``."""
    dims = tuple(range(1, x.dim()))
    factor = torch.empty(x.shape[0], *([1] * (x.dim() - 1))).uniform_(1 - strength, 1 + strength, generator=generator)
    mean = x.mean(dims, keepdim=True)
    return (x - mean) * factor + mean


def slot_view(tokens: TokenBatch, slot: Tensor, slots: int) -> MaskSpec:
    """A mask keeping only time slot ``slot`` ``[B]`` of each clip's ``(T, H, W)`` tokens (``slots`` along T)."""
    batch, count = tokens.tokens.shape[:2]
    per = count // slots
    order = (torch.arange(count).expand(batch, count) + slot[:, None] * per) % count
    return MaskSpec.from_order(order, per)


def video_model(class_token: bool, width: int, tubelet: int) -> MaskedAutoencoder:
    config = yaml.safe_load((ROOT / "examples/video/videomae_moving_digits.yaml").read_text())["model"]
    for key in ("optimizer", "lr_schedule"):
        config.pop(key, None)
    config["encoder"]["init_args"].update(class_token=class_token, embed_dim=width, num_heads=width // 32)
    config["tokenizer"]["init_args"]["tubelet_size"] = tubelet
    return MaskedAutoencoder.from_config(config)


class Study:
    def __init__(self, views: str, weight: float, class_token: bool, width: int = 96, tubelet: int = 2) -> None:
        from anymae_video import MovingDigitsDataModule

        self.views, self.weight, self.class_token = views, weight, class_token
        self.hold_embedding = False
        self.balance: float | None = None
        train, val = MovingDigitsDataModule(label="both").build()
        self.clips, self.labels = train.tensors["video"], train.tensors["label"]  # [S, 1, T, H, W]; label = 4 d + m
        self.val_clips, self.val_labels = val.tensors["video"], val.tensors["label"]
        torch.manual_seed(0)
        self.image = views == "frames"
        if self.image:
            self.model = MaskedAutoencoder.from_config(frame_model_config(0.75))
        else:
            self.model = video_model(class_token, width, tubelet)
        self.slots = FRAMES // tubelet
        self.channels = self.model.encoder.embed_dim
        self.head = nn.Sequential(nn.Linear(self.channels, 256), nn.GELU(), nn.Linear(256, 64))

    def encode(self, x: Tensor, key: str) -> dict[str, Tensor]:
        out = self.model.encoder(self.model.tokenizer({key: x}, frozenset()))
        pooled = {"mean": out.body.mean(1)}
        if out.num_prefix:
            pooled["class token"] = out.latent[:, 0]
        return pooled

    def features(self, clips: Tensor) -> dict[str, Tensor]:
        self.model.eval()
        with torch.no_grad():
            if self.image:  # the middle frame of each clip
                parts = [self.encode(c[:, :, FRAMES // 2], "image") for c in clips.split(256)]
            else:
                parts = [self.encode(c, "video") for c in clips.split(128)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def score(self) -> dict[tuple[str, str, str], float]:
        bank, query = self.features(self.clips), self.features(self.val_clips)
        scores = {}
        for label, of in (("digit", lambda y: y // 4), ("direction", lambda y: y % 4)):
            if self.image and label == "direction":
                continue  # a single frame holds no motion
            train_y, val_y = of(self.labels), of(self.val_labels)
            classes = int(train_y.max()) + 1
            for pool in bank:
                b, q = bank[pool], query[pool]
                mu, sd = b.mean(0), b.std(0) + 1e-6
                knn, probe = [], []
                for seed in SEEDS:
                    pick = few_label_indices(train_y, 5, seed)
                    votes = knn_predict(q, b[pick], train_y[pick], 20, 0.07, "classification", classes)
                    knn.append(float((votes.argmax(1) == val_y).float().mean()))
                    probe.append(linear_probe((b[pick] - mu) / sd, train_y[pick], (q - mu) / sd, val_y, classes))
                scores[(label, pool, "k-NN")] = sum(knn) / len(knn)
                scores[(label, pool, "probe")] = sum(probe) / len(probe)
        return scores

    def contrast(self, clips: Tensor, generator: torch.Generator) -> Tensor:
        batch = clips.shape[0]
        rows = torch.arange(batch)

        def still(frame: Tensor) -> Tensor:  # one frame of each clip held for the whole clip
            return clips[rows, :, frame][:, :, None].expand(-1, -1, FRAMES, -1, -1)

        def pooled(x: Tensor, slot: Tensor) -> Tensor:
            tokens = self.model.tokenizer({"video": x}, frozenset())
            tokens = replace(tokens, tokens=jitter(tokens.tokens, generator))
            encoder, mask = self.model.encoder, slot_view(tokens, slot, self.slots)
            if self.hold_embedding:  # the same weights, detached from this pass's graph
                weights = {k: v.detach() if k.startswith("token_embed.") else v for k, v in encoder.named_parameters()}
                out = torch.func.functional_call(encoder, weights, (tokens, mask))
            else:
                out = encoder(tokens, mask)
            pooled = out.latent[:, 0] if self.class_token else out.body.mean(1)
            return self.head(pooled[:, : self.channels])

        slots = [torch.randint(self.slots, (batch,), generator=generator) for _ in range(2)]
        if self.views == "slots":
            slots[1] = (slots[0] + torch.randint(1, self.slots, (batch,), generator=generator)) % self.slots
            return info_nce(pooled(clips, slots[0]), pooled(clips, slots[1]), TEMPERATURE)
        if self.views == "slot+shuffled":  # each clip's frames in its own random order: the tubelets' motion is noise
            order = torch.rand(batch, FRAMES, generator=generator).argsort(dim=1)
            shuffled = clips[rows[:, None], :, order].transpose(1, 2)  # [B, T, C, H, W] -> [B, C, T, H, W]
            return info_nce(pooled(clips, slots[0]), pooled(shuffled, slots[1]), TEMPERATURE)
        frames = [torch.randint(FRAMES, (batch,), generator=generator) for _ in range(2)]
        first = pooled(still(frames[0]), slots[0])
        second = pooled(clips if self.views == "still+slot" else still(frames[1]), slots[1])
        return info_nce(first, second, TEMPERATURE)

    def step(self, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """The pixel loss and the term (``None`` without one) of one batch; the image setting returns their weighted
        sum as the first."""
        if self.image:  # two frames of each of 64 clips, both reconstructed, contrasted with each other
            pick = torch.randint(len(self.clips), (64,), generator=generator)
            frames = self.clips[pick, 0]  # [64, T, H, W]
            times = [torch.randint(FRAMES, (64,), generator=generator) for _ in range(2)]
            views = [frames[torch.arange(64), t][:, None] for t in times]
            views = [jitter(v, generator) for v in views]
            loss = self.model({"image": torch.cat(views)}, generator=generator).loss
            pooled = [self.head(self.encode(v, "image")["mean"]) for v in views]
            return loss + self.weight * info_nce(*pooled, TEMPERATURE), None
        clips = self.clips[torch.randint(len(self.clips), (32,), generator=generator)]
        loss = self.model({"video": clips}, generator=generator).loss
        return loss, self.contrast(clips, generator) if self.weight else None

    def balanced_backward(self, pixels: Tensor, term: Tensor) -> None:
        """Gradients of ``pixels`` plus, per parameter tensor, the term's scaled to ``balance`` times the pixels'
        norm (the head, which only the term reaches, takes the term's as they are): the term steers no tensor more
        than that share, whatever AdamW's per-parameter scaling would make of it."""
        params = [*self.model.parameters(), *self.head.parameters()]
        pixels.backward()
        from_pixels = [None if p.grad is None else p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        term.backward()
        for p, g in zip(params, from_pixels, strict=True):
            if g is not None and p.grad is not None:
                p.grad = g + self.balance * p.grad * (g.norm() / (p.grad.norm() + 1e-12))
            elif g is not None:
                p.grad = g

    def pretrain(self, seed: int = 0) -> None:
        params = [*self.model.param_groups(), {"params": list(self.head.parameters())}]
        optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)

        def rate(step: int) -> float:
            return min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / STEPS))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(STEPS):
            self.model.train()
            loss, term = self.step(generator)
            optimizer.zero_grad()
            if term is not None and self.balance is not None:
                self.balanced_backward(loss, term)
            else:
                (loss if term is None else loss + self.weight * term).backward()
            optimizer.step()
            schedule.step()


def linear_probe(x: Tensor, y: Tensor, query: Tensor, query_y: Tensor, classes: int) -> float:
    torch.manual_seed(0)
    layer = nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=200)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(layer(x), y) + 1e-3 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((layer(query).argmax(1) == query_y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--width", type=int, default=96, help="the video encoder's width (heads of 32)")
    parser.add_argument("--tubelet", type=int, default=2, choices=(1, 2), help="frames per video token")
    options = parser.parse_args()
    anymae.load_plugins().registry  # noqa: B018 (the configs' class paths resolve through the plugins)
    print("| setting | label | read-out | protocol | pretrained | random init |")
    print("|---|---|---|---|---|---|")
    for name in options.only:
        setting = SETTINGS[name]
        study = Study(setting.views, setting.weight, setting.class_token, width=options.width, tubelet=options.tubelet)
        study.hold_embedding, study.balance = setting.hold_embedding, setting.balance
        if setting.half_channels:
            study.channels //= 2
            study.head[0] = nn.Linear(study.channels, 256)
        if setting.sum_difference:
            study.model.encoder.token_embed = SumDifference(study.model.encoder.token_embed)
        random_init = study.score()
        study.pretrain()
        if setting.then_pixels:
            study.weight = 0.0
            study.pretrain(seed=1)
        for key, value in study.score().items():
            print(f"| {name} | {' | '.join(key)} | {value:.3f} | {random_init[key]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
