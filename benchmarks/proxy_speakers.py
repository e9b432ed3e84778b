"""A multi-speaker spoken-digit proxy: synthetic voices through real-world channels.

Data for benchmarks/speaker_independence.py: "zero".."nine" in many voices, each clip sent
through its own random channel, written as 16 kHz WAV files with a manifest whose
``group`` is the voice. Folds by group leave whole voices (with all their speed and pitch
variants) out of training, as a new speaker would be.

Voices (the groups):
  espeak-ng   one English accent + one variant each (``en-us+m1``, ``en-gb-x-rp+f2``,
              ``en-gb-scotland+Andy``, ...); a variant appears in one voice only, so a held-out
              voice's formants and breathiness are never seen in training.
  festival    Debian's English festival voices where installed (kal and ked diphone voices,
              which are cut from recordings of real people; slt HTS, a statistical voice).
Per clip: speed and pitch (espeak-ng ``-s``/``-p``; festival ``Duration_Stretch`` and a
resampling pitch/tempo shift), then a random channel:
  room reverb   convolution with exponentially decaying noise (RT60 0.15-0.7 s), p=0.5
  EQ            1-2 peaking filters of +-9 dB (RBJ biquads) and a spectral tilt, p=0.6
  noise         a real clip from half of ../shared/data/audio (music, speech, room tone) at
                5-25 dB SNR, p=0.85
  band limit    phone band (8 kHz resampling and a 300-3400 Hz band-pass), p=0.35; or a
                low-pass at 3-6 kHz, p=0.2
  codec         MP3, Ogg Vorbis or Opus round trip at a low quality, p=0.5
  placement     the word at a random offset in a 1 s clip, random level -30..-3 dBFS peak
Everything is drawn from one seeded generator per clip, so the same arguments give the
same files. This is still easier than real people: one synthesiser family per voice,
the same words said the same way, no microphones or rooms that are really different.

    PYTHONPATH=. .venv/bin/python benchmarks/proxy_speakers.py ~/.cache/seqapps/proxy

>>> from benchmarks.proxy_speakers import generate_proxy  # doctest: +SKIP
>>> manifest = generate_proxy("/tmp/proxy_data", renditions=2)  # doctest: +SKIP
>>> # manifest.csv: path,label,group,engine,speed,pitch,channel
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.espeak_digits import DIGITS, INSTALL_HINT, espeak_available

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data/audio from a clone in /work/main or a worktree in /work/wt/NAME.
NOISE_DIR = next((p for p in (ROOT.parent / "shared" / "data" / "audio", ROOT.parent.parent / "shared" / "data" / "audio")
                  if p.is_dir()), ROOT.parent / "shared" / "data" / "audio")
DEFAULT_OUT = Path.home() / ".cache" / "seqapps" / "proxy"
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
# One accent per variant: every variant (formants, breathiness) belongs to one voice only.
ESPEAK_VOICES = (
    "en-us+m1", "en-gb+m2", "en-gb-scotland+m3", "en-gb-x-rp+m4", "en-029+m5", "en-us-nyc+m6",
    "en-gb-x-gbclan+m7", "en-us+f1", "en-gb+f2", "en-gb-x-rp+f3", "en-gb-scotland+f4",
    "en-us-nyc+f5", "en-gb-x-gbcwmd+Andy", "en-us+Annie", "en-gb+belinda", "en-029+david",
    "en-us+linda", "en-gb-x-rp+max", "en-gb-scotland+paul", "en-us+steph",
)
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
SPEED_RANGE = (130, 210)  # espeak-ng words per minute (default 175)
PITCH_RANGE = (20, 80)  # espeak-ng 0..99 (default 50)


# --------------------------------------------------------------------------- voices


def festival_voices() -> list[str]:
    """The FESTIVAL_VOICES installed here (none when festival is missing)."""
    if shutil.which("text2wave") is None:
        return []
    found = {p.name for p in Path("/usr/share/festival/voices").glob("*/*") if p.is_dir()}
    return [v for v in FESTIVAL_VOICES if v in found]


def _espeak(text: str, voice: str, *, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    import soundfile

    result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                            capture_output=True, check=True)
    return soundfile.read(io.BytesIO(result.stdout), dtype="float32")


def _festival(text: str, voice: str, *, stretch: float) -> tuple[np.ndarray, int]:
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-eval",
                        f"(Parameter.set 'Duration_Stretch {stretch:.3f})", "-o", str(out)],
                       input=text.encode(), capture_output=True, check=True)
        return soundfile.read(out, dtype="float32")


def speak(text: str, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One utterance at SAMPLE_RATE, trimmed, and the speed / pitch drawn for it."""
    import librosa

    if voice in FESTIVAL_VOICES:
        stretch = float(rng.uniform(0.8, 1.3))
        audio, rate = _festival(text, voice, stretch=stretch)
        # Pitch and tempo together by resampling (a tape-speed change): +-2 semitones.
        shift = float(rng.uniform(-2.0, 2.0))
        rate = rate * 2 ** (shift / 12)
        info = {"speed": round(stretch, 3), "pitch": round(shift, 2)}
    else:
        speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
        pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
        audio, rate = _espeak(text, voice, speed=speed, pitch=pitch)
        info = {"speed": speed, "pitch": pitch}
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    trimmed, _ = librosa.effects.trim(audio, top_db=40)
    return np.ascontiguousarray(trimmed, dtype=np.float32), info


