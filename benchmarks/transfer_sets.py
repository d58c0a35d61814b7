"""Transfer sets: small labelled data sets, one per modality, that our recipes were never tuned on.

Every embedded recipe (examples/<modality>/*.yaml) was chosen on one embedded set: scikit-learn's 8x8 digits
(image), the generated sounds of ``SynthSoundsDataModule`` (audio), the moving digits labelled by direction
(video), open3d's 10 primitives (point clouds) and GunPoint (series). Whether pretraining with those recipes helps
on data they were not tuned on is what the sets here measure: ``anymae table --suite examples/transfer/suite.yaml``
pretrains each with the closest recipe, unchanged but for what the data forces, and scores the encoder against
random init with 5 labels per class.

    python benchmarks/transfer_sets.py --root transfer-data

writes, with a fixed seed and nothing downloaded (images that scikit-image installs with itself; everything else
generated), each set as ``<root>/<set>/train/<class>/<file>`` and ``<root>/<set>/val/<class>/<file>``, the layout
the folder data modules read with ``labeled: true``. A set whose folder already holds every file is skipped; an
incomplete one is written again. The series sets need no files: they are aeon's bundled UCR sets ArrowHead and
ItalyPowerDemand (through ``AeonDataModule``), other than the tuning set GunPoint. :data:`SETS` says what each set
is, how it is split and why it is unlike its modality's tuning set. Beside them it writes one more *tuning* set,
``photos`` (:data:`TUNING_SETS`: crops of other photographs, cut as the textures are), on which the image recipe for
natural pictures is chosen (``benchmarks/recipes.py photos``); it is never scored as a transfer set.
"""

import argparse
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0


@dataclass(frozen=True)
class TransferSet:
    """One transfer set: its modality, classes, files per class and split, and what it is."""

    name: str
    modality: str
    classes: tuple[str, ...]
    train: int  # files per class in train/
    val: int  # files per class in val/
    extension: str
    what: str
    split: str
    unlike: str


TEXTURES = ("brick", "grass", "gravel", "text", "coffee", "chelsea", "hubble_deep_field", "immunohistochemistry")
# A second image *tuning* set, cut the same way from the other photographs scikit-image installs: recipes for natural
# images are chosen on it (carved validation), never on the textures.
PHOTOS = ("astronaut", "camera", "coins", "moon", "rocket", "retina", "clock", "cell")
VOWELS = ("a", "e", "i", "o", "u")
# Hillenbrand et al. 1995, adult male averages (Hz) of /a/ (hod), /e/ (hayed), /i/ (heed), /o/ (hoed), /u/ (who'd)
FORMANTS = {
    "a": (768, 1333, 2522),
    "e": (476, 2089, 2691),
    "i": (342, 2322, 3000),
    "o": (497, 910, 2459),
    "u": (378, 997, 2343),
}
BANDWIDTHS = (90.0, 110.0, 170.0)  # formant bandwidths (Hz), before each speaker's scaling
DRIFT_SHAPES = ("circle", "cross", "square", "triangle")
SOLIDS = ("bowl", "capsule", "dumbbell", "saddle", "spring", "table")

