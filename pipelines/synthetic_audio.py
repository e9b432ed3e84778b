"""Synthetic demo audio written as real WAV files: five sound classes, pseudo-speakers.

The classes differ in time structure and spectrum, with variation inside each class, so
a small recurrent model can learn them but a single frame cannot always tell them apart
(the two chirps cover the same band and differ only in direction):

- ``rising_chirp``: an exponential sweep upwards (with a weak 2nd harmonic);
- ``falling_chirp``: the same sweep downwards;
- ``pulse_train``: short decaying tone bursts at a regular rate;
- ``harmonic_tone``: a steady tone with harmonics and slight vibrato;
- ``noise_bursts``: a few band-passed noise bursts at irregular times.

Each clip also varies in pitch, event duration, onset, gain and background noise. Each
clip belongs to one of ``n_groups`` pseudo-speakers (``group`` column), which shift the
pitch and tilt the spectrum (a one-pole low-pass) so group-aware splits matter.

>>> from pipelines.synthetic_audio import write_synthetic_audio
>>> root = write_synthetic_audio("demo_audio", n_per_class=4)  # doctest: +SKIP
>>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
['falling_chirp', 'harmonic_tone', 'manifest.csv', 'noise_bursts', 'pulse_train', 'rising_chirp']
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from seqapps.atomic import atomic_path
from seqapps.errors import invalid_argument

__all__ = ["CLASS_NAMES", "synthesize_clip", "write_synthetic_audio"]

CLASS_NAMES = ("rising_chirp", "falling_chirp", "pulse_train", "harmonic_tone", "noise_bursts")


def _envelope(n: int, sample_rate: int) -> np.ndarray:
    ramp = max(1, min(n // 4, int(0.01 * sample_rate)))  # 10 ms fades avoid clicks
    env = np.ones(n)
    env[:ramp] = np.linspace(0.0, 1.0, ramp)
    env[-ramp:] = np.linspace(1.0, 0.0, ramp)
    return env


def _chirp(n: int, sample_rate: int, rng, pitch: float, rising: bool) -> np.ndarray:
    t = np.arange(n) / sample_rate
    duration = n / sample_rate
    low = rng.uniform(300.0, 600.0) * pitch
    high = low * rng.uniform(2.5, 4.0)
    start, stop = (low, high) if rising else (high, low)
    # exponential sweep: f(t) = start * (stop / start) ** (t / duration)
    ratio = np.log(stop / start)
    phase = 2 * np.pi * start * duration / ratio * (np.exp(ratio * t / duration) - 1.0)
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _pulse_train(n: int, sample_rate: int, rng, pitch: float) -> np.ndarray:
    rate = rng.uniform(6.0, 15.0)
    carrier = rng.uniform(800.0, 2000.0) * pitch
    pulse_len = int(rng.uniform(0.015, 0.03) * sample_rate)
    t = np.arange(pulse_len) / sample_rate
    pulse = np.sin(2 * np.pi * carrier * t) * np.exp(-t / (pulse_len / sample_rate / 4))
    out = np.zeros(n)
    first = int(rng.uniform(0, 1.0 / rate) * sample_rate)
    for start in range(first, n - pulse_len, max(1, int(sample_rate / rate))):
        out[start : start + pulse_len] += pulse
    return out


def _harmonic_tone(n: int, sample_rate: int, rng, pitch: float) -> np.ndarray:
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(150.0, 400.0) * pitch
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate
    return sum(np.sin(k * phase) / k for k in range(1, 6))


def _noise_bursts(n: int, sample_rate: int, rng, pitch: float) -> np.ndarray:
    out = np.zeros(n)
    centre = rng.uniform(1000.0, 4000.0) * pitch
    for _ in range(rng.integers(2, 5)):
        length = min(n, int(rng.uniform(0.05, 0.15) * sample_rate))
        start = int(rng.integers(0, max(1, n - length)))
        noise = rng.normal(size=length)
        spectrum = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
        spectrum *= np.exp(-0.5 * ((freqs - centre) / (0.25 * centre)) ** 2)  # band-pass
        out[start : start + length] += np.fft.irfft(spectrum, length) * _envelope(length, sample_rate)
    return out


def synthesize_clip(
    label: str, *, sample_rate: int = 16000, seconds: float = 1.0, rng=None, pitch: float = 1.0, tilt: float = 0.0
) -> np.ndarray:
    """One clip of class ``label`` -> float32 ``[round(seconds * sample_rate)]`` in [-1, 1].

    ``pitch`` scales every frequency (a speaker's register); ``tilt`` in [0, 1) is the
    coefficient of a one-pole low-pass applied to the event (a speaker's timbre).

    >>> clip = synthesize_clip("rising_chirp", rng=np.random.default_rng(0))
    >>> clip.shape, clip.dtype
    ((16000,), dtype('float32'))
    """
    if label not in CLASS_NAMES:
        raise invalid_argument("label", label, "one of " + ", ".join(CLASS_NAMES))
    rng = rng if rng is not None else np.random.default_rng()
    total = int(round(seconds * sample_rate))
    event_len = max(1, int(total * rng.uniform(0.45, 0.85)))
    onset = int(rng.integers(0, total - event_len + 1))
    if label in ("rising_chirp", "falling_chirp"):
        event = _chirp(event_len, sample_rate, rng, pitch, rising=label == "rising_chirp")
    elif label == "pulse_train":
        event = _pulse_train(event_len, sample_rate, rng, pitch)
    elif label == "harmonic_tone":
        event = _harmonic_tone(event_len, sample_rate, rng, pitch)
    else:
        event = _noise_bursts(event_len, sample_rate, rng, pitch)
    if tilt:
        from scipy.signal import lfilter

        event = lfilter([1.0 - tilt], [1.0, -tilt], event)
    event = event * _envelope(event_len, sample_rate)
    event /= max(np.max(np.abs(event)), 1e-9)
    clip = np.zeros(total)
    clip[onset : onset + event_len] = event * 10 ** (rng.uniform(-14.0, -2.0) / 20)
    signal_rms = np.sqrt(np.mean(clip[onset : onset + event_len] ** 2))
    snr_db = rng.uniform(10.0, 30.0)
    clip += rng.normal(size=total) * signal_rms * 10 ** (-snr_db / 20)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def write_synthetic_audio(
    out_dir: str | os.PathLike,
    *,
    n_per_class: int = 30,
    sample_rate: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    n_groups: int = 6,
) -> Path:
    """Write ``n_per_class`` WAV clips per class into ``out_dir/<class>/`` and a manifest.

    ``out_dir/manifest.csv`` has columns ``path,label,group`` (paths relative to
    ``out_dir``; no split column: splits are made by ``pipelines.sources.split_examples``).
    Files are 16-bit PCM mono; the same seed writes the same files.

    Returns:
        ``Path(out_dir)``.

    Example:
    >>> root = write_synthetic_audio(tmp_dir, n_per_class=2, seconds=0.5)  # doctest: +SKIP
    >>> (root / "manifest.csv").read_text().splitlines()[0]  # doctest: +SKIP
    'path,label,group'
    """
    import soundfile

    for name, value in (("n_per_class", n_per_class), ("sample_rate", sample_rate), ("n_groups", n_groups)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise invalid_argument(name, value, "a positive integer")
    if not seconds or seconds <= 0:
        raise invalid_argument("seconds", seconds, "a positive number")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    group_rng = np.random.default_rng([seed, 9999])
    groups = [
        {"name": f"speaker_{g:02d}", "pitch": group_rng.uniform(0.8, 1.25), "tilt": group_rng.uniform(0.0, 0.6)}
        for g in range(n_groups)
    ]
    rows = []
    for class_id, label in enumerate(CLASS_NAMES):
        (root / label).mkdir(exist_ok=True)
        for i in range(n_per_class):
            rng = np.random.default_rng([seed, class_id, i])
            group = groups[(i + class_id) % n_groups]
            clip = synthesize_clip(
                label,
                sample_rate=sample_rate,
                seconds=seconds,
                rng=rng,
                pitch=group["pitch"] * rng.uniform(0.9, 1.1),
                tilt=group["tilt"],
            )
            relative = f"{label}/{label}_{i:03d}.wav"
            soundfile.write(root / relative, clip, sample_rate, subtype="PCM_16")
            rows.append({"path": relative, "label": label, "group": group["name"]})
    with atomic_path(root / "manifest.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return root