# --------------------------------------------------------------------------- channel


def _peaking(frequency: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking biquad (b, a) at SAMPLE_RATE."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * frequency / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain])
    return b / a[0], a / a[0]


def _reverb(audio: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    # -60 dB at rt60: exp(-6.9 t / rt60); direct path first, then the diffuse tail.
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    impulse = np.concatenate([[1.0], np.zeros(int(0.003 * SAMPLE_RATE)), 0.5 * tail / np.sqrt(np.sum(tail**2))])
    wet = fftconvolve(audio, impulse)[: len(audio) + len(t) // 3]
    return wet.astype(np.float32)


def _noise_clip(noise_files: Sequence[Path], rng: np.random.Generator, length: int) -> tuple[np.ndarray, str]:
    import librosa

    path = noise_files[int(rng.integers(len(noise_files)))]
    noise, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    if len(noise) == 0 or not np.any(noise):
        return np.zeros(length, np.float32), path.name
    reps = -(-length // len(noise))
    noise = np.tile(noise, reps + 1)
    start = int(rng.integers(0, len(noise) - length + 1))
    return noise[start : start + length].astype(np.float32), f"{path.parent.name}/{path.name}"


def _codec(audio: np.ndarray, name: str, quality: float) -> np.ndarray:
    import soundfile

    formats = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}
    fmt, subtype = formats[name]
    buffer = io.BytesIO()
    # compression_level 1 = smallest file, lowest quality.
    soundfile.write(buffer, audio, SAMPLE_RATE, format=fmt, subtype=subtype, compression_level=quality)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    out = np.zeros_like(audio)
    out[: min(len(audio), len(decoded))] = decoded[: len(audio)]
    return out


def apply_channel(speech: np.ndarray, rng: np.random.Generator, noise_files: Sequence[Path]) -> tuple[np.ndarray, str]:
    """The word through a random room, EQ, noise, band limit and codec; (clip, description)."""
    import librosa
    from scipy.signal import butter, lfilter, sosfilt

    steps = []
    x = speech.astype(np.float64)
    if rng.random() < 0.5:
        rt60 = float(rng.uniform(0.15, 0.7))
        x = _reverb(x, rng, rt60).astype(np.float64)
        steps.append(f"reverb{rt60:.2f}")
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(1, 3))):
            frequency, gain, q = float(rng.uniform(200, 4000)), float(rng.uniform(-9, 9)), float(rng.uniform(0.7, 2))
            x = lfilter(*_peaking(frequency, gain, q), x)
            steps.append(f"eq{frequency:.0f}:{gain:+.0f}")
        tilt = float(rng.uniform(-0.6, 0.6))  # first-order pre/de-emphasis
        x = lfilter([1.0, -tilt], [1.0], x)
    # Place the word at a random offset in a 1 s clip (longer words keep their length).
    length = max(int(CLIP_SECONDS * SAMPLE_RATE), len(x) + int(0.05 * SAMPLE_RATE))
    clip = np.zeros(length)
    offset = int(rng.integers(0, length - len(x) + 1))
    clip[offset : offset + len(x)] = x
    speech_power = np.mean(x**2) + 1e-12
    if noise_files and rng.random() < 0.85:
        noise, name = _noise_clip(noise_files, rng, length)
        snr = float(rng.uniform(5, 25))
        noise_power = np.mean(noise.astype(np.float64) ** 2)
        if noise_power > 0:
            clip += noise * np.sqrt(speech_power / (noise_power * 10 ** (snr / 10)))
            steps.append(f"noise{snr:.0f}dB:{name}")
    band = rng.random()
    if band < 0.35:
        narrow = librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=8000, res_type="soxr_hq")
        narrow = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos"), narrow)
        clip = librosa.resample(narrow, orig_sr=8000, target_sr=SAMPLE_RATE, res_type="soxr_hq")[:length]
        steps.append("phone")
    elif band < 0.55:
        cutoff = float(rng.uniform(3000, 6000))
        clip = sosfilt(butter(6, cutoff, fs=SAMPLE_RATE, output="sos"), clip)
        steps.append(f"lowpass{cutoff:.0f}")
    peak = 10 ** (float(rng.uniform(-30, -3)) / 20)
    clip = (clip * peak / (np.max(np.abs(clip)) + 1e-9)).astype(np.float32)
    if rng.random() < 0.5:
        codec = str(rng.choice(["mp3", "vorbis", "opus"]))
        quality = float(rng.uniform(0.6, 1.0))
        clip = _codec(clip, codec, quality)
        steps.append(f"{codec}{quality:.2f}")
    return np.clip(clip, -1.0, 1.0), " ".join(steps) or "clean"


