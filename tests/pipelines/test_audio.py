"""Audio decoding, bad inputs, cache and tf.data windows; references: soundfile, librosa, numpy."""

from __future__ import annotations

import csv
import json
import os
import time

import librosa
import numpy as np
import pytest
import soundfile as sf

import pipelines.audio as audio
from pipelines.audio import audio_dataset, build_cache, decode_files, load_audio
from pipelines.cache import MANIFEST
from pipelines.report import BadInputReport
from pipelines.sources import DataSource, Example, from_directory, from_manifest
from pipelines.synthetic_audio import CLASS_NAMES, write_synthetic_audio
from pipelines.windows import n_windows
from seqapps.errors import BadMediaError

SR = 16000


def _tone(n=SR, sr=SR, f=440.0, seed=0):
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr) + 0.01 * rng.normal(size=n)).astype(np.float32)


def _source(paths, labels=None, task="classify", targets=None) -> DataSource:
    labels = labels or ["a"] * len(paths)
    examples = [
        Example(path=str(p), label=None if task == "regress" else lab,
                targets=None if targets is None else tuple(targets[i]), group=None, split=None)
        for i, (p, lab) in enumerate(zip(paths, labels, strict=True))
    ]
    if task == "regress":
        return DataSource(examples, None, [f"t{i}" for i in range(len(targets[0]))], "regress")
    return DataSource(examples, sorted(set(labels)), None, "classify")


