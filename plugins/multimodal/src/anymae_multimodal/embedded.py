"""Embedded multi-modal data sets: aligned modalities generated in memory in seconds (no download).

Each set is made so that every modality carries something the other lacks, while the default class can be read from
either one (less well from one of them): a model has to combine them to do best, and a cross-modal model has
something to align.

* :class:`AudioVisualDigitsDataModule` (``av-digits``): moving digits (the video plugin's) with a sound track. The
  video shows the digit and its direction of motion; the sound plays the digit as a pitch register blurred by a
  per-clip detune (a weak cue), in a random number of notes (a rhythm the video does not show).
* :class:`RGBDepthScenesDataModule` (``rgbd-scenes``): scenes of a few flat shapes at random depths. The depth map
  tells which object is nearest and its outline; the RGB image shows every object's colour and stripes, but not which
  one is nearest (only that it is never hidden).
* :class:`MovingDigitsIMUDataModule` (``digits-imu``): moving digits with the series of a simulated inertial sensor
  riding on the digit: the push that sets it moving (its direction, through sensor noise, bias and shaking), and a
  shaking (tremor) whose rate the video does not show. The video shows the digit, which the sensor does not.

Batches are flat dicts: each modality's entries prefixed ``"<modality>/"`` with the keys that modality's tokenizer
reads by default, the label unprefixed: ``{"video/video": [B, C, T, H, W], "audio/fbank": [B, 1, T_a, F],
"audio/frames": [B], "label": [B]}``, ``{"rgb/image": [B, 3, H, W], "depth/image": [B, 1, H, W], "label": [B]}``,
``{"video/video": [B, C, T, H, W], "imu/series": [B, 6, L], "label": [B]}``.
"""

import functools
import math
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from anymae import ConfigError, DataModule, TensorSamples, require, split_indices, validated
from anymae_audio.features import Fbank, batched_fbank
from anymae_video.data import DIRECTIONS, moving_digits

__all__ = [
    "COLOURS",
    "SHAPES",
    "AudioVisualDigitsDataModule",
    "DigitClipsPairDataModule",
    "GeneratedPairsDataModule",
    "MovingDigitsIMUDataModule",
    "RGBDepthScenesDataModule",
    "digit_clips",
    "digit_sounds",
    "imu_series",
    "rgbd_scenes",
]