# --------------------------------------------------------------------------- data set


def augmentation_noise_files(noise_dir: str | os.PathLike = NOISE_DIR) -> list[Path]:
    """The noise recordings generate_proxy does not use (for training-time noise mixing)."""
    return sorted(Path(noise_dir).rglob("*.wav"))[1::2] if Path(noise_dir).is_dir() else []


def _clip_rng(seed: int, voice: str, digit: str, k: int) -> np.random.Generator:
    # One generator per clip from its identity: a clip does not depend on the order or on
    # which other voices are generated.
    key = hashlib.sha256(f"{seed}/{voice}/{digit}/{k}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def generate_proxy(out_dir: str | os.PathLike = DEFAULT_OUT, *, voices: Sequence[str] | None = None,
                   renditions: int = 4, seed: int = 0, noise_dir: str | os.PathLike = NOISE_DIR) -> Path:
    """Write ``renditions`` clips of every digit in every voice; returns the manifest path.

    Files: ``out_dir/VOICE/DIGIT_K.wav`` and ``out_dir/manifest.csv`` with columns
    ``path,label,group,engine,speed,pitch,channel``. ``settings.json`` records the
    arguments; a second call with the same arguments reuses the files.

    Args:
        out_dir: folder to write (created); keep it outside the repository.
        voices: espeak-ng voices (``accent+variant``) and festival voice names; default
            ESPEAK_VOICES plus the installed FESTIVAL_VOICES.
        renditions: clips per (voice, digit), each with its own speed, pitch and channel.
        seed: seed of every draw.
        noise_dir: folder searched for real noise recordings (``*.wav``); none found means
            no noise mixing (recorded in settings.json).
    """
    import soundfile

    if renditions < 1:
        raise ValueError(f"`renditions` must be a positive integer. Received: renditions={renditions}")
    if not espeak_available():
        raise RuntimeError(INSTALL_HINT)
    voices = list(voices) if voices is not None else [*ESPEAK_VOICES, *festival_voices()]
    # Every other noise recording: the rest (augmentation_noise_files) stays free for
    # training-time noise mixing, so augmentation never replays the test channel's noise.
    noise_files = sorted(Path(noise_dir).rglob("*.wav"))[::2] if Path(noise_dir).is_dir() else []
    out_dir = Path(out_dir).expanduser()
    manifest = out_dir / "manifest.csv"
    settings = {"voices": voices, "renditions": renditions, "seed": seed, "digits": list(DIGITS),
                "noise_files": [f"{p.parent.name}/{p.name}" for p in noise_files], "version": 2}
    settings_file = out_dir / "settings.json"
    if manifest.is_file() and settings_file.is_file() and json.loads(settings_file.read_text()) == settings:
        return manifest
    rows = []
    for voice in voices:
        group = voice.replace("+", "_")
        (out_dir / group).mkdir(parents=True, exist_ok=True)
        for digit in DIGITS:
            for k in range(renditions):
                rng = _clip_rng(seed, voice, digit, k)
                speech, info = speak(digit, voice, rng)
                clip, channel = apply_channel(speech, rng, noise_files)
                relative = f"{group}/{digit}_{k}.wav"
                soundfile.write(out_dir / relative, clip, SAMPLE_RATE, subtype="PCM_16")
                engine = "festival" if voice in FESTIVAL_VOICES else "espeak-ng"
                rows.append([relative, digit, group, engine, info["speed"], info["pitch"], channel])
    # The manifest and settings are written last: an interrupted run is regenerated.
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group", "engine", "speed", "pitch", "channel"])
        writer.writerows(rows)
    settings_file.write_text(json.dumps(settings, indent=1))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT))
    parser.add_argument("--renditions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not espeak_available():
        print(INSTALL_HINT)
        return 1
    manifest = generate_proxy(args.out_dir, renditions=args.renditions, seed=args.seed)
    with open(manifest, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    print(f"wrote {manifest}: {len(rows)} clips, {len({r['group'] for r in rows})} voices")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