SETS: dict[str, TransferSet] = {
    s.name: s
    for s in (
        TransferSet(
            "textures",
            "image",
            TEXTURES,
            40,
            25,
            ".png",
            what="32x32 RGB crops of 8 photographs scikit-image installs (skimage.data: brick wall, grass, gravel, "
            "printed text, a coffee cup, a cat, the Hubble deep field, a stained tissue section; gray ones made "
            "RGB), each crop square, of a random side from 24 px to 128 px (log-uniform), resized to 32x32 with "
            "Lanczos; the class is the photograph.",
            split="by region: training crops come from the left 60% of each photograph, validation crops from the "
            "right 40%, so no validation pixel was seen in training.",
            unlike="the tuning set is scikit-learn's 8x8 gray handwritten digits (shape on a blank ground); here the "
            "class is a colour texture at an unknown scale, in RGB, from natural photographs.",
        ),
        TransferSet(
            "vowels",
            "audio",
            VOWELS,
            50,
            30,
            ".wav",
            what="synthetic spoken vowels /a e i o u/, 16 kHz mono 16-bit WAV: a glottal pulse train (pitch 90-250 "
            "Hz with 1% cycle-to-cycle jitter, a slow pitch drift and a -12 dB/octave source slope, lip radiation) "
            "through the vowel's first 3 formants (Hillenbrand et al. 1995), each speaker's formants scaled by "
            "0.85-1.25 (a vocal-tract length) and jittered by 4% apiece; 0.4-1.0 s of voicing after 0-0.2 s of "
            "silence, 20-60 ms attack and decay, a random level and a little noise; the class is the vowel.",
            split="by speaker: 30 training speakers and 12 other validation speakers (each its own pitch and "
            "vocal-tract length), so validation speakers are never heard in training.",
            unlike="the tuning set (SynthSoundsDataModule) tells 6 classes apart by pitch contour, harmonics or "
            "rhythm of tones at 200-1000 Hz, 1.28 s each; here every class has the same harmonic source at speech "
            "pitch, pitch varies without meaning, and only the spectral envelope (the formants) tells the vowel.",
        ),
        TransferSet(
            "shapes-drift",
            "video",
            DRIFT_SHAPES,
            45,  # 300 clips in all: the size the scoring-time target names
            30,
            ".mp4",
            what="16-frame 32x32 RGB clips (H.264, yuv420p, 8 fps): one of 4 shapes (circle, cross, square, "
            "triangle) of random size, rotation and colour drifting in a random direction (any angle) at a random "
            "speed (0.3-1.3 px per frame, less where the path would leave the canvas) over a gray background "
            "textured with noise, stripes or checks; the class is the shape, so appearance, not motion, is the label.",
            split="independent draws: every clip has its own shape size, colour, background, direction and speed.",
            unlike="the tuning set is gray moving digits on black, labelled by one of 4 axis-aligned directions; "
            "here the label is the shape while the motion (any direction) is a distractor, in colour, over "
            "texture.",
        ),
        TransferSet(
            "solids",
            "pointcloud",
            SOLIDS,
            40,
            20,
            ".ply",
            what="1,024-point clouds (binary PLY) sampled uniformly (open3d sample_points_uniformly) from meshes of 6 "
            "shapes: an open bowl (a hemispherical shell), a capsule (a cylinder capped by hemispheres), a dumbbell "
            "(two balls on a rod), a saddle (z = k(x^2 - y^2) on a disc), a spring (a tube along a helix) and a "
            "table (a top on 4 legs), each with random proportions, a random anisotropic scale (0.75-1.3 per axis), "
            "a random rotation in SO(3) and 0.5% jitter; the class is the shape.",
            split="independent draws: every cloud has its own proportions, scale, rotation and sampling.",
            unlike="the tuning set (ShapesDataModule) is open3d's 10 primitives (box, sphere, cylinder, cone, torus, "
            "arrow, Moebius strip, tetra-, octa- and icosahedron); none of these shapes is among them, and three "
            "(bowl, saddle, spring) are open or thin surfaces.",
        ),
    )
}
# Sets written beside the transfer sets on which recipes *are* chosen (benchmarks/recipes.py), never scored as
# transfer sets.
TUNING_SETS: dict[str, TransferSet] = {
    "photos": TransferSet(
        "photos",
        "image",
        PHOTOS,
        40,
        25,
        ".png",
        what="a second image TUNING set, not a transfer set: crops cut as the textures' are, from 8 other "
        "photographs scikit-image installs (an astronaut, a cameraman, coins, the moon, a rocket, a retina, a "
        "clock, cells); the class is the photograph. Image recipes for natural pictures are chosen on a split "
        "carved from its training crops.",
        split="by region, as the textures.",
        unlike="none of its photographs is among the textures'.",
    ),
}
WRITTEN = {**SETS, **TUNING_SETS}
# The series transfer sets, read from aeon (no files): UCR sets other than the tuning set GunPoint.
SERIES_SETS = {
    "arrowhead": "ArrowHead: outlines of arrowheads as 251-step series, 3 classes, 36 training and 175 test series "
    "(aeon's UCR split); unlike GunPoint's hand motion (2 classes, 150 steps), a shape outline.",
    "italypower": "ItalyPowerDemand: 24 hourly electricity demands of a day, 2 classes (October-March or April-"
    "September), 67 training and 1,029 test series (aeon's UCR split); short, periodic and seasonal.",
}


