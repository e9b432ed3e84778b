"""The speech frontend of the settings: deltas and MFCC against librosa, CMVN against NumPy,
8 kHz without empty mel filters, placement of a short word, and an export of a model with
every augmentation on whose graph holds no trace of them."""

from __future__ import annotations

import keras
import librosa
import numpy as np
import pytest

from seqapps.errors import ConfigError
from seqapps.layers.audio_frontends import LogMelSpectrogram
from seqapps.layers.deltas import Deltas
from seqapps.layers.speech_frontend import CentreSpeech, SpeechFrontend
from seqapps.runs.settings import resolve_settings
from seqapps.runs.speech import make_speech_frontend

RNG = np.random.default_rng(5)


def _spectral(layer):
    """The mel layer itself, also inside a SpeechFrontend (the audio default adds CMVN)."""
    return getattr(layer, "spectral", layer)


@pytest.mark.parametrize("order,width", [(1, 9), (2, 9), (1, 3), (2, 5)])
def test_deltas_match_librosa(order, width):
    x = RNG.normal(size=(3, 30, 6)).astype("float32")
    y = np.asarray(Deltas(order=order, width=width)(x))
    assert y.shape == (3, 30, 6 * (order + 1))
    np.testing.assert_array_equal(y[..., :6], x)
    for b in range(3):
        for k in range(1, order + 1):
            reference = librosa.feature.delta(x[b].T, width=width, order=k, axis=-1).T
            np.testing.assert_allclose(y[b, :, 6 * k: 6 * (k + 1)], reference, atol=1e-5)


def test_deltas_of_a_clip_shorter_than_the_filter_are_finite():
    y = np.asarray(Deltas(order=2, width=9)(RNG.normal(size=(1, 3, 2)).astype("float32")))
    assert y.shape == (1, 3, 6) and np.all(np.isfinite(y))


def test_mfcc_frontend_with_deltas_and_cmvn_matches_librosa_and_numpy():
    rate = 8000
    wave = RNG.normal(size=rate).astype("float32") * 0.1
    settings = resolve_settings("audio", overrides={"data": {
        "sample_rate": rate, "n_fft": 256, "hop_length": 80, "n_mels": 32, "features": "mfcc",
        "n_mfcc": 13, "deltas": 2, "normalization": "utterance"}})
    layer, shape = make_speech_frontend(settings["data"])
    assert shape == (rate,)
    out = np.asarray(layer(wave[None]))[0]
    mfcc = librosa.feature.mfcc(y=wave, sr=rate, n_mfcc=13, n_fft=256, hop_length=80, n_mels=32,
                                center=True, pad_mode="constant", htk=False)
    stacked = np.concatenate([mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]).T
    expected = (stacked - stacked.mean(0)) / np.sqrt(stacked.var(0) + 1e-6)
    np.testing.assert_allclose(out, expected, atol=2e-3)


@pytest.mark.parametrize("n_fft,n_mels", [(512, 40), (256, 40), (512, 64)])
def test_no_mel_filter_is_empty_at_8_khz(n_fft, n_mels):
    settings = resolve_settings("audio", overrides={"data": {"sample_rate": 8000, "n_fft": n_fft, "n_mels": n_mels,
                                                             "hop_length": 80}})
    layer, _ = make_speech_frontend(settings["data"])
    filters = np.asarray(_spectral(layer)._mel_constant).T  # [n_mels, bins]
    assert filters.shape[0] == n_mels
    assert np.all(filters.max(axis=1) > 0)
    # the highest filter ends at the Nyquist frequency, not above it
    frequencies = librosa.fft_frequencies(sr=8000, n_fft=n_fft)
    assert frequencies[np.flatnonzero(filters[-1])].max() <= 4000


def test_fmax_above_nyquist_is_clamped_with_a_warning_and_too_many_mels_refused():
    data = resolve_settings("audio", overrides={"data": {"sample_rate": 8000, "fmax": 8000.0}})["data"]
    with pytest.warns(UserWarning, match="Nyquist"):
        layer, _ = make_speech_frontend(data)
    assert _spectral(layer).fmax == 4000.0
    with pytest.raises(ConfigError, match="`n_mels`.*empty"):
        LogMelSpectrogram(sample_rate=8000, n_fft=128, n_mels=128)
    with pytest.raises(ConfigError, match="`data.features`"):
        make_speech_frontend({**data, "features": "mel"})


def test_default_settings_keep_the_plain_log_mel_frontend():
    # The audio default is per-utterance CMVN (chosen on held-out voices); without it the
    # new settings at their defaults still give the plain LogMelSpectrogram.
    layer, _ = make_speech_frontend(resolve_settings("audio", overrides={"data": {"normalization": "none"}})["data"])
    assert type(layer) is LogMelSpectrogram


