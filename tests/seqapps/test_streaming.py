"""seqapps.layers.streaming: chunked raw streaming equals one call on the whole signal.

References are independent of the stream: librosa's mel spectrogram (with the running
top_db floor written out in NumPy), or the model's own frontend on the whole signal
followed by ``model.stream`` on its features (the features-only path).
"""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers import (
    MFCC,
    ColorHistogram,
    FrameDifference,
    FrameFeatures,
    FrameMotion,
    FramePixels,
    LogMelSpectrogram,
)
from seqapps.layers.streaming import AudioRawStream, raw_stream
from seqapps.layers.streaming_video import VideoRawStream
from seqapps.tasks import SequenceClassifier, SequenceRegressor

ATOL = 1e-5


def _audio_model(*, sample_rate=16000, top_db=None, frontend=None, num_layers=2, units=8, center=True):
    frontend = frontend or LogMelSpectrogram(sample_rate=sample_rate, n_fft=512, hop_length=160, n_mels=12,
                                             top_db=top_db, center=center)
    model = SequenceClassifier(num_classes=3, input_shape=(sample_rate,), units=units, num_layers=num_layers,
                               frontend=frontend)
    # dB features scaled to about unit size, so the outputs do not saturate and show differences
    model.normalization.mean.assign(np.full(model.feature_size, -40.0, np.float32))
    model.normalization.variance.assign(np.full(model.feature_size, 400.0, np.float32))
    return model


def _random_chunks(total, rng, *, longest):
    """Chunk lengths summing to `total`: 1-sample chunks, odd lengths and long ones."""
    sizes, left = [], total
    while left:
        size = int(rng.choice([1, 1, 2, 159, 161, 333, longest, int(rng.integers(1, longest + 1))]))
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


def _run(stream, signal, sizes, *, json_state=False):
    """Concatenated outputs of the stream over `signal` [batch, n] cut into `sizes`."""
    state = stream.initial_state(signal.shape[0])
    outputs, indices, position = [], [], 0
    for size in sizes:
        result = stream.step(signal[:, position:position + size], state)
        position += size
        assert np.all(result["frame_mask"].numpy())
        outputs.append(result["probabilities"].numpy())
        indices.append(result["frame_index"].numpy())
        state = {name: result[name].numpy() for name in stream.state_spec()}
        if json_state:
            state = _through_json(state, stream)
    return np.concatenate(outputs, 1), np.concatenate(indices, 1), state


def _through_json(state, stream):
    """float32 -> JSON number -> float32, as a TF Serving REST request carries the state."""
    text = json.dumps({"inputs": {name: value.tolist() for name, value in state.items()}})
    loaded = json.loads(text)["inputs"]
    return {name: np.asarray(loaded[name], spec.dtype.as_numpy_dtype) for name, spec in stream.state_spec().items()}


def _whole(model, signal):
    """Per-frame outputs of one call on the whole signal: frontend, then model.stream."""
    features = model.frontend(signal).numpy()
    state = np.zeros((signal.shape[0], model.num_layers, model.units), np.float32)
    return model.stream(features, state)[0].numpy()