# ------------------------------------------------------------------------------------------------------ images
def texture_image(name: str) -> np.ndarray:
    """``skimage.data``'s image ``name`` as ``[H, W, 3]`` uint8 (gray made RGB)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def class_folder(
    folder: Path, split: str, name: str, label: int, stream: int, seed: int
) -> tuple[Path, np.random.Generator]:
    """``folder/split/name``, made, and the generator of its samples: one stream per set (``stream``), class and
    split, so a split's files do not depend on how many the other split has."""
    out = folder / split / name
    out.mkdir(parents=True, exist_ok=True)
    return out, np.random.default_rng([seed, stream, label, split == "val"])


def write_textures(
    folder: Path, counts: dict[str, int], seed: int = SEED, pictures: tuple[str, ...] = TEXTURES
) -> None:
    """``counts[split]`` crops of each photograph of ``pictures`` per split (:data:`SETS` says how)."""
    from PIL import Image

    for label, name in enumerate(pictures):
        image = texture_image(name)
        height, width = image.shape[:2]
        cut = int(0.6 * width)
        regions = {"train": (0, cut), "val": (cut, width)}
        for split, count in counts.items():
            out, rng = class_folder(folder, split, name, label, 1, seed)
            left, right = regions[split]
            largest = min(128, right - left, height)
            for i in range(count):
                side = round(math.exp(rng.uniform(math.log(24), math.log(largest))))
                x = int(rng.integers(left, right - side + 1))
                y = int(rng.integers(0, height - side + 1))
                crop = Image.fromarray(image[y : y + side, x : x + side])
                crop.resize((32, 32), Image.Resampling.LANCZOS).save(out / f"{i:04d}.png")


# ------------------------------------------------------------------------------------------------------- audio
def resonator(signal: np.ndarray, frequency: float, bandwidth: float, rate: int) -> np.ndarray:
    """A second-order formant resonator (Klatt 1980) at ``frequency`` with ``bandwidth`` (Hz), unit gain at 0 Hz."""
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth / rate)
    b1, b2 = 2 * r * math.cos(2 * math.pi * frequency / rate), -(r**2)
    return lfilter([1 - b1 - b2], [1, -b1, -b2], signal)