def test_audio_default_frontend_normalises_each_utterance():
    layer, _ = make_speech_frontend(resolve_settings("audio")["data"])
    assert layer.normalization == "utterance"
    wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype("float32")
    out = np.asarray(layer(wave[None]))[0]  # [frames, mels]: zero mean, unit variance per mel band
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-2)


def _word_clip(rate=16000, start=0.05, length=0.4):
    wave = np.zeros(rate, "float32")
    begin = int(start * rate)
    t = np.arange(int(length * rate)) / rate
    wave[begin:begin + t.size] = 0.5 * np.sin(2 * np.pi * 300 * t)
    return wave, begin, begin + t.size


def test_centre_moves_a_short_word_to_the_middle_and_trim_masks_the_rest():
    wave, begin, end = _word_clip()
    centred = np.asarray(CentreSpeech()(wave[None]))[0]
    loud = np.flatnonzero(np.abs(centred) > 1e-3)
    assert abs((loud[0] + loud[-1]) / 2 - 8000) < 200
    shift = loud[0] - np.flatnonzero(np.abs(wave) > 1e-3)[0]
    np.testing.assert_allclose(centred, np.roll(wave, shift), atol=1e-6)  # moved, not changed

    spectral = dict(sample_rate=16000, n_fft=512, hop_length=160, n_mels=16)
    trim = SpeechFrontend(spectral=LogMelSpectrogram(**spectral), placement="trim")
    frame_mask = np.asarray(trim.compute_mask(wave[None], np.ones((1, 16000), bool)))[0]
    trimmed = librosa.effects.trim(wave, top_db=40, frame_length=512, hop_length=128)[1]
    valid = np.flatnonzero(frame_mask)
    assert abs(valid[0] * 160 - trimmed[0]) <= 160 and abs(valid[-1] * 160 - trimmed[1]) <= 320
    centre = SpeechFrontend(spectral=LogMelSpectrogram(**spectral), placement="centre")
    assert np.all(np.asarray(centre.compute_mask(wave[None], np.ones((1, 16000), bool))))


def test_speech_frontend_round_trips_through_a_keras_file(tmp_path):
    from seqapps.tasks import SequenceClassifier

    data = resolve_settings("audio", overrides={"data": {"n_mels": 16, "features": "mfcc", "n_mfcc": 8,
                                                         "deltas": 1, "normalization": "utterance",
                                                         "placement": "centre"},
                                                "augmentation": {"gain_db": 3.0}})
    frontend, shape = make_speech_frontend(data["data"], augmentation=data["augmentation"])
    model = SequenceClassifier(num_classes=2, input_shape=shape, frontend=frontend, units=4)
    model.compile()
    wave = RNG.normal(size=(2, 16000)).astype("float32")
    inputs = {"inputs": wave, "mask": np.ones((2, 16000), bool)}
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-5)
    config, loaded_config = model.frontend.get_config(), loaded.frontend.get_config()
    assert loaded_config.pop("spectral")["config"]["n_mfcc"] == config.pop("spectral")["config"]["n_mfcc"] == 8
    assert loaded_config == config


# Ops that only random or training-time code would put into a graph.
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "StatelessRandomUniformV2", "StatelessRandomNormalV2",
              "StatelessRandomGetKeyCounter", "StatelessRandomUniformFullIntV2", "RandomUniformInt",
              "StatelessRandomGetKeyCounterAlg", "StatelessRandomUniformIntV2", "StatelessRandomGetAlg",
              "RngReadAndSkip", "StatefulUniform", "StatefulStandardNormalV2", "StatelessTruncatedNormalV2",
              "TruncatedNormal", "Multinomial", "StatelessMultinomial", "RandomShuffle"}