def _end_padding_frames(n, *, n_fft=512, hop=160):
    """Frames of the centred frontend whose window reaches past the last sample."""
    total = 1 + n // hop
    return [t for t in range(total) if t * hop - n_fft // 2 + n_fft > n]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_chunks_equal_the_whole_signal(seed):
    rng = np.random.default_rng(seed)
    model = _audio_model()
    stream = raw_stream(model, window_frames=None)
    n = 7001
    signal = (0.3 * rng.standard_normal((2, n))).astype(np.float32)
    sizes = _random_chunks(n, rng, longest=1200)  # longer than the 512-sample window
    assert 1 in sizes and max(sizes) > 512
    got, index, state = _run(stream, signal, sizes)
    whole = _whole(model, signal)
    tail = _end_padding_frames(n)
    # Exactly the frames whose window needs end padding are missing, nothing else.
    assert got.shape[1] == whole.shape[1] - len(tail) == stream.frames_completed(n)
    assert tail == list(range(got.shape[1], whole.shape[1])) and 1 <= len(tail) <= 2  # ceil(256 / 160)
    np.testing.assert_array_equal(index[0], np.arange(got.shape[1]))
    np.testing.assert_allclose(got, whole[:, : got.shape[1]], atol=ATOL)
    # n_fft // 2 zeros after the end are the frontend's end padding: the missing frames come out.
    flushed = stream.step(np.zeros((2, stream.flush_samples), np.float32), state)
    np.testing.assert_allclose(flushed["probabilities"].numpy(), whole[:, got.shape[1]:], atol=ATOL)


def test_one_hop_chunks_take_the_one_frame_step_and_equal_one_call():
    """Chunks of one hop (the live case) complete one frame each after the first: the step
    traced with a static frame count of 1 (no loop, no gathers). With the top_db floor, a
    pooled window, detection and running CMVN it equals one call on the whole signal."""
    from seqapps.layers.detection import DetectionSettings
    from seqapps.layers.streaming_speech import SpeechRawStream

    rng = np.random.default_rng(30)
    n = 160 * 40
    # quiet then loud: a running CMVN that lagged or leaked would show
    signal = np.concatenate([0.01 * rng.standard_normal((2, n // 2)), 0.5 * rng.standard_normal((2, n // 2))], 1)
    signal = signal.astype(np.float32)
    detection = DetectionSettings(average_window_ms=50, threshold=0.0, suppression_ms=0, minimum_count=1)
    streams = [raw_stream(_audio_model(top_db=30.0), window_frames=5, detection=detection),
               raw_stream(_cmvn_model(), window_frames=None),
               SpeechRawStream(_cmvn_model(), cmvn="ema", window_frames=3)]
    for stream in streams:
        got, index, state = _run(stream, signal, [160] * 40)
        at_once, _, state_at_once = _run(stream, signal, [n])
        np.testing.assert_array_equal(index[0], np.arange(stream.frames_completed(n)))
        np.testing.assert_allclose(got, at_once, atol=ATOL)
        for name in state:
            np.testing.assert_allclose(state[name], state_at_once[name], rtol=1e-5, atol=ATOL, err_msg=name)


def test_one_sample_chunks_and_json_state():
    rng = np.random.default_rng(3)
    model = _audio_model(num_layers=1)
    stream = raw_stream(model, window_frames=None)
    n = 1300
    signal = (0.2 * rng.standard_normal((1, n))).astype(np.float32)
    plain, _, _ = _run(stream, signal, [1] * 700 + [600])
    through_json, _, _ = _run(stream, signal, [1] * 700 + [600], json_state=True)
    np.testing.assert_array_equal(through_json, plain)  # the JSON round trip is exact
    whole = _whole(model, signal)
    np.testing.assert_allclose(plain, whole[:, : plain.shape[1]], atol=ATOL)


def test_running_top_db_floor_matches_librosa():
    """top_db: frame t is floored at the running peak over frames 0..t (librosa reference)."""
    rng = np.random.default_rng(4)
    model = _audio_model(top_db=40.0, num_layers=1)
    stream = raw_stream(model, window_frames=None)
    n = 8000
    quiet_then_loud = np.concatenate([1e-4 * rng.standard_normal(n // 2), rng.standard_normal(n // 2)])
    signal = quiet_then_loud[None].astype(np.float32)
    got, _, _ = _run(stream, signal, _random_chunks(n, rng, longest=900))
    at_once, _, _ = _run(stream, signal, [n])  # 49 frames in one call: the running max across blocks
    np.testing.assert_allclose(at_once, got, atol=ATOL)
    mel = librosa.feature.melspectrogram(y=signal[0], sr=16000, n_fft=512, hop_length=160, n_mels=12,
                                         center=True, pad_mode="constant")
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T  # [frames, mels]
    floor = np.maximum.accumulate(db.max(axis=1)) - 40.0
    features = np.maximum(db, floor[:, None])[None, : got.shape[1]].astype(np.float32)
    state = np.zeros((1, 1, model.units), np.float32)
    reference = model.stream(features, state)[0].numpy()
    np.testing.assert_allclose(got, reference, atol=ATOL)
    # and the running floor is a real choice: the per-utterance floor differs in the quiet part
    assert np.abs(got - _whole(model, signal)[:, : got.shape[1]]).max() > 1e-3


def test_rows_at_different_positions():
    """A batch whose rows started at different times gives each row its own stream."""
    rng = np.random.default_rng(5)
    model = _audio_model(num_layers=1)
    stream = raw_stream(model, window_frames=None)
    a, b = (0.3 * rng.standard_normal((2, 3000))).astype(np.float32)
    state = stream.initial_state(2)
    first = stream.step(np.stack([a[:250], a[:250]]), state)  # row 1 is reset below
    state = {name: first[name] for name in stream.state_spec()}
    outputs = [[first["probabilities"].numpy()[0]], []]
    position_a, position_b = 250, 0
    for size in (77, 1, 300, 999, 160, 500):
        chunk = np.stack([a[position_a:position_a + size], b[position_b:position_b + size]])
        result = stream.step(chunk, state, reset=np.array([False, position_b == 0]))
        mask = result["frame_mask"].numpy()
        probabilities = result["probabilities"].numpy()
        for row in range(2):
            outputs[row].append(probabilities[row][mask[row]])
        state = {name: result[name] for name in stream.state_spec()}
        position_a += size
        position_b += size
    for row, signal, length in ((0, a, position_a), (1, b, position_b)):
        got = np.concatenate(outputs[row])
        whole = _whole(model, signal[None, :length])[0]
        assert len(got) == stream.frames_completed(length)
        np.testing.assert_allclose(got, whole[: len(got)], atol=ATOL)


def test_mfcc_and_uncentred_frontends():
    rng = np.random.default_rng(6)
    signal = (0.3 * rng.standard_normal((1, 4000))).astype(np.float32)
    for frontend in (
        MFCC(sample_rate=16000, n_fft=400, hop_length=100, n_mels=20, n_mfcc=8, lifter=22.0, top_db=None),
        LogMelSpectrogram(sample_rate=16000, n_fft=256, hop_length=96, n_mels=10, center=False, log="natural"),
    ):
        model = _audio_model(frontend=frontend, num_layers=1)
        stream = raw_stream(model, window_frames=None)
        got, _, _ = _run(stream, signal, _random_chunks(4000, rng, longest=700))
        whole = _whole(model, signal)
        if not frontend.center:
            assert got.shape[1] == whole.shape[1]  # no padding: nothing held back
        np.testing.assert_allclose(got, whole[:, : got.shape[1]], atol=ATOL)


def test_real_recordings(shared_data):
    """Real 8 kHz speech and music clips played back to back, random chunks."""
    folder = shared_data / "audio" / "speech_music_silence"
    files = sorted((folder / "speech").glob("*.wav"))[:2] + sorted((folder / "music").glob("*.wav"))[:2]
    signal = np.concatenate([librosa.load(f, sr=8000)[0] for f in files])[None].astype(np.float32)
    rng = np.random.default_rng(7)
    model = _audio_model(sample_rate=8000, num_layers=1)
    stream = raw_stream(model, window_frames=None)
    got, _, _ = _run(stream, signal, _random_chunks(signal.shape[1], rng, longest=4000))
    whole = _whole(model, signal)
    assert got.shape[1] == whole.shape[1] - len(_end_padding_frames(signal.shape[1]))
    np.testing.assert_allclose(got, whole[:, : got.shape[1]], atol=ATOL)


def test_frame_times_and_description():
    model = _audio_model(num_layers=1)
    stream = raw_stream(model, window_frames=None)
    result = stream.step(np.zeros((1, 1000), np.float32), stream.initial_state(1))
    # frame t is centred on sample t * hop; frame 4 needs samples up to 4 * 160 + 255
    np.testing.assert_allclose(result["frame_times"].numpy()[0], [0.0, 0.01, 0.02, 0.03, 0.04])
    description = stream.describe()
    assert description["state"]["pending_samples"]["shape"] == [-1, 511]
    assert description["lookahead_samples"] == 255
    assert json.loads(json.dumps(description)) == description


def test_regressor_output_name():
    model = SequenceRegressor(num_targets=2, input_shape=(16000,), units=4,
                              frontend=LogMelSpectrogram(n_mels=8))
    stream = raw_stream(model, window_frames=None)
    result = stream.step(np.zeros((1, 500), np.float32), stream.initial_state(1))
    assert result["predictions"].shape == (1, 2, 2)


def test_unsupported_models_are_named():
    with pytest.raises(ValueError, match="pad_mode"):
        AudioRawStream(_audio_model(frontend=LogMelSpectrogram(n_mels=8, pad_mode="reflect")))
    features_model = SequenceClassifier(num_classes=2, input_shape=(None, 4), units=4)
    with pytest.raises(ValueError, match="model.frontend"):
        raw_stream(features_model)
    with pytest.raises(ValueError, match="batch"):
        raw_stream(_audio_model()).initial_state(-1)
    bidirectional = SequenceClassifier(num_classes=2, input_shape=(16000,), units=4, bidirectional=True,
                                       frontend=LogMelSpectrogram(n_mels=8))
    with pytest.raises(ValueError, match="bidirectional"):
        raw_stream(bidirectional)
    assert "stream_raw" not in bidirectional.signatures() and bidirectional.describe()["stream_raw"] is None


# --------------------------------------------------------------------------- video


def _video_model(frontend, shape=(24, 32, 3)):
    return SequenceClassifier(num_classes=2, input_shape=(None, *shape), units=6, frontend=frontend)


def _run_video(stream, frames, sizes, *, json_state=False):
    state = stream.initial_state(frames.shape[0])
    outputs, position = [], 0
    for size in sizes:
        result = stream.step(frames[:, position:position + size], state)
        position += size
        outputs.append(result["probabilities"].numpy())
        state = {name: result[name].numpy() for name in stream.state_spec()}
        if json_state:
            state = _through_json(state, stream)
    return np.concatenate(outputs, 1)


def test_video_chunks_with_difference_and_motion():
    rng = np.random.default_rng(8)
    frontend = FrameFeatures(layers=[FramePixels(size=(4, 4)), FrameDifference(size=(4, 4)),
                              FrameMotion(size=(8, 8), grid=(2, 2)), ColorHistogram(bins=4)])
    model = _video_model(frontend)
    stream = raw_stream(model, fps=25.0, window_frames=None)
    assert isinstance(stream, VideoRawStream)
    frames = rng.integers(0, 256, (2, 13, 24, 32, 3), dtype=np.uint8)
    whole = _whole(model, frames)
    for sizes in ([1] * 13, [3, 1, 5, 4], [13]):
        got = _run_video(stream, frames, sizes, json_state=True)
        np.testing.assert_allclose(got, whole, atol=ATOL)  # no end padding: every frame
    result = stream.step(frames[:, :2], stream.initial_state(2))
    np.testing.assert_allclose(result["frame_times"].numpy()[0], [0.0, 0.04])


def test_real_video(shared_data):
    from pipelines.video import read_clip

    frames = read_clip(shared_data / "video" / "bikes.mp4", size=(24, 32), max_frames=20)[None]
    model = _video_model(FrameFeatures(layers=[FrameDifference(size=(6, 8)), FrameMotion(size=(8, 8))]))
    stream = raw_stream(model, window_frames=None)
    got = _run_video(stream, frames, [1, 2, 7, 1, 9])
    np.testing.assert_allclose(got, _whole(model, frames), atol=ATOL)


def test_detection_inside_the_stream_equals_the_recognizer():
    from seqapps.layers.detection import DetectionSettings, Recognizer

    rng = np.random.default_rng(9)
    model = _audio_model(num_layers=1)
    model.class_names = ["_silence_", "yes", "no"]
    n = 16000
    loud = np.repeat(rng.random(n // 1600) < 0.5, 1600)  # 0.1 s of noise or near-silence
    signal = (np.where(loud, 0.5, 1e-3) * rng.standard_normal(n))[None].astype(np.float32)
    # An untrained head hardly changes its mind: centre and sharpen it on these states.
    states = model.recurrent_states(model.frontend(signal))[-1].numpy()[0]
    kernel, _ = model.head.get_weights()
    kernel = 10.0 * kernel / states.std(0)[:, None]
    model.head.set_weights([kernel, -states.mean(0) @ kernel])
    plain, _, _ = _run(raw_stream(model, window_frames=None), signal, [n])
    threshold = 0.8
    settings = DetectionSettings(average_window_ms=60, threshold=threshold, suppression_ms=40, minimum_count=3)
    stream = raw_stream(model, detection=settings, background=["_silence_"], window_frames=None)
    state, detected, position = stream.initial_state(1), [], 0
    for size in _random_chunks(n, rng, longest=2000):
        result = stream.step(signal[:, position:position + size], state)
        state = {name: result[name].numpy() for name in stream.state_spec()}
        detected.append(result["detected"].numpy()[0])
        position += size
    recognizer = Recognizer(model.class_names, background=["_silence_"], average_window_ms=60,
                            threshold=threshold, suppression_ms=40, minimum_count=3)
    events = recognizer.update(plain[0], np.arange(plain.shape[1]) * 10.0) + recognizer.finish()
    assert len(events) >= 2
    np.testing.assert_allclose(np.flatnonzero(np.concatenate(detected)) * 0.01, [e.start for e in events])


@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 100, 1025])
def test_running_maximum(length):
    from seqapps.layers.running_ops import running_max

    values = np.random.default_rng(length).standard_normal((3, length)).astype(np.float32)
    np.testing.assert_array_equal(running_max(tf.constant(values)).numpy(), np.maximum.accumulate(values, axis=1))


@pytest.mark.parametrize("hidden_units", [0, 5])
def test_window_outputs_are_the_pooled_prediction_of_the_last_window(hidden_units):
    """window_frames=W: each output is the mean-pooled head on the W states ending there
    (the reference: the model's own head, pooling="mean", on slices of the whole run).
    A linear head keeps a window of logits (classes wide), one with a hidden layer states."""
    rng = np.random.default_rng(10)
    model = SequenceClassifier(num_classes=3, input_shape=(16000,), units=8, num_layers=2,
                               hidden_units=hidden_units, frontend=LogMelSpectrogram(n_mels=12))
    model.normalization.mean.assign(np.full(12, -40.0, np.float32))
    model.normalization.variance.assign(np.full(12, 400.0, np.float32))
    n = 6000
    signal = (0.3 * rng.standard_normal((2, n))).astype(np.float32)
    assert raw_stream(model).window_frames == 1 + 16000 // 160  # "auto": the training window
    stream = raw_stream(model, window_frames=7)
    got, _, state = _run(stream, signal, _random_chunks(n, rng, longest=1500), json_state=True)
    states = model.recurrent_states(model.frontend(signal))[-1]
    reference = np.stack([model.head(states[:, max(0, t - 6):t + 1]).numpy() for t in range(got.shape[1])], 1)
    np.testing.assert_allclose(got, reference, atol=ATOL)
    kept = "window_states" if hidden_units else "window_logits"
    assert state[kept].shape == (2, 6, 8 if hidden_units else 3)


@pytest.mark.parametrize("width", [1, 4, 101])
def test_window_sums(width):
    from seqapps.layers.running_ops import window_sums

    values = np.random.default_rng(width).standard_normal((2, 130, 3)).astype(np.float32)
    reference = np.stack([values[:, t - width + 1:t + 1].sum(1) for t in range(width - 1, 130)], 1)
    np.testing.assert_allclose(window_sums(tf.constant(values), width).numpy(), reference, atol=1e-4)


# --------------------------------------------------------------------------- SpeechFrontend (running CMVN)


def _cmvn_model(*, normalization="utterance", **frontend_options):
    from seqapps.layers import SpeechFrontend

    spectral = LogMelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=12, top_db=None)
    frontend = SpeechFrontend(spectral=spectral, normalization=normalization, **frontend_options)
    return SequenceClassifier(num_classes=3, input_shape=(16000,), units=8, num_layers=2, frontend=frontend)


def _running_cmvn_reference(features, *, decay, epsilon=1e-6):
    """NumPy: frame t normalised by the (decayed, bias-corrected) mean/variance of frames 0..t,
    and the final mean and variance; float64."""
    x = features.astype(np.float64)
    frames = x.shape[1]
    lag = np.arange(frames)[:, None] - np.arange(frames)[None, :]
    weights = np.where(lag >= 0, decay ** np.maximum(lag, 0), 0.0)  # [to, from]
    gain = 1.0 if decay == 1.0 else 1.0 - decay
    sums, squares = gain * weights @ x, gain * weights @ (x * x)
    count = np.arange(1, frames + 1, dtype=np.float64)
    total = (count if decay == 1.0 else 1.0 - decay ** count)[None, :, None]
    mean = sums / total
    variance = np.maximum(squares / total - mean**2, 0.0)
    return (x - mean) / np.sqrt(variance + epsilon), mean[:, -1], variance[:, -1]


@pytest.mark.parametrize("statistic", ["cumulative", "ema"])
def test_running_cmvn_chunks_equal_the_whole_signal_and_numpy(statistic):
    """A SpeechFrontend with per-utterance CMVN streams with a running statistic: random
    chunkings (1-sample chunks, chunks longer than the window) equal one call on the whole
    signal, and equal the model on NumPy-normalised features of the frontend's own spectral
    layer; the state is the NumPy sums and survives JSON."""
    from seqapps.layers.streaming_speech import SpeechRawStream

    rng = np.random.default_rng(20)
    model = _cmvn_model()
    stream = raw_stream(model, window_frames=None) if statistic == "cumulative" else \
        SpeechRawStream(model, cmvn="ema", window_frames=None)
    assert isinstance(stream, SpeechRawStream) and stream.statistic == statistic
    n = 6001
    # quiet then loud: a running statistic that would lag or leak shows
    signal = np.concatenate([0.01 * rng.standard_normal((2, n // 2)), 0.5 * rng.standard_normal((2, n - n // 2))], 1)
    signal = signal.astype(np.float32)
    sizes = [1] * 300 + _random_chunks(n - 300, rng, longest=1200)
    got, index, state = _run(stream, signal, sizes, json_state=True)
    at_once, _, state_at_once = _run(stream, signal, [n])
    np.testing.assert_allclose(got, at_once, atol=ATOL)
    frames = got.shape[1]
    assert frames == stream.frames_completed(n)
    np.testing.assert_array_equal(index[0], np.arange(frames))
    spectral = model.frontend.spectral(signal).numpy()[:, :frames]
    decay = 1.0 if statistic == "cumulative" else 1.0 - 1.0 / (1 + 16000 // 160)
    normalised, mean, variance = _running_cmvn_reference(spectral, decay=decay)
    reference = model.stream(normalised.astype(np.float32), np.zeros((2, 2, 8), np.float32))[0].numpy()
    np.testing.assert_allclose(got, reference, atol=ATOL)
    np.testing.assert_array_equal(state["cmvn_count"], [frames, frames])
    np.testing.assert_allclose(state["cmvn_mean"], mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state["cmvn_variance"], variance, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state["cmvn_variance"], state_at_once["cmvn_variance"], rtol=1e-5, atol=1e-5)
    # per-utterance CMVN over the whole clip differs (the statistic is running, not fixed)
    assert np.abs(got - _whole(model, signal)[:, :frames]).max() > 1e-3
    description = stream.describe()
    assert description["cmvn"]["statistic"] == statistic and description["state"]["cmvn_mean"]["shape"] == [-1, 12]
    assert json.loads(json.dumps(description)) == description


def test_speech_frontend_without_cmvn_streams_as_its_spectral_layer():
    rng = np.random.default_rng(21)
    model = _cmvn_model(normalization="none")
    stream = raw_stream(model, window_frames=None)
    assert "cmvn_mean" not in stream.state_spec()
    signal = (0.3 * rng.standard_normal((1, 3000))).astype(np.float32)
    got, _, _ = _run(stream, signal, _random_chunks(3000, rng, longest=700))
    np.testing.assert_allclose(got, _whole(model, signal)[:, : got.shape[1]], atol=ATOL)


def test_rows_at_different_positions_keep_their_own_cmvn():
    rng = np.random.default_rng(22)
    model = _cmvn_model()
    stream = raw_stream(model, window_frames=None)
    a, b = (0.3 * rng.standard_normal((2, 2400))).astype(np.float32)
    state = stream.initial_state(2)
    first = stream.step(np.stack([a[:250], b[:250]]), state)
    state = {name: first[name] for name in stream.state_spec()}
    outputs = [[first["probabilities"].numpy()[0]], []]
    position_a, position_b = 250, 0
    for size in (77, 1, 300, 999, 160, 500):
        chunk = np.stack([a[position_a:position_a + size], b[position_b:position_b + size]])
        result = stream.step(chunk, state, reset=np.array([False, position_b == 0]))
        mask = result["frame_mask"].numpy()
        for row in range(2):
            outputs[row].append(result["probabilities"].numpy()[row][mask[row]])
        state = {name: result[name] for name in stream.state_spec()}
        position_a += size
        position_b += size
    for row, signal, length in ((0, a, position_a), (1, b, position_b)):
        got = np.concatenate(outputs[row])
        alone, _, _ = _run(stream, signal[None, :length], [length])
        np.testing.assert_allclose(got, alone[0], atol=ATOL)


@pytest.mark.parametrize(("options", "match"), [
    ({"placement": "trim"}, "whole clip"), ({"placement": "centre"}, "whole clip"), ({"deltas": 1}, "future frames"),
])
def test_unstreamable_speech_frontends_are_refused(options, match):
    from seqapps.errors import ConfigError

    model = _cmvn_model(**options)
    with pytest.raises(ConfigError, match=match):
        raw_stream(model)
    assert model.describe()["stream_raw"] is None and "stream_raw" not in model.signatures()