ModalityName = Annotated[str, Field(min_length=1, pattern=r"^[^/]+$")]
DIRECTION_NAMES = ("right", "left", "down", "up")  # anymae_video.data.DIRECTIONS, in its order
SHAPES = ("disc", "square", "triangle", "diamond")
COLOURS = {  # name: RGB in [0, 1]
    "red": (0.9, 0.15, 0.1),
    "green": (0.1, 0.75, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "magenta": (0.85, 0.15, 0.8),
    "cyan": (0.1, 0.8, 0.85),
}
TREMOR_RATES = (2.0, 4.0, 8.0, 16.0)  # shakes per clip of the four tremor classes (each clip within +-0.4 octave)


def _generator(seed: int, stream: int) -> torch.Generator:
    """A generator for one random stream of a data set (the video plugin's moving digits use ``seed`` itself)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) % 2**63)


def _split(tensors: dict[str, Tensor], train: list[int], val: list[int]) -> tuple[TensorSamples, TensorSamples]:
    return TensorSamples({k: v[train] for k, v in tensors.items()}), TensorSamples(
        {k: v[val] for k, v in tensors.items()}
    )


def _standardise(x: Tensor, train: list[int], dims: tuple[int, ...] = ()) -> Tensor:
    """``x`` standardised with the training samples' mean and std (per index of ``dims``, the other axes pooled)."""
    pooled = [d for d in range(x.dim()) if d not in dims]
    part = x[train]
    return (x - part.mean(dim=pooled, keepdim=True)) / part.std(dim=pooled, keepdim=True).clamp_min(1e-6)


# ------------------------------------------------------------------------------------------------ moving digits
@functools.lru_cache(maxsize=2)
def digit_clips(num_frames: int, image_size: int, digit_size: int, seed: int) -> dict[str, Tensor]:
    """scikit-learn's 1,797 digits (upsampled to ``digit_size``) moving across an ``image_size`` canvas, as the video
    plugin's :class:`~anymae_video.MovingDigitsDataModule` makes them (:func:`anymae_video.data.moving_digits`):
    ``{"clips": [S, T, H, W] in [0, 1], "digit": [S], "direction": [S], "step": [S, 2]}``, ``step`` being the
    motion ``(dy, dx)`` in pixels per frame. Made once per process."""
    if digit_size >= image_size:
        raise ConfigError(f"digit_size {digit_size} must be below image_size {image_size}")
    datasets = require("sklearn.datasets", install="anymae-multimodal[digits]", feature="the embedded moving digits")
    digits = datasets.load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    size = (digit_size, digit_size)
    images = F.interpolate(images, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)[:, 0]
    speeds = tuple(s for s in (1, 2) if s * (num_frames - 1) <= image_size - digit_size)
    if not speeds:
        raise ConfigError(
            f"a {digit_size} px digit cannot move {num_frames - 1} px on a {image_size} px canvas; allowed: "
            "image_size >= digit_size + num_frames - 1"
        )
    clips, direction = moving_digits(images, num_frames, image_size, speeds, seed)
    # the speed moving_digits drew, from the motion itself: every frame is the first one shifted
    speed = torch.zeros(len(clips)) if num_frames == 1 else _travel(clips) / (num_frames - 1)
    step = torch.tensor(DIRECTIONS, dtype=torch.float32)[direction] * speed.round()[:, None]
    return {
        "clips": clips,
        "digit": torch.tensor(digits.target, dtype=torch.long),
        "direction": direction,
        "step": step,
        "path": _centres(clips) / image_size,
    }


def _centres(clips: Tensor) -> Tensor:
    """``[S, T, 2]``: each frame's centre of mass (row, column) in pixels."""
    mass = clips.sum(dim=(-2, -1)).clamp_min(1e-6)  # [S, T]
    grid = torch.arange(clips.shape[-1], dtype=clips.dtype)
    rows = (clips.sum(dim=-1) * grid).sum(dim=-1) / mass
    cols = (clips.sum(dim=-2) * grid).sum(dim=-1) / mass
    return torch.stack([rows, cols], dim=-1)


def _travel(clips: Tensor) -> Tensor:
    """How far (pixels) each clip's content moves from its first to its last frame (centres of mass)."""
    centres = _centres(clips)
    return (centres[:, -1] - centres[:, 0]).norm(dim=1)


def _video(clips: Tensor, train: list[int], in_chans: int) -> Tensor:
    """``[S, T, H, W]`` clips standardised with the training split's mean and std, as ``[S, C, T, H, W]``."""
    return _standardise(clips, train).unsqueeze(1).expand(-1, in_chans, -1, -1, -1).contiguous()


# ------------------------------------------------------------------------------------------------ audio-visual
def digit_sounds(
    digits: Tensor, path: Tensor, sample_rate: int, duration: float, pitch_jitter: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Waveforms ``[S, N]`` of each moving digit's sound, and each clip's number of notes (1-4), all generated at once.

    The sound follows the digit as a sound source would: its pitch rises as the digit goes up the frame (two octaves
    from the bottom of the canvas to the top) and its loudness grows to the right (x4 from the left edge to the
    right), along ``path`` (``[S, T, 2]``: the digit's row and column per frame, in canvas units). The pitch register
    says which digit it is, ``3 d`` semitones above 220 Hz, detuned per clip by up to ``pitch_jitter`` semitones
    either way (4.5 by default: a register is shared by three neighbouring digits, and the height shifts it again, so
    the sound alone is a weak cue to the digit), with 1-3 harmonics (a random timbre). The tone is plucked 1-4 times,
    evenly spaced, each note decaying (a rhythm, which the video lacks), at a random loudness over background noise of
    a random level. So both modalities carry where the digit is and how it moves; only the sound carries the rhythm,
    only the video the digit's shape.
    """
    g = _generator(seed, 1)
    s, n = len(digits), int(sample_rate * duration)
    t = torch.arange(n) / sample_rate
    # the path at every sample: linear between frames spread evenly over the clip
    frames = path.shape[1]
    where = (t / duration * (frames - 1)).clamp(max=frames - 1)
    low = where.floor().long().clamp(max=frames - 2) if frames > 1 else torch.zeros(n, dtype=torch.long)
    share = (where - low)[None, :, None] if frames > 1 else torch.zeros(1, n, 1)
    high = (low + 1).clamp(max=frames - 1)
    at = path[:, low] * (1 - share) + path[:, high] * share  # [S, N, 2]
    u = torch.rand(s, 4, generator=g)
    semitones = 3 * digits.float()[:, None] + ((2 * u[:, 0] - 1) * pitch_jitter)[:, None] + 24 * (0.5 - at[..., 0])
    frequency = 220 * 2 ** (semitones / 12)  # [S, N]
    phase = 2 * math.pi * torch.cumsum(frequency, dim=1) / sample_rate
    harmonics = torch.randint(1, 4, (s, 1), generator=g)
    wave = sum((k <= harmonics) * torch.sin(k * phase) / k for k in range(1, 4))
    notes = torch.randint(1, 5, (s,), generator=g)
    position = t[None] / duration * notes[:, None]  # notes played so far, [S, N]
    within = position - position.floor()  # where in its note each sample is, [0, 1)
    attack = (within * duration / notes[:, None] / 0.005).clamp(max=1)  # a 5 ms onset ramp, no click
    envelope = attack * torch.exp(-4 * within) * 4 ** (at[..., 1] - 0.5)
    loudness = 0.1 + 0.4 * u[:, 1:2]
    noise = (0.005 + 0.045 * u[:, 2:3]) * torch.randn(s, n, generator=g)
    return loudness * envelope * wave + noise, notes - 1


@functools.lru_cache(maxsize=2)
def _audio_visual(
    num_frames: int,
    image_size: int,
    digit_size: int,
    sample_rate: int,
    duration: float,
    num_mel_bins: int,
    pitch_jitter: float,
    seed: int,
) -> dict[str, Tensor]:
    """The clips and their sounds' raw fbank ``[S, frames, bins]`` (every clip at once, in chunks), made once."""
    data = digit_clips(num_frames, image_size, digit_size, seed)
    waves, notes = digit_sounds(data["digit"], data["path"], sample_rate, duration, pitch_jitter, seed)
    raw = torch.cat([batched_fbank(chunk, sample_rate, num_mel_bins) for chunk in waves.split(256)])
    return {**data, "raw": raw, "notes": notes}


class GeneratedPairsDataModule(DataModule):
    """What the generated sets share: a held-out share of the generated samples, the loader settings, and two
    modality names that must differ (each set's constructor takes its own and forwards these).

    Args:
        val_fraction: share held out for validation.
        batch_size, num_workers, seed: :class:`~anymae.DataModule`'s (the seed also draws the samples).
    """

    @validated
    def __init__(
        self,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.val_fraction = val_fraction

    def modality_names(self, **names: str) -> tuple[str, str]:
        """The two modality names (the batch's key prefixes), given by role; two alike are a ``ConfigError``."""
        (first, a), (second, b) = names.items()
        if a == b:
            raise ConfigError(f"{type(self).__name__}: the {first} and {second} modalities share the name {a!r}")
        return a, b


class DigitClipsPairDataModule(GeneratedPairsDataModule):
    """The generated sets whose video is the moving digits (:func:`digit_clips`): the clips' arguments, declared once.

    Args:
        num_frames: frames per clip.
        image_size: canvas side.
        digit_size: side of the upsampled digit (below ``image_size``).
        in_chans: 1 (gray) or 3 (the gray repeated).
        val_fraction, batch_size, num_workers, seed: :class:`GeneratedPairsDataModule`'s.
    """

    @validated
    def __init__(
        self,
        num_frames: PositiveInt = 8,
        image_size: PositiveInt = 32,
        digit_size: PositiveInt = 16,
        in_chans: Literal[1, 3] = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if digit_size >= image_size:
            raise ConfigError(f"{type(self).__name__}.digit_size {digit_size} must be below image_size {image_size}")
        self.num_frames, self.image_size, self.digit_size, self.in_chans = num_frames, image_size, digit_size, in_chans


class AudioVisualDigitsDataModule(DigitClipsPairDataModule):
    """Moving digits with a sound track: scikit-learn's digits moving across a black canvas (the video plugin's
    :func:`~anymae_video.data.moving_digits`) and a generated sound per clip (:func:`digit_sounds`) as Audio-MAE's
    fbank features (the audio plugin's :func:`~anymae_audio.features.batched_fbank`). Made in memory in a few seconds,
    no download (``pip install 'anymae-multimodal[digits]'``).

    What each modality carries: the video, the digit's shape and where it goes; the sound follows the digit (its
    pitch rises with its height, its loudness to the right), plays the digit as a pitch register blurred by a per-clip
    detune (a weak cue) and a random number of notes, 1-4 (a rhythm the video lacks). Labels: ``"direction"`` (4
    classes: both modalities, the video plainly, the sound as a pitch or loudness glide among its other changes),
    ``"digit"`` (10: both, the video better) or ``"notes"`` (4: the sound only).

    Batches: ``{"<video>/video": [B, C, T, H, W], "<audio>/fbank": [B, 1, target_length, num_mel_bins],
    "<audio>/frames": [B] (real frames, as the audio plugin yields), "label": [B]}``. The clips are standardised with
    the training split's mean and std, the fbank Audio-MAE's way (``(x - mean) / (2 std)``) with the training split's.

    Args:
        label: what the class is.
        sample_rate: of the generated sound.
        duration: seconds of sound per clip (0.64 s: the 8 frames at 12.5 frames per second; 62 fbank frames).
        num_mel_bins: mel bands.
        target_length: fbank frames per clip (padded at the end, or cropped).
        pitch_jitter: the largest per-clip detune, in semitones (digits are 3 apart: above 1.5 they overlap).
        video, audio: the modality names (the batch's key prefixes).
        num_frames, image_size, digit_size, in_chans, val_fraction, batch_size, num_workers, seed:
            :class:`DigitClipsPairDataModule`'s (the seed also draws the motions and sounds).
    """

    name = "av-digits"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        label: Literal["direction", "digit", "notes"] = "direction",
        sample_rate: Annotated[int, Field(ge=4000)] = 16000,
        duration: Annotated[float, Field(gt=0.05)] = 0.64,
        num_mel_bins: PositiveInt = 64,
        target_length: PositiveInt = 64,
        pitch_jitter: Annotated[float, Field(ge=0)] = 4.5,
        video: ModalityName = "video",
        audio: ModalityName = "audio",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video, self.audio = self.modality_names(video=video, audio=audio)
        self.label, self.sample_rate, self.duration = label, sample_rate, duration
        self.num_mel_bins, self.target_length, self.pitch_jitter = num_mel_bins, target_length, pitch_jitter
        self.classes = {
            "digit": [str(i) for i in range(10)],
            "direction": list(DIRECTION_NAMES),
            "notes": [f"{n} note{'s' if n > 1 else ''}" for n in range(1, 5)],
        }[label]

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        data = _audio_visual(
            self.num_frames,
            self.image_size,
            self.digit_size,
            self.sample_rate,
            self.duration,
            self.num_mel_bins,
            self.pitch_jitter,
            self.seed,
        )
        train, val = split_indices(len(data["clips"]), self.val_fraction, self.seed)
        raw = data["raw"]
        features = Fbank(
            self.sample_rate,
            self.num_mel_bins,
            self.target_length,
            "start",
            float(raw[train].mean()),
            float(raw[train].std()),
        ).fit(raw)
        tensors = {
            f"{self.video}/video": _video(data["clips"], train, self.in_chans),
            f"{self.audio}/fbank": features["fbank"],
            f"{self.audio}/frames": features["frames"].expand(len(raw)).clone(),
            "label": data[self.label],
        }
        return _split(tensors, train, val)


# ------------------------------------------------------------------------------------------------ RGB-D scenes
def _shape_masks(dy: Tensor, dx: Tensor, radius: Tensor) -> Tensor:
    """Each of :data:`SHAPES` centred at the origin, ``radius`` in size: ``[S, len(SHAPES), H, W]`` bool from
    offsets ``[S, H, W]`` and radii ``[S, 1, 1]``."""
    ay, ax = dy.abs(), dx.abs()
    disc = dy**2 + dx**2 <= radius**2
    square = torch.maximum(ay, ax) <= 0.8 * radius
    triangle = (dy <= 0.7 * radius) & (ax <= (dy + radius) * 0.6)  # apex up (rows grow downwards)
    diamond = ay + ax <= 1.1 * radius
    return torch.stack([disc, square, triangle, diamond], dim=1)


@functools.lru_cache(maxsize=2)
def rgbd_scenes(count: int, image_size: int, num_objects: int, seed: int) -> dict[str, Tensor]:
    """``count`` scenes of ``num_objects`` flat shapes (:data:`SHAPES`) facing the camera in front of a tilted wall,
    painted far to near: ``{"rgb": [S, 3, H, W] in [0, 1], "depth": [S, 1, H, W], "shape": [S], "colour": [S]}``,
    ``shape`` and ``colour`` being the nearest object's (indices into :data:`SHAPES` and :data:`COLOURS`).

    Each object has its own shape, size, position, depth (0.2-0.8; the wall 0.9-1.1) and a colour of
    :data:`COLOURS` striped at a random angle and period. Sizes, colours and brightness do not depend on depth, so
    the image alone tells the nearest object only by its never being hidden; the depth map has no colour.
    """
    g = _generator(seed, 2)
    s, k, size = count, num_objects, image_size
    shape = torch.randint(len(SHAPES), (s, k), generator=g)
    colour = torch.randint(len(COLOURS), (s, k), generator=g)
    radius = size * (0.12 + 0.1 * torch.rand(s, k, generator=g))
    centre = radius[..., None] + torch.rand(s, k, 2, generator=g) * (size - 2 * radius[..., None])
    depth = 0.2 + 0.6 * torch.rand(s, k, generator=g)
    stripes = torch.rand(s, k, 4, generator=g)  # angle, period, phase, brightness
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = grid[:, None].expand(size, size), grid[None].expand(size, size)
    tilt = torch.rand(s, 3, generator=g)
    wall = 1.0 + 0.1 * (
        (2 * tilt[:, :1, None] - 1) * (yy / size - 0.5) + (2 * tilt[:, 1:2, None] - 1) * (xx / size - 0.5)
    )
    depth_map = wall.clone()  # [S, H, W]
    background = 0.2 + 0.3 * torch.rand(s, 3, 1, 1, generator=g)
    rgb = background * (0.9 + 0.1 * torch.cos(2 * math.pi * (xx + yy) / (4 + 8 * tilt[:, 2, None, None])))[:, None]
    palette = torch.tensor(list(COLOURS.values()))
    rows = torch.arange(s)
    for j in depth.argsort(dim=1, descending=True).T:  # painter's order: the farthest object of every scene first
        masks = _shape_masks(
            yy - centre[rows, j, 0, None, None], xx - centre[rows, j, 1, None, None], radius[rows, j, None, None]
        )
        mask = masks[rows, shape[rows, j]]  # [S, H, W]
        angle, period, phase, light = stripes[rows, j].unbind(-1)
        along = xx * torch.cos(math.pi * angle)[:, None, None] + yy * torch.sin(math.pi * angle)[:, None, None]
        texture = 0.8 + 0.2 * torch.cos(2 * math.pi * (along / (3 + 5 * period[:, None, None]) + phase[:, None, None]))
        paint = (
            palette[colour[rows, j]][:, :, None, None] * (0.85 + 0.3 * light[:, None, None, None]) * texture[:, None]
        )
        rgb = torch.where(mask[:, None], paint, rgb)
        depth_map = torch.where(mask, depth[rows, j, None, None], depth_map)
    rgb = (rgb + 0.02 * torch.randn(rgb.shape, generator=g)).clamp(0, 1)
    depth_map = depth_map + 0.005 * torch.randn(depth_map.shape, generator=g)  # sensor noise
    nearest = depth.argmin(dim=1)
    return {"rgb": rgb, "depth": depth_map[:, None], "shape": shape[rows, nearest], "colour": colour[rows, nearest]}


class RGBDepthScenesDataModule(GeneratedPairsDataModule):
    """Generated RGB-D scenes (:func:`rgbd_scenes`): a few flat shapes (disc, square, triangle, diamond) of random
    sizes, colours, stripes, positions and depths in front of a tilted wall. Made in memory in a second, no download.

    What each modality carries: the depth map, which object is nearest and its outline (but no colour); the RGB
    image, every object's colour and stripes, but not which object is nearest (sizes and colours do not depend on
    depth; only occlusion hints at it). Labels: ``"shape"`` of the nearest object (4 classes: read well from the
    depth, less well from the image) or its ``"colour"`` (6: needs both, the image alone guesses among the objects).

    Batches: ``{"<rgb>/image": [B, 3, H, W], "<depth>/image": [B, 1, H, W], "label": [B]}``, each modality
    standardised with the training split's statistics (per channel).

    Args:
        label: what the class is.
        num_scenes: scenes generated (all splits).
        image_size: image side.
        num_objects: objects per scene.
        rgb, depth: the modality names (the batch's key prefixes).
        val_fraction, batch_size, num_workers, seed: :class:`GeneratedPairsDataModule`'s (the seed also draws the
            scenes).
    """

    name = "rgbd-scenes"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        label: Literal["shape", "colour"] = "shape",
        num_scenes: Annotated[int, Field(ge=10)] = 2000,
        image_size: Annotated[int, Field(ge=16)] = 32,
        num_objects: Annotated[int, Field(ge=1, le=8)] = 3,
        rgb: ModalityName = "rgb",
        depth: ModalityName = "depth",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rgb, self.depth = self.modality_names(rgb=rgb, depth=depth)
        self.label, self.num_scenes, self.image_size, self.num_objects = label, num_scenes, image_size, num_objects
        self.classes = list(SHAPES) if label == "shape" else list(COLOURS)

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        data = rgbd_scenes(self.num_scenes, self.image_size, self.num_objects, self.seed)
        train, val = split_indices(self.num_scenes, self.val_fraction, self.seed)
        tensors = {
            f"{self.rgb}/image": _standardise(data["rgb"], train, dims=(1,)),
            f"{self.depth}/image": _standardise(data["depth"], train),
            "label": data[self.label],
        }
        return _split(tensors, train, val)


# ------------------------------------------------------------------------------------------------ digits + IMU
def imu_series(step: Tensor, num_frames: int, length: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """The readings ``[S, 6, length]`` of a simulated inertial sensor riding on each moving digit, and each clip's
    tremor class (0-3, :data:`TREMOR_RATES`), all generated at once. The series spans the clip, ``length`` readings
    evenly over its ``num_frames`` frames; units are pixels and frames.

    * Channels 0-2, the accelerometer ``(x, y, z)``: the push that sets the digit moving at ``step = (dy, dx)``
      pixels per frame, a raised-cosine pulse over the first frame (its integral is the velocity); a shaking
      (tremor) along a random direction of the image plane, 2, 4, 8 or 16 shakes per clip (each clip within
      0.4 octave of its class), 0.5-2.5 in amplitude; gravity on ``z`` (1).
    * Channels 3-5, the gyroscope: the same tremor as a rotation about a random axis.
    * Every channel: a random constant bias (+-``noise``) and white noise (std ``noise``).

    The push tells the direction of motion through the tremor, bias and noise (less surely than the video); the
    tremor's rate is in the series only; the digit's shape is in the video only.
    """
    g = _generator(seed, 3)
    s = len(step)
    t = (torch.arange(length) + 0.5) / length * num_frames  # each reading's time, in frames
    pulse = torch.where(t < 1, 1 - torch.cos(2 * math.pi * t), torch.zeros(()))  # integral 1 over the first frame
    push = step.flip(-1)[:, :, None] * pulse  # [S, 2, L]: (x, y) = (dx, dy)
    tremor = torch.randint(len(TREMOR_RATES), (s,), generator=g)
    u = torch.rand(s, 6, generator=g)
    rate = torch.tensor(TREMOR_RATES)[tremor] * 2 ** (0.8 * u[:, 0] - 0.4) / num_frames  # shakes per frame
    shake = torch.sin(2 * math.pi * (rate[:, None] * t + u[:, 1:2]))  # [S, L]
    amplitude = 0.5 + 2 * u[:, 2:3]
    heading = 2 * math.pi * u[:, 3:4]
    plane = torch.stack([torch.cos(heading), torch.sin(heading)], dim=1) * amplitude[..., None]  # [S, 2, 1]
    axis = F.normalize(torch.randn(s, 3, generator=g), dim=1) * (0.5 + 2 * u[:, 4:5])
    accelerometer = torch.cat([push + plane * shake[:, None], torch.ones(s, 1, length)], dim=1)
    gyroscope = axis[:, :, None] * torch.cos(2 * math.pi * (rate[:, None] * t + u[:, 1:2]))[:, None]
    series = torch.cat([accelerometer, gyroscope], dim=1)
    bias = noise * (2 * torch.rand(s, 6, 1, generator=g) - 1)
    return series + bias + noise * torch.randn(series.shape, generator=g), tremor


class MovingDigitsIMUDataModule(DigitClipsPairDataModule):
    """Moving digits (the video plugin's :func:`~anymae_video.data.moving_digits`) with the series of a simulated
    inertial sensor riding on each digit (:func:`imu_series`: accelerometer and gyroscope, 6 channels). Made in memory
    in a second, no download (``pip install 'anymae-multimodal[digits]'``).

    What each modality carries: the video, the digit and its direction of motion; the sensor, the push that started
    the motion (its direction, blurred by shaking, bias and noise) and the shaking's rate, which the video lacks.
    Labels: ``"direction"`` (4 classes: both modalities, the video better), ``"digit"`` (10: the video only) or
    ``"tremor"`` (4 shaking rates: the sensor only).

    Batches: ``{"<video>/video": [B, C, T, H, W], "<imu>/series": [B, 6, series_length], "label": [B]}``: the clips
    standardised with the training split's mean and std, the series per channel with the training split's.

    Args:
        label: what the class is.
        num_frames: frames per clip (at least 2: the push lasts the first frame).
        series_length: sensor readings per clip (evenly over its frames).
        noise: the sensor's noise std and largest bias (the push peaks at 2 or 4).
        video, imu: the modality names (the batch's key prefixes).
        image_size, digit_size, in_chans, val_fraction, batch_size, num_workers, seed:
            :class:`DigitClipsPairDataModule`'s (the seed also draws the motions and the readings).
    """

    name = "digits-imu"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        label: Literal["direction", "digit", "tremor"] = "direction",
        num_frames: Annotated[int, Field(ge=2)] = 8,
        series_length: Annotated[int, Field(ge=8)] = 64,
        noise: Annotated[float, Field(ge=0)] = 0.5,
        video: ModalityName = "video",
        imu: ModalityName = "imu",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_frames=num_frames, **kwargs)
        self.video, self.imu = self.modality_names(video=video, imu=imu)
        self.label, self.series_length, self.noise = label, series_length, noise
        self.classes = {
            "direction": list(DIRECTION_NAMES),
            "digit": [str(i) for i in range(10)],
            "tremor": [f"{rate:g} shakes per clip" for rate in TREMOR_RATES],
        }[label]

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        data = digit_clips(self.num_frames, self.image_size, self.digit_size, self.seed)
        series, tremor = imu_series(data["step"], self.num_frames, self.series_length, self.noise, self.seed)
        train, val = split_indices(len(series), self.val_fraction, self.seed)
        labels = {"direction": data["direction"], "digit": data["digit"], "tremor": tremor}[self.label]
        tensors = {
            f"{self.video}/video": _video(data["clips"], train, self.in_chans),
            f"{self.imu}/series": _standardise(series, train, dims=(1,)),
            "label": labels,
        }
        return _split(tensors, train, val)
