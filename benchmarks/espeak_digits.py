"""Spoken digits "zero".."nine" from espeak-ng, in many voices, as 16 kHz WAV files.

Data for benchmarks/accuracy_audio.py. espeak-ng is a Debian package, not a project
dependency: ``sudo apt-get install espeak-ng`` (``brew install espeak-ng`` on macOS).

A *voice* here is an espeak-ng voice variant (``m1``..``m7``, ``f1``..``f5``, named
variants such as ``steph``): its pitch, formants and breathiness stay the same whatever
English dialect it speaks. The manifest's ``group`` column is the variant, so a split by
group keeps every clip of a held-out voice (in every dialect) out of training. Each clip
draws its dialect (``en-gb``, ``en-us``, ...), speed (``-s``) and pitch (``-p``) from a
seeded generator, so the same arguments always give the same files.

    PYTHONPATH=. .venv/bin/python benchmarks/espeak_digits.py bench_out/espeak_digits

>>> from benchmarks.espeak_digits import generate_digits  # doctest: +SKIP
>>> manifest = generate_digits("bench_out/espeak_digits", renditions=3)  # doctest: +SKIP
>>> # manifest.csv: path,label,group,dialect,speed,pitch
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Human-sounding variants only (the list also holds robots, whispers and effects).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7",
    "f1", "f2", "f3", "f4", "f5",
    "Andy", "Annie", "belinda", "david", "linda", "max", "paul", "steph",
)
DIALECTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
SPEED_RANGE = (140, 200)  # words per minute; espeak-ng's default is 175
PITCH_RANGE = (25, 75)  # 0..99; espeak-ng's default is 50
INSTALL_HINT = (
    "espeak-ng is needed for the spoken-digit data and is not installed. Install it with "
    "`sudo apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)."
)


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on PATH."""
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, *, voice: str, speed: int, pitch: int, sample_rate: int = 16000) -> np.ndarray:
    """One utterance as float32 [samples] at ``sample_rate``, silence trimmed at both ends.

    espeak-ng writes 22.05 kHz WAV to stdout; it is resampled with librosa (soxr_hq) and
    trimmed with ``librosa.effects.trim(top_db=40)`` so that the clip is the word, not
    espeak-ng's fixed pauses (which would make every clip end the same way).

    Example:
    >>> y = synthesize("seven", voice="en-us+f2", speed=175, pitch=50)  # doctest: +SKIP
    >>> 0.3 < len(y) / 16000 < 1.0  # doctest: +SKIP
    True
    """
    import librosa
    import soundfile

    if not espeak_available():
        raise RuntimeError(INSTALL_HINT)
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True, check=True,
    )
    audio, native_rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    audio = librosa.resample(audio, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
    trimmed, _ = librosa.effects.trim(audio, top_db=40)
    return np.ascontiguousarray(trimmed, dtype=np.float32)


def generate_digits(
    out_dir: str | os.PathLike,
    *,
    variants: Sequence[str] = VARIANTS,
    dialects: Sequence[str] = DIALECTS,
    renditions: int = 3,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write ``renditions`` clips of every digit in every variant; returns the manifest path.

    Files: ``out_dir/VARIANT/DIGIT_K.wav`` and ``out_dir/manifest.csv`` with columns
    ``path,label,group,dialect,speed,pitch`` (path relative to ``out_dir``, label the
    digit word, group the variant). ``out_dir/settings.json`` records the arguments; a
    second call with the same arguments reuses the files.

    Args:
        out_dir: folder to write (created).
        variants: espeak-ng variants, one voice each (the ``group``).
        dialects: English voices the dialect of each clip is drawn from.
        renditions: clips per (variant, digit), each with its own dialect, speed, pitch.
        sample_rate: rate of the written files in Hz.
        seed: seed of the dialect / speed / pitch draws.

    Example:
    >>> manifest = generate_digits("/tmp/digits", variants=("m1", "f1"), renditions=1)  # doctest: +SKIP
    """
    import soundfile

    if renditions < 1:
        raise ValueError(f"`renditions` must be a positive integer. Received: renditions={renditions}")
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.csv"
    settings = {
        "variants": list(variants), "dialects": list(dialects), "renditions": renditions,
        "sample_rate": sample_rate, "seed": seed, "speed_range": SPEED_RANGE,
        "pitch_range": PITCH_RANGE, "digits": list(DIGITS), "version": 1,
    }
    settings_file = out_dir / "settings.json"
    if manifest.is_file() and settings_file.is_file():
        if json.loads(settings_file.read_text()) == json.loads(json.dumps(settings)):
            return manifest
    if not espeak_available():
        raise RuntimeError(INSTALL_HINT)
    rng = np.random.default_rng(seed)
    rows = []
    for variant in variants:
        (out_dir / variant).mkdir(parents=True, exist_ok=True)
        for digit in DIGITS:
            for k in range(renditions):
                dialect = str(rng.choice(dialects))
                speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
                pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
                audio = synthesize(digit, voice=f"{dialect}+{variant}", speed=speed, pitch=pitch,
                                   sample_rate=sample_rate)
                relative = f"{variant}/{digit}_{k}.wav"
                soundfile.write(out_dir / relative, audio, sample_rate, subtype="PCM_16")
                rows.append([relative, digit, variant, dialect, speed, pitch])
    # The manifest and settings are written last: an interrupted run is regenerated.
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group", "dialect", "speed", "pitch"])
        writer.writerows(rows)
    settings_file.write_text(json.dumps(settings, indent=1))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="bench_out/espeak_digits")
    parser.add_argument("--renditions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not espeak_available():
        print(INSTALL_HINT)
        return 1
    manifest = generate_digits(args.out_dir, renditions=args.renditions, seed=args.seed)
    print(f"wrote {manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