@pytest.fixture
def bad_files(tmp_path):
    """Each bad-input case, named by the reason load_audio must give."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "zero_samples.wav", np.zeros(0, np.float32), SR)
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    sf.write(folder / "full.wav", _tone(), SR, subtype="PCM_16")
    data = (folder / "full.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "full.wav").unlink()
    (folder / "header_only.wav").write_bytes(data[:30])
    nan = _tone()
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, SR, subtype="FLOAT")
    inf = _tone()
    inf[5] = np.inf
    sf.write(folder / "inf.wav", inf, SR, subtype="FLOAT")
    return {
        folder / "empty.wav": "empty file",
        folder / "zero_samples.wav": "no audio samples",
        folder / "text.wav": "not decodable",
        folder / "truncated.wav": "truncated",
        folder / "header_only.wav": "not decodable",
        folder / "nan.wav": "non-finite",
        folder / "inf.wav": "non-finite",
        folder / "missing.wav": "file not found",
    }


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16")])
def test_lossless_formats_decode_exactly(tmp_path, fmt, subtype):
    path = tmp_path / f"clip.{fmt}"
    sf.write(path, _tone(), SR, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32")
    y = load_audio(path, sample_rate=SR)
    assert y.dtype == np.float32 and y.shape == (SR,)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(y, _tone(), atol=1e-4)  # PCM_16 quantisation only


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_lossy_formats_decode(tmp_path, fmt):
    if fmt.upper() not in sf.available_formats():
        pytest.skip(f"libsndfile cannot write {fmt}")
    path = tmp_path / f"clip.{fmt}"
    original = _tone()
    sf.write(path, original, SR)
    y = load_audio(path, sample_rate=SR)
    assert y.dtype == np.float32 and abs(len(y) - SR) <= 2048  # codec delay/padding
    # lossy, and mp3 adds a codec delay: compare at the best lag
    n = min(len(y), SR) - 2048
    best = max(np.corrcoef(y[lag : lag + n], original[:n])[0, 1] for lag in range(0, 2048, 1))
    assert best > 0.95


def test_resampling_matches_librosa_resample(tmp_path):
    native = 22050
    original = _tone(n=native, sr=native, f=1000.0)
    sf.write(tmp_path / "c.wav", original, native, subtype="FLOAT")
    y = load_audio(tmp_path / "c.wav", sample_rate=SR)
    expected = librosa.resample(original, orig_sr=native, target_sr=SR)
    assert y.shape == expected.shape == (SR,)
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = _tone(f=300.0), _tone(f=900.0, seed=1)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), SR)
    stereo, _ = sf.read(tmp_path / "s.flac", dtype="float32", always_2d=True)
    np.testing.assert_allclose(load_audio(tmp_path / "s.flac", sample_rate=SR), stereo.mean(axis=1), atol=1e-7)
    both = load_audio(tmp_path / "s.flac", sample_rate=SR, mono=False)
    assert both.shape == (2, SR)


def test_every_bad_input_is_an_error_naming_the_file(bad_files):
    for path, reason in bad_files.items():
        with pytest.raises(BadMediaError, match=reason) as info:
            load_audio(path, sample_rate=SR)
        assert info.value.path == str(path) and str(path) in str(info.value)


@pytest.mark.parametrize("executor", ["thread", "process", "serial"])
def test_bad_files_are_skipped_and_reported_valid_files_kept(tmp_path, bad_files, executor):
    good = []
    for i in range(3):
        good.append(tmp_path / f"good{i}.wav")
        sf.write(good[-1], _tone(seed=i), SR)
    paths = [good[0], *bad_files, good[1], good[2]]
    report = BadInputReport()
    waves = decode_files(paths, sample_rate=SR, report=report, executor=executor, workers=2)
    assert [w is not None for w in waves] == [True] + [False] * len(bad_files) + [True, True]
    for w, p in zip([waves[0], waves[-2], waves[-1]], [good[0], good[1], good[2]], strict=True):
        np.testing.assert_array_equal(w, sf.read(p, dtype="float32")[0])
    assert report.count == len(bad_files)
    assert {e["path"]: e["reason"] for e in report.entries}.keys() == {str(p) for p in bad_files}
    for entry in report.entries:
        assert bad_files[next(p for p in bad_files if str(p) == entry["path"])] in entry["reason"]
    saved = tmp_path / "report.json"
    report.save(saved)
    assert json.loads(saved.read_text())["count"] == len(bad_files)


def test_strict_mode_raises_naming_the_bad_file(tmp_path, bad_files):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(), SR)
    truncated = next(p for p in bad_files if p.name == "truncated.wav")
    with pytest.raises(BadMediaError, match="truncated.wav: truncated"):
        decode_files([good, truncated], sample_rate=SR, report=BadInputReport(strict=True))
    with pytest.raises(BadMediaError, match="text.wav"):
        audio_dataset(_source([good, next(p for p in bad_files if p.name == "text.wav")]), sample_rate=SR,
                      window_seconds=0.5, hop_seconds=0.5, batch_size=2)  # no report: strict


# --------------------------------------------------------------------------- cache


@pytest.fixture
def clips(tmp_path):
    """Five float WAVs whose samples all equal (clip number + 1) / 10, of varied lengths."""
    paths = []
    for i, n in enumerate([SR, 12000, 4000, 20000, 8000]):
        paths.append(tmp_path / "clips" / f"c{i}.wav")
        paths[-1].parent.mkdir(exist_ok=True)
        sf.write(paths[-1], np.full(n, (i + 1) / 10, np.float32), SR, subtype="FLOAT")
    return paths


def _counting(monkeypatch):
    calls = []
    real = audio.load_audio

    def counted(path, **kwargs):
        calls.append(os.fspath(path))
        return real(path, **kwargs)

    monkeypatch.setattr(audio, "load_audio", counted)
    return calls


def test_cache_hit_decodes_nothing_and_rebuilds_on_change(tmp_path, clips, monkeypatch):
    calls = _counting(monkeypatch)
    cache = tmp_path / "cache"
    folder, meta = build_cache(clips, cache_dir=cache, sample_rate=SR, executor="thread")
    assert len(calls) == 5 and not meta["hit"] and meta["lengths"] == [SR, 12000, 4000, 20000, 8000]
    folder2, meta2 = build_cache(clips, cache_dir=cache, sample_rate=SR)
    assert len(calls) == 5 and meta2["hit"] and folder2 == folder
    # dataset on the cache: still no decoding, and every epoch sees every window
    source = _source(clips)
    ds = audio_dataset(source, sample_rate=SR, window_seconds=0.5, hop_seconds=0.5, batch_size=4, cache_dir=cache)
    for _ in range(2):
        assert sum(int(x["inputs"].shape[0]) for x, _ in ds) == sum(n_windows(n, window=8000, hop=8000) for n in meta["lengths"])
    assert len(calls) == 5
    # a file changes (size and mtime) -> new key, everything decoded again
    sf.write(clips[2], np.full(6000, 0.3, np.float32), SR, subtype="FLOAT")
    os.utime(clips[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    folder3, meta3 = build_cache(clips, cache_dir=cache, sample_rate=SR)
    assert len(calls) == 10 and not meta3["hit"] and folder3 != folder and meta3["lengths"][2] == 6000
    # settings change -> rebuilt too
    _, meta4 = build_cache(clips, cache_dir=cache, sample_rate=8000)
    assert len(calls) == 15 and meta4["lengths"][0] == 8000


def test_a_killed_build_leaves_nothing_trusted(tmp_path, clips, monkeypatch):
    cache = tmp_path / "cache"
    import tensorflow as tf

    class Killed(BaseException):
        pass

    real_writer = tf.io.TFRecordWriter

    def dying_writer(*args, **kwargs):
        writer = real_writer(*args, **kwargs)
        writer.write(b"half a record")
        raise Killed  # like a SIGKILL in the middle of writing

    monkeypatch.setattr(tf.io, "TFRecordWriter", dying_writer)
    with pytest.raises(Killed):
        build_cache(clips, cache_dir=cache, sample_rate=SR)
    monkeypatch.undo()
    assert not list(cache.glob("audio-*"))  # no final folder appeared
    # a leftover from a run killed by the OS (no cleanup possible; named as
    # seqapps.atomic names temporaries, by a process that no longer runs) and a
    # final-looking folder without a manifest are both ignored
    key = audio.cache_key(clips, sample_rate=SR)
    leftover = cache / f".tmp-999999999-deadbeef-audio-{key}"
    leftover.mkdir()
    (cache / f"audio-{key}").mkdir()
    (cache / f"audio-{key}" / "shard-00000.tfrecord").write_bytes(b"garbage")
    calls = _counting(monkeypatch)
    folder, meta = build_cache(clips, cache_dir=cache, sample_rate=SR)
    assert len(calls) == 5 and not meta["hit"]
    assert not leftover.exists()
    assert (folder / MANIFEST).is_file()


def test_cache_hit_reports_the_bad_files_again(tmp_path, clips, bad_files):
    paths = [*clips, *bad_files]
    first, second = BadInputReport(), BadInputReport()
    build_cache(paths, cache_dir=tmp_path / "cache", sample_rate=SR, report=first)
    _, meta = build_cache(paths, cache_dir=tmp_path / "cache", sample_rate=SR, report=second)
    assert meta["hit"] and first.entries == second.entries and second.count == len(bad_files)
    with pytest.raises(BadMediaError):
        build_cache(paths, cache_dir=tmp_path / "cache", sample_rate=SR, report=BadInputReport(strict=True))


# --------------------------------------------------------------------------- tf.data


@pytest.mark.parametrize("cached", [False, True])
def test_windows_never_cross_clips_and_carry_their_labels(tmp_path, clips, bad_files, cached, capsys):
    paths = [*clips, *list(bad_files)[:2]]
    labels = ["x", "y", "x", "z", "y", "x", "z"]
    source = _source(paths, labels)
    report = BadInputReport()
    ds = audio_dataset(
        source, [6, 0, 1, 2, 3, 4, 5], sample_rate=SR, window_seconds=0.5, hop_seconds=0.25,
        batch_size=3, shuffle=False, with_clip_index=True, report=report,
        cache_dir=tmp_path / "cache" if cached else None,
    )
    printed = capsys.readouterr()
    # the summary is a message: stderr, so that stdout stays machine-readable
    assert report.count == 2 and "2 input files skipped" in printed.err and "skipped" not in printed.out
    rows = []
    for x, y in ds:
        assert x["inputs"].dtype == "float32" and x["mask"].dtype == "bool"
        for w, m, label, clip in zip(x["inputs"].numpy(), x["mask"].numpy(), y.numpy(), x["clip_index"].numpy(), strict=True):
            rows.append((int(clip), int(label)))
            value = (clip + 1) / 10  # the clip's constant sample value
            np.testing.assert_allclose(w[m], value, atol=1e-6)  # only its own samples
            assert np.all(w[~m] == 0) and m[0]
            assert label == source.class_names.index(labels[clip])
    lengths = [SR, 12000, 4000, 20000, 8000]
    expected = [c for c in range(5) for _ in range(n_windows(lengths[c], window=8000, hop=4000))]
    assert [c for c, _ in rows] == expected  # clip by clip, in order; bad clips 5, 6 gone
    assert int(ds.cardinality()) == -(-len(expected) // 3)
    if cached:
        assert list((tmp_path / "cache").glob("bad_inputs-*.json"))


def test_seeded_shuffle_is_reproducible(tmp_path, clips):
    source = _source(clips)
    kwargs = dict(sample_rate=SR, window_seconds=0.25, hop_seconds=0.25, batch_size=4, with_clip_index=True)

    def order(seed):
        ds = audio_dataset(source, seed=seed, **kwargs)
        return [int(c) for x, _ in ds for c in x["clip_index"].numpy()]

    a, b, c = order(1), order(1), order(2)
    assert a == b and a != c and sorted(a) == sorted(c)


def test_regression_targets_and_per_clip_weights(clips):
    targets = [[i, -i] for i in range(5)]
    source = _source(clips, task="regress", targets=targets)
    ds = audio_dataset(source, sample_rate=SR, window_seconds=0.5, hop_seconds=0.5, batch_size=64,
                       shuffle=False, with_clip_index=True, sample_weights="per_clip")
    x, y, w = next(iter(ds))
    clip = x["clip_index"].numpy()
    np.testing.assert_array_equal(y.numpy(), np.asarray(targets, np.float32)[clip])
    for c in range(5):
        assert w.numpy()[clip == c].sum() == pytest.approx(1.0)


def test_features_layer_is_mapped_over_batches(clips):
    from seqapps.layers.audio_frontends import LogMelSpectrogram

    layer = LogMelSpectrogram(sample_rate=SR, n_fft=512, hop_length=160, n_mels=32)
    ds = audio_dataset(_source(clips), sample_rate=SR, window_seconds=0.5, hop_seconds=0.5, batch_size=4,
                       shuffle=False, features=layer)
    x, _ = next(iter(ds))
    assert x["inputs"].shape == (4, 51, 32) and x["mask"].shape == (4, 51)
    # clip 2 has 4000 samples: its one window is half padding -> 25 valid frames
    assert x["mask"].numpy()[3].sum() == 25


def test_fit_runs_on_the_dataset(clips):
    import keras

    from seqapps.layers.audio_frontends import LogMelSpectrogram

    wave = keras.Input((8000,), name="inputs")
    mask = keras.Input((8000,), dtype="bool", name="mask")
    h = LogMelSpectrogram(sample_rate=SR, n_mels=16)(wave, mask=mask)
    h = keras.layers.GRU(4)(h)
    model = keras.Model({"inputs": wave, "mask": mask}, keras.layers.Dense(2)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = audio_dataset(_source(clips, ["a", "b", "a", "b", "a"]), sample_rate=SR, window_seconds=0.5,
                       hop_seconds=0.5, batch_size=4)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# --------------------------------------------------------------------------- synthetic data


def test_synthetic_audio_writes_real_files_and_manifest(tmp_path):
    root = write_synthetic_audio(tmp_path / "syn", n_per_class=4, sample_rate=8000, seconds=0.5, seed=3)
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    assert len(rows) == 4 * len(CLASS_NAMES) and set(rows[0]) == {"path", "label", "group"}
    assert {r["label"] for r in rows} == set(CLASS_NAMES) and len({r["group"] for r in rows}) > 1
    for r in rows:
        info = sf.info(root / r["path"])
        assert info.samplerate == 8000 and info.frames == 4000 and info.channels == 1
    source = from_manifest(root / "manifest.csv", task="classify")
    folders = from_directory(root, extensions=(".wav",))
    assert len(source.examples) == len(folders.examples) == 20
    again = write_synthetic_audio(tmp_path / "syn2", n_per_class=4, sample_rate=8000, seconds=0.5, seed=3)
    a = sf.read(root / rows[0]["path"])[0]
    np.testing.assert_array_equal(a, sf.read(again / rows[0]["path"])[0])  # same seed, same files
    # rising vs falling chirp: spectral centroid goes up vs down over the event
    for label, sign in (("rising_chirp", 1), ("falling_chirp", -1)):
        y = sf.read(root / f"{label}/{label}_000.wav")[0]
        centroid = librosa.feature.spectral_centroid(y=y, sr=8000, n_fft=256, hop_length=64)[0]
        rms = librosa.feature.rms(y=y, frame_length=256, hop_length=64)[0]
        loud = np.flatnonzero(rms > 0.3 * rms.max())
        slope = np.polyfit(loud, centroid[loud], 1)[0]
        assert np.sign(slope) == sign


# --------------------------------------------------------------------------- real data


def test_real_clips_decode(shared_data):
    folder = shared_data / "audio" / "speech_music_silence"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    paths = sorted(folder.glob("*/*.wav"))
    assert len(paths) == 120
    assert {sf.info(p).samplerate for p in paths} == {8000}
    report = BadInputReport()
    waves = decode_files(paths, sample_rate=8000, report=report)
    assert report.count == 0
    for p, w in zip(paths, waves, strict=True):
        assert w.dtype == np.float32 and w.ndim == 1 and w.shape[0] == sf.info(p).frames
        assert abs(w.shape[0] - 8000) <= 80  # one-second clips
    upsampled = load_audio(paths[0], sample_rate=16000)
    assert abs(upsampled.shape[0] - 2 * waves[0].shape[0]) <= 1
    source = from_directory(folder, extensions=(".wav",))
    ds = audio_dataset(source, sample_rate=8000, window_seconds=0.5, hop_seconds=0.5, batch_size=32, shuffle=False)
    total = sum(int(y.shape[0]) for _, y in ds)
    assert total == sum(n_windows(w.shape[0], window=4000, hop=4000) for w in waves)