def _graph_ops(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    ops, constants = set(), []
    for meta_graph in saved.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        ops |= {node.op for node in nodes}
        constants += [n for n in nodes if n.op == "Const"]
    return ops, constants


def test_export_of_a_model_with_every_augmentation_holds_none_of_them(tmp_path):
    from pipelines.sources import DataSource
    from seqapps.export import export_model
    from seqapps.runs.train import build_model

    noise = RNG.normal(size=12345).astype("float32")
    settings = resolve_settings("audio", overrides={
        "data": {"n_mels": 16, "normalization": "utterance", "deltas": 2, "placement": "trim"},
        "augmentation": {"noise_dir": "unused-here", "gain_db": 6.0, "time_shift_seconds": 0.1, "speed": [0.9, 1.1],
                         "tempo": [0.8, 1.2]},
        "model": {"units": 4, "spec_augment": {}},
    })
    source = DataSource([], ["a", "b"], None, "classify")
    model = build_model("audio", "classify", settings, source, noise=noise)
    names = {type(layer).__name__ for layer in model.frontend.augmentations}
    assert names == {"RandomGain", "TimeShift", "SpeedPerturbation", "BackgroundNoise"}
    assert type(model.frontend.tempo).__name__ == "TempoPerturbation"
    model.compile()
    # training really is random: two training calls differ
    wave = RNG.normal(size=(2, 16000)).astype("float32")
    assert not np.allclose(np.asarray(model({"inputs": wave}, training=True)),
                           np.asarray(model({"inputs": wave}, training=True)))
    path = export_model(model, base_dir=tmp_path, name="augmented", warmup_examples=0,
                        preprocessing={"kind": "audio", "sample_rate": 16000, "window_samples": 16000,
                                       "hop_samples": 8000})
    ops, constants = _graph_ops(path)
    assert "Rfft" in ops or "RFFT" in ops  # the frontend is there
    assert not ops & RANDOM_OPS, ops & RANDOM_OPS
    # the 12345 noise samples are not baked in as a constant, nor saved as a variable
    sizes = [int(np.prod([d.size for d in c.attr["value"].tensor.tensor_shape.dim])) for c in constants]
    assert 12345 not in sizes
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    assert sum(f.stat().st_size for f in (path / "variables").iterdir()) < 12345 * 4
    # the augmentations' random-number states exist in training but are not served
    seeds = [v for v in model.variables if "seed_generator_state" in v.path]
    assert len(seeds) >= 6  # 4 waveform augmentations, tempo and SpecAugment
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    saved = [k for k in reader.get_variable_to_shape_map() if k.startswith("model_variables/")
             and k.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(model.variables) - len(seeds)
    out = loaded.signatures["serving_default"](**{list(loaded.signatures["serving_default"]
                                                       .structured_input_signature[1])[0]: wave})
    reference = np.asarray(model({"inputs": wave, "mask": np.ones_like(wave, bool)}, training=False))
    np.testing.assert_allclose(out["probabilities"].numpy(), reference, atol=1e-4)


def test_in_training_the_trim_mask_follows_the_shifted_word():
    from seqapps.layers.augmentation import TimeShift

    wave, begin, end = _word_clip(start=0.4, length=0.2)
    waves = np.repeat(wave[None], 8, axis=0)
    frontend = SpeechFrontend(spectral=LogMelSpectrogram(sample_rate=16000, n_mels=16),
                              augmentations=[TimeShift(max_shift=6000, seed=3)], placement="trim")
    features, mask = frontend.features_and_mask(waves, np.ones_like(waves, bool), training=True)
    features, mask = np.asarray(features), np.asarray(mask)
    level = features.max(axis=2)  # dB of the loudest band per frame
    shifted = 0
    for row in range(8):
        assert level[row][mask[row]].mean() > level[row][~mask[row]].mean() + 20  # the mask is on the word
        shifted += abs(np.flatnonzero(mask[row])[0] * 160 - begin) > 1000
    assert shifted >= 4  # and the word really moved


def test_files_recorded_at_8_khz_get_fmax_at_their_nyquist(tmp_path):
    import soundfile

    from pipelines.sources import from_directory
    from seqapps.runs.speech import fit_band_to_files

    (tmp_path / "a").mkdir()
    soundfile.write(tmp_path / "a" / "x.wav", np.zeros(800, "float32"), 8000)
    source = from_directory(tmp_path, extensions=(".wav",))
    settings = resolve_settings("audio")  # sample_rate 16000
    with pytest.warns(UserWarning, match="recorded at 8000 Hz"):
        assert fit_band_to_files(settings, source) == 4000.0
    layer, _ = make_speech_frontend(settings["data"])
    frequencies = librosa.fft_frequencies(sr=16000, n_fft=512)
    filters = np.asarray(_spectral(layer)._mel_constant).T
    assert frequencies[np.flatnonzero(filters.max(axis=0))].max() <= 4000  # nothing above 4 kHz
    assert np.all(filters.max(axis=1) > 0)
    explicit = resolve_settings("audio", overrides={"data": {"fmax": 6000.0}})
    assert fit_band_to_files(explicit, source) is None and explicit["data"]["fmax"] == 6000.0
    native = resolve_settings("audio", overrides={"data": {"sample_rate": 8000}})
    assert fit_band_to_files(native, source) is None