def vowel(name: str, pitch: float, scale: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """One synthetic vowel (:data:`SETS` says how), float32 in [-1, 1]: ``pitch`` the speaker's f0 (Hz), ``scale``
    the speaker's formant scaling."""
    from scipy.signal import lfilter

    duration = rng.uniform(0.4, 1.0)
    onset, tail = rng.uniform(0, 0.2), rng.uniform(0.02, 0.05)
    n_voiced = int(duration * rate)
    # pulse times: a slow drift (a declination and a wobble) and 1% jitter per cycle
    times, t = [], 0.0
    drift = rng.uniform(-0.1, 0.05)
    wobble, wobble_rate = rng.uniform(0, 0.03), rng.uniform(2, 6)
    while t < duration:
        times.append(t)
        f0 = pitch * (1 + drift * t / duration + wobble * math.sin(2 * math.pi * wobble_rate * t))
        t += (1 / f0) * (1 + 0.01 * rng.standard_normal())
    source = np.zeros(n_voiced)
    index = (np.asarray(times) * rate).astype(int)
    source[index[index < n_voiced]] = 1.0
    source = lfilter([1.0], [1, -2 * 0.97, 0.97**2], source)  # glottal pulse shape: -12 dB/octave
    source = np.diff(source, prepend=0.0)  # lip radiation: +6 dB/octave
    voice = source
    for frequency, bandwidth in zip(FORMANTS[name], BANDWIDTHS, strict=True):
        jittered = frequency * scale * (1 + 0.04 * rng.standard_normal())
        voice = resonator(voice, min(jittered, 0.45 * rate), bandwidth * scale, rate)
    ramp_in, ramp_out = int(rng.uniform(0.02, 0.06) * rate), int(rng.uniform(0.02, 0.06) * rate)
    envelope = np.ones(n_voiced)
    envelope[:ramp_in] = np.linspace(0, 1, ramp_in)
    envelope[n_voiced - ramp_out :] = np.linspace(1, 0, ramp_out)
    voice = voice * envelope
    voice = voice / (np.abs(voice).max() + 1e-9) * rng.uniform(0.1, 0.6)
    clip = np.zeros(int(onset * rate) + n_voiced + int(tail * rate))
    start = int(onset * rate)
    clip[start : start + n_voiced] = voice
    clip += rng.uniform(0.001, 0.004) * rng.standard_normal(len(clip))
    return np.clip(clip, -1, 1).astype(np.float32)


def speakers(count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``count`` speakers: (pitch in 90-250 Hz log-uniform, formant scaling 0.85-1.25, higher for higher voices)."""
    pitches = np.exp(rng.uniform(math.log(90), math.log(250), count))
    position = (np.log(pitches) - math.log(90)) / (math.log(250) - math.log(90))  # 0 (low voice) to 1 (high)
    scales = np.clip(0.85 + 0.3 * position + rng.uniform(-0.08, 0.08, count), 0.85, 1.25)
    return list(zip(pitches.tolist(), scales.tolist(), strict=True))


def write_vowels(folder: Path, counts: dict[str, int], seed: int = SEED) -> None:
    """``counts[split]`` clips of each vowel per split, from speakers of that split only (:data:`SETS`)."""
    import soundfile

    pools = {"train": 30, "val": 12}
    for split, count in counts.items():
        rng = np.random.default_rng([seed, 2, split == "val"])
        pool = speakers(pools[split], rng)
        for name in VOWELS:
            out = folder / split / name
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pitch, scale = pool[int(rng.integers(len(pool)))]
                pitch = float(np.clip(pitch * rng.uniform(0.92, 1.08), 90, 250))
                soundfile.write(out / f"{i:04d}.wav", vowel(name, pitch, scale, rng), 16000, subtype="PCM_16")


# ------------------------------------------------------------------------------------------------------- video
def drift_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gray ``[size, size]`` background in [0, 1]: a level with smooth noise, stripes or checks on it."""
    level = rng.uniform(0.25, 0.75)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    kind = int(rng.integers(3))
    if kind == 0:  # smooth noise: a coarse random grid, upsampled
        coarse = rng.standard_normal((6, 6))
        texture = np.kron(coarse, np.ones((size // 6 + 1, size // 6 + 1)))[:size, :size]
        texture = (texture + np.roll(texture, 2, 0) + np.roll(texture, 2, 1) + np.roll(texture, (2, 2), (0, 1))) / 4
    elif kind == 1:  # stripes at a random angle and period
        angle, period = rng.uniform(0, math.pi), rng.uniform(3, 10)
        texture = np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period)
    else:  # checks
        cell = int(rng.integers(3, 9))
        texture = (((x // cell) + (y // cell)) % 2) * 2 - 1.0
    return np.clip(level + rng.uniform(0.04, 0.12) * texture, 0, 1)


def shape_mask(shape: str, px: np.ndarray, py: np.ndarray, radius: float) -> np.ndarray:
    """Which points ``(px, py)`` (in the shape's own frame, centred) fall inside ``shape`` of size ``radius``."""
    if shape == "circle":
        return px**2 + py**2 < radius**2
    if shape == "square":
        half = radius * 0.82
        return (np.abs(px) < half) & (np.abs(py) < half)
    if shape == "cross":
        arm = radius * 0.33
        return ((np.abs(px) < arm) & (np.abs(py) < radius)) | ((np.abs(py) < arm) & (np.abs(px) < radius))
    # equilateral triangle with circumradius 1.15 radius, pointing up in its own frame
    r = radius * 1.15
    inside = py > -r / 2
    for angle in (math.pi / 6, 5 * math.pi / 6):  # the two upper edges
        nx, ny = math.cos(angle), math.sin(angle)
        inside &= px * nx + py * ny < r / 2
    return inside


def drift_clip(shape: str, rng: np.random.Generator, frames: int = 16, size: int = 32) -> np.ndarray:
    """One clip ``[frames, size, size, 3]`` uint8 of ``shape`` drifting over a textured background."""
    import colorsys

    background = drift_background(rng, size)
    radius = rng.uniform(4.5, 8.5)
    colour = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0)))
    if abs(colour @ [0.299, 0.587, 0.114] - background.mean()) < 0.15:  # too close in brightness: a darker ground
        background = np.clip(background - 0.35 if background.mean() > 0.45 else background + 0.35, 0, 1)
    rotation = rng.uniform(0, 2 * math.pi)
    angle = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(0.3, 1.3)
    margin = radius * 0.8
    for _ in range(20):  # slow down until the whole path fits on the canvas
        travel = speed * (frames - 1) * np.array([math.cos(angle), math.sin(angle)])
        low = np.maximum(margin, margin - travel)
        high = np.minimum(size - margin, size - margin - travel)
        if (high > low).all():
            break
        speed *= 0.8
    start = low + rng.uniform(size=2) * (high - low)
    sub = 4  # 4 x 4 samples per pixel: anti-aliased edges
    grid = (np.arange(size * sub) + 0.5) / sub
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    cos, sin = math.cos(rotation), math.sin(rotation)
    clip = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):  # data generation, once
        cx, cy = start + travel * t / (frames - 1)
        dx, dy = gx - cx, gy - cy
        mask = shape_mask(shape, dx * cos + dy * sin, -dx * sin + dy * cos, radius)
        alpha = mask.reshape(size, sub, size, sub).mean(axis=(1, 3))[..., None]
        frame = alpha * colour + (1 - alpha) * background[..., None]
        clip[t] = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
    return clip


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """``[T, H, W, 3]`` uint8 frames as an H.264 (yuv420p) mp4 written with PyAV."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        # x264's macroblock-tree rate control writes other bytes from run to run on frames this small (and so do
        # its threads): both off, the same clips are the same files
        stream.options = {"crf": "12", "preset": "medium", "x264-params": "no-mbtree=1"}
        stream.codec_context.thread_count = 1
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_shapes_drift(folder: Path, counts: dict[str, int], seed: int = SEED) -> None:
    """``counts[split]`` clips of each shape of :data:`DRIFT_SHAPES` per split (:data:`SETS`)."""
    for split, count in counts.items():
        for label, shape in enumerate(DRIFT_SHAPES):
            out, rng = class_folder(folder, split, shape, label, 3, seed)
            for i in range(count):
                write_mp4(out / f"{i:04d}.mp4", drift_clip(shape, rng))


# ------------------------------------------------------------------------------------------------ point clouds
def grid_mesh(points: np.ndarray, wrap_u: bool = False, wrap_v: bool = False):  # -> o3d.geometry.TriangleMesh
    """A triangle mesh over a ``[U, V, 3]`` grid of vertices (a parametric surface), closed along ``u``/``v`` when
    they wrap around."""
    import open3d as o3d

    nu, nv = points.shape[:2]
    index = np.arange(nu * nv).reshape(nu, nv)
    if wrap_u:
        index = np.concatenate([index, index[:1]], axis=0)
    if wrap_v:
        index = np.concatenate([index, index[:, :1]], axis=1)
    a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(points.reshape(-1, 3)), o3d.utility.Vector3iVector(triangles.astype(np.int32))
    )
    return mesh


def revolved(radius: np.ndarray, height: np.ndarray, segments: int = 32):  # -> o3d.geometry.TriangleMesh
    """The surface of revolution about z of the profile ``(radius[i], height[i])``."""
    phi = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    heights = np.broadcast_to(height[:, None], (len(radius), segments))
    points = np.stack([radius[:, None] * np.cos(phi), radius[:, None] * np.sin(phi), heights], axis=-1)
    return grid_mesh(points, wrap_v=True)


def make_solid(name: str, rng: np.random.Generator):  # -> o3d.geometry.TriangleMesh
    """A mesh of solid ``name`` (:data:`SOLIDS`) with random proportions."""
    import open3d as o3d

    g = o3d.geometry.TriangleMesh
    if name == "capsule":
        r, h = rng.uniform(0.25, 0.5), rng.uniform(0.6, 1.6)
        theta = np.linspace(-math.pi / 2, math.pi / 2, 24)  # bottom pole to top pole, the cylinder in between
        lower, upper = theta[theta <= 0], theta[theta >= 0]
        radius = np.concatenate([r * np.cos(lower), r * np.cos(upper)])
        height = np.concatenate([r * np.sin(lower) - h / 2, r * np.sin(upper) + h / 2])
        return revolved(radius, height)
    if name == "bowl":
        depth = rng.uniform(0.5, 1.0)  # a half sphere (1) or a shallower cap
        theta = np.linspace(0, math.acos(1 - depth), 20)
        return revolved(np.sin(theta), 1 - np.cos(theta))
    if name == "dumbbell":
        ball, gap, rod = rng.uniform(0.3, 0.5), rng.uniform(0.6, 1.4), rng.uniform(0.05, 0.12)
        mesh = g.create_cylinder(radius=rod, height=gap, resolution=16)
        for side in (-1, 1):
            sphere = g.create_sphere(radius=ball, resolution=12)
            mesh += sphere.translate((0, 0, side * (gap / 2 + ball * 0.8)))
        return mesh
    if name == "saddle":
        k = rng.uniform(0.3, 0.8)
        rho, phi = np.linspace(0, 1, 14), np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x, y = np.outer(rho, np.cos(phi)), np.outer(rho, np.sin(phi))
        return grid_mesh(np.stack([x, y, k * (x**2 - y**2)], axis=-1), wrap_v=True)
    if name == "spring":
        turns, coil, tube = rng.uniform(2.5, 5.0), rng.uniform(0.5, 1.0), rng.uniform(0.06, 0.14)
        pitch = rng.uniform(0.25, 0.5)
        s = np.linspace(0, 2 * math.pi * turns, int(60 * turns))
        v = np.linspace(0, 2 * math.pi, 10, endpoint=False)
        centre = np.stack([coil * np.cos(s), coil * np.sin(s), pitch * s / (2 * math.pi)], axis=-1)
        normal = np.stack([np.cos(s), np.sin(s), np.zeros_like(s)], axis=-1)  # towards the outside of the coil
        binormal = np.cross(normal, np.gradient(centre, axis=0))
        binormal /= np.linalg.norm(binormal, axis=-1, keepdims=True)
        offsets = np.cos(v)[None, :, None] * normal[:, None] + np.sin(v)[None, :, None] * binormal[:, None]
        return grid_mesh(centre[:, None] + tube * offsets, wrap_v=True)
    if name == "table":
        width, length, height = rng.uniform(0.8, 1.4), rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.2)
        top, leg = rng.uniform(0.05, 0.12), rng.uniform(0.06, 0.12)
        mesh = g.create_box(width, length, top).translate((0, 0, height))
        for x in (0.0, width - leg):
            for y in (0.0, length - leg):
                mesh += g.create_box(leg, leg, height).translate((x, y, 0))
        return mesh
    raise ValueError(f"unknown solid {name!r}")


def solid_points(name: str, rng: np.random.Generator, count: int = 1024) -> np.ndarray:
    """``[count, 3]`` points of a random ``name`` solid (:data:`SETS` says how), in the unit sphere."""
    import open3d as o3d

    mesh = make_solid(name, rng)
    vertices = np.asarray(mesh.vertices)
    vertices = (vertices - vertices.mean(axis=0)) * rng.uniform(0.75, 1.3, size=3)
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))  # a uniform rotation
    q = q * np.sign(np.diag(r))
    q = q if np.linalg.det(q) > 0 else -q
    mesh.vertices = o3d.utility.Vector3dVector(vertices @ q.T)
    points = np.asarray(mesh.sample_points_uniformly(number_of_points=count).points)
    points = points - points.mean(axis=0)
    points /= np.linalg.norm(points, axis=-1).max()
    return points + 0.005 * rng.standard_normal(points.shape)


def write_solids(folder: Path, counts: dict[str, int], seed: int = SEED) -> None:
    """``counts[split]`` clouds of each solid of :data:`SOLIDS` per split, binary PLY (:data:`SETS`)."""
    import open3d as o3d

    o3d.utility.random.seed(seed)
    for split, count in counts.items():
        for label, name in enumerate(SOLIDS):
            out, rng = class_folder(folder, split, name, label, 4, seed)
            for i in range(count):
                cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(solid_points(name, rng)))
                if not o3d.io.write_point_cloud(str(out / f"{i:04d}.ply"), cloud, write_ascii=False):
                    raise OSError(f"open3d could not write {out / f'{i:04d}.ply'}")


# ---------------------------------------------------------------------------------------------------- the sets
WRITERS: dict[str, Callable[[Path, dict[str, int], int], None]] = {
    "textures": write_textures,
    "photos": lambda folder, counts, seed: write_textures(folder, counts, seed, PHOTOS),
    "vowels": write_vowels,
    "shapes-drift": write_shapes_drift,
    "solids": write_solids,
}


def counts_of(name: str, train: int | None = None, val: int | None = None) -> dict[str, int]:
    """Files per class of each split of set ``name``: :data:`SETS`'s, or ``train``/``val`` when given."""
    spec = WRITTEN[name]
    return {"train": spec.train if train is None else train, "val": spec.val if val is None else val}


def complete(folder: Path, name: str, counts: dict[str, int]) -> bool:
    """Whether ``folder`` holds set ``name`` whole: every class of every split with its count of files."""
    spec = WRITTEN[name]
    for split, count in counts.items():
        split_dir = folder / split
        if not split_dir.is_dir() or sorted(p.name for p in split_dir.iterdir() if p.is_dir()) != sorted(spec.classes):
            return False
        for label in spec.classes:
            if len(list((split_dir / label).glob(f"*{spec.extension}"))) != count:
                return False
    return True


def write_set(name: str, root: Path, train: int | None = None, val: int | None = None, seed: int = SEED) -> bool:
    """Write set ``name`` to ``root/name`` unless it is complete there; returns whether it was written. The set is
    written beside the final folder and moved into place at the end, so an interrupted run leaves no partial set."""
    counts = counts_of(name, train, val)
    folder = root / name
    if complete(folder, name, counts):
        return False
    partial = root / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    WRITERS[name](partial, counts, seed)
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return True


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default="transfer-data", help="where the sets go (default: transfer-data)")
    parser.add_argument("--sets", nargs="+", choices=sorted(WRITTEN), default=list(WRITTEN), help="only these sets")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        spec, started = WRITTEN[name], time.perf_counter()
        written = write_set(name, root, seed=args.seed)
        folder = root / name
        files = {split: sum(1 for _ in (folder / split).rglob(f"*{spec.extension}")) for split in ("train", "val")}
        state = f"written in {time.perf_counter() - started:.1f} s" if written else "complete already, skipped"
        print(
            f"{name} ({spec.modality}): {len(spec.classes)} classes, {files['train']} train + {files['val']} val "
            f"{spec.extension} files ({spec.train} + {spec.val} per class), {folder_size(folder) / 1e6:.1f} MB, "
            f"{state}: {folder}"
        )
    for name, what in SERIES_SETS.items():
        print(f"{name} (timeseries): no files, read from aeon: {what.split(':')[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
