"""seqapps.runs_streaming: detect on long files block by block, evaluate, listen (fake microphone)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile

from seqapps.errors import BadMediaError, ConfigError
from seqapps.layers import LogMelSpectrogram
from seqapps.layers.detection import DetectionSettings, Recognizer
from seqapps.runs.detect import detect_file, evaluate_streaming, listen, load_streaming_model
from seqapps.tasks import SequenceClassifier

RATE = 16000
SETTINGS = DetectionSettings(average_window_ms=200, threshold=0.8, suppression_ms=300, minimum_count=4)


def _loudness_model():
    """A hand-set classifier: "burst" when the frame is loud, "_silence_" otherwise."""
    model = SequenceClassifier(num_classes=2, class_names=["_silence_", "burst"], input_shape=(RATE,), units=2,
                               frontend=LogMelSpectrogram(sample_rate=RATE, n_mels=16), dropout=0.0,
                               pooling="last")  # last: the stream outputs the head on each frame's state
    model.normalization.mean.assign(np.full(16, -40.0, np.float32))
    model.normalization.variance.assign(np.full(16, 400.0, np.float32))
    layer = model.recurrent_layers[0]
    layer.set_weights([np.full((16, 2), 2.0 / 16, np.float32), np.zeros((2, 2), np.float32),
                       np.zeros(2, np.float32)])
    model.head.set_weights([np.array([[-5.0, 5.0], [0.0, 0.0]], np.float32), np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    model = _loudness_model()
    model.save(folder / "model.keras")
    (folder / "labels.json").write_text(json.dumps(model.class_names))
    return folder


def _long_recording(path, *, seconds, bursts, rate=RATE):
    """Near-silence with 0.4 s noise bursts starting at `bursts` (seconds)."""
    rng = np.random.default_rng(0)
    signal = 1e-3 * rng.standard_normal(int(seconds * rate))
    for start in bursts:
        begin = int(start * rate)
        signal[begin:begin + int(0.4 * rate)] += 0.5 * rng.standard_normal(int(0.4 * rate))
    soundfile.write(path, signal.astype(np.float32), rate)
    return signal.astype(np.float32)


def test_detect_file_matches_the_whole_signal_and_any_block_size(run_dir, tmp_path):
    bursts = [1.0, 4.2, 7.75, 12.0]
    signal = _long_recording(tmp_path / "long.wav", seconds=15, bursts=bursts)
    model = load_streaming_model(run_dir)
    results = [detect_file(model, tmp_path / "long.wav", settings=SETTINGS, block_seconds=b) for b in (0.013, 1.0, 20.0)]
    found = [[(e.label, e.start, e.end) for e in r.events] for r in results]
    assert found[0] == found[1] == found[2]
    assert [label for label, *_ in found[0]] == ["burst"] * 4
    # the reference: the Keras model on the whole file (frontend, then model.stream), then Recognizer
    keras_model = _loudness_model()
    padded = np.concatenate([signal, np.zeros(256, np.float32)])[None]
    features = keras_model.frontend(padded).numpy()
    probabilities = keras_model.stream(features, np.zeros((1, 1, 2), np.float32))[0].numpy()[0]
    recognizer = Recognizer(["_silence_", "burst"], background=["_silence_"], average_window_ms=200,
                            threshold=0.8, suppression_ms=300, minimum_count=4)
    events = recognizer.update(probabilities, np.arange(len(probabilities)) * 10.0) + recognizer.finish()
    assert [(e.label, e.start, e.end) for e in events] == found[0]
    starts = [start for _, start, _ in found[0]]
    np.testing.assert_allclose(starts, bursts, atol=0.15)  # fires within 150 ms of each onset
    assert results[0].duration_seconds == 15.0


def test_resampled_stereo_file(run_dir, tmp_path):
    rate = 44100
    mono = _long_recording(tmp_path / "mono.wav", seconds=6, bursts=[2.0], rate=rate)
    soundfile.write(tmp_path / "stereo.flac", np.stack([mono, mono], axis=1), rate)
    result = detect_file(load_streaming_model(run_dir), tmp_path / "stereo.flac", settings=SETTINGS)
    assert [e.label for e in result.events] == ["burst"]
    assert result.events[0].start == pytest.approx(2.0, abs=0.15)
    assert result.duration_seconds == pytest.approx(6.0, abs=1e-3)


def test_evaluate_streaming(run_dir, tmp_path):
    _long_recording(tmp_path / "a.wav", seconds=10, bursts=[1.0, 5.0])
    _long_recording(tmp_path / "b.wav", seconds=10, bursts=[3.0, 8.0])
    # b's second burst is not in the ground truth: its detection is a false accept
    (tmp_path / "events.csv").write_text(
        "path,label,start,end\na.wav,burst,1.0,1.4\na.wav,burst,5.0,5.4\nb.wav,burst,3.0,3.4\n")
    metrics = evaluate_streaming(run_dir, tmp_path / "events.csv", settings=SETTINGS)
    assert (metrics["events"], metrics["matched"], metrics["wrong"], metrics["false"]) == (3, 3, 0, 1)
    assert metrics["hours"] == pytest.approx(20 / 3600)
    assert metrics["false_accepts_per_hour"] == pytest.approx(180.0)
    assert metrics["miss_rate"] == 0.0
    assert 0 < metrics["latency_ms"]["median_from_start"] < 150
    (tmp_path / "bad.csv").write_text("path,label,start,end\na.wav,seven,1.0,1.4\n")
    with pytest.raises(ConfigError, match="seven"):
        evaluate_streaming(run_dir, tmp_path / "bad.csv")


class _FakeMicrophone:
    """Plays a signal back through sounddevice.InputStream's interface."""

    def __init__(self, signal, **settings):
        self.signal, self.settings, self.position = signal, settings, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, frames):
        block = self.signal[self.position:self.position + frames]
        self.position += frames
        block = np.pad(block, (0, frames - len(block)))
        return block[:, np.newaxis], False


def test_listen_with_a_fake_microphone(run_dir, tmp_path):
    signal = _long_recording(tmp_path / "mic.wav", seconds=5, bursts=[1.5, 3.5])
    opened = {}

    def open_input(**settings):
        opened.update(settings)
        return _FakeMicrophone(signal, **settings)

    printed = []
    events = listen(run_dir, settings=SETTINGS, max_seconds=5, open_input=open_input, on_event=printed.append)
    assert opened["samplerate"] == RATE and opened["channels"] == 1 and opened["blocksize"] == 1600
    assert [e.label for e in events] == ["burst", "burst"] and printed == events
    np.testing.assert_allclose([e.start for e in events], [1.5, 3.5], atol=0.15)


def test_errors_name_the_file(run_dir, tmp_path):
    with pytest.raises(BadMediaError, match="missing.wav"):
        detect_file(load_streaming_model(run_dir), tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(BadMediaError, match="text.wav"):
        detect_file(load_streaming_model(run_dir), tmp_path / "text.wav")
    with pytest.raises(ConfigError, match="neither a run folder"):
        load_streaming_model(tmp_path)


# --------------------------------------------------------------------------- the files users have

CODED = {
    # name: (file name, codec, container, encoder rate, channels)
    "aac named .mp3": ("phone.mp3", "aac", "mp4", 8000, 1),
    "opus named .ogg": ("voice.ogg", "libopus", "ogg", RATE, 1),
    "webm opus stereo": ("browser.webm", "libopus", "webm", 48000, 2),
}


def _coded_recording(folder, case, *, seconds=10, bursts=(1.0, 4.2, 7.5)):
    from pipelines.encode import write_audio

    name, codec, container, rate, channels = CODED[case]
    signal = 0.6 * _long_recording(folder / f"{name}.source.wav", seconds=seconds, bursts=bursts, rate=rate)
    write_audio(folder / name, np.stack([signal] * channels), sample_rate=rate, codec=codec, container=container)
    return folder / name


@pytest.mark.parametrize("case", list(CODED))
def test_detect_reads_lossy_files_as_training_does(run_dir, tmp_path, case):
    from pipelines.audio import load_audio

    path = _coded_recording(tmp_path, case)
    # The same audio as a WAV at the model's rate: what training decodes from the coded file.
    soundfile.write(tmp_path / "same.wav", load_audio(path, sample_rate=RATE), RATE, subtype="FLOAT")
    model = load_streaming_model(run_dir)
    coded = detect_file(model, path, settings=SETTINGS, block_seconds=0.7)
    wav = detect_file(model, tmp_path / "same.wav", settings=SETTINGS, block_seconds=0.7)
    assert [(e.label, e.start, e.end) for e in coded.events] == [(e.label, e.start, e.end) for e in wav.events]
    np.testing.assert_allclose([e.score for e in coded.events], [e.score for e in wav.events], atol=1e-6)
    assert coded.duration_seconds == wav.duration_seconds == pytest.approx(10.0, abs=0.15)  # codec padding
    assert [e.label for e in coded.events] == ["burst"] * 3
    np.testing.assert_allclose([e.start for e in coded.events], [1.0, 4.2, 7.5], atol=0.2)


def test_detect_gives_the_true_reason(run_dir, tmp_path):
    from pipelines.encode import write_video

    model = load_streaming_model(run_dir)
    os.symlink(tmp_path / "deleted.wav", tmp_path / "moved.wav")
    with pytest.raises(BadMediaError) as info:
        detect_file(model, tmp_path / "moved.wav")
    assert info.value.reason == f"dangling link (points to {tmp_path / 'deleted.wav'}, which does not exist)"
    write_video(tmp_path / "screen.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=10)
    with pytest.raises(BadMediaError) as info:
        detect_file(model, tmp_path / "screen.mp4")
    assert info.value.reason == "no audio stream (the file holds: video h264)"
    soundfile.write(tmp_path / "none.wav", np.zeros(0, np.float32), RATE)
    with pytest.raises(BadMediaError, match="no audio samples"):
        detect_file(model, tmp_path / "none.wav")


def test_cli_detect_on_phone_and_browser_files_without_library_noise(run_dir, tmp_path, capfd):
    from pipelines.encode import write_audio, write_video
    from seqapps.cli import main

    files = [_coded_recording(tmp_path, case, seconds=6, bursts=[2.0]) for case in CODED]
    signal = _long_recording(tmp_path / "real.wav", seconds=6, bursts=[2.0])
    write_audio(tmp_path / "real.mp3", 0.6 * signal, sample_rate=RATE, codec="libmp3lame")
    os.symlink(tmp_path / "deleted.wav", tmp_path / "moved.wav")
    write_video(tmp_path / "screen.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=10)
    files += [tmp_path / "real.mp3", tmp_path / "moved.wav", tmp_path / "screen.mp4"]
    capfd.readouterr()
    options = ["--threshold", "0.8", "--window-ms", "200", "--suppression-ms", "300", "--json"]
    assert main(["detect", str(run_dir), *map(str, files), *options]) == 1  # two files are bad
    out, err = capfd.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]  # stdout is JSON only
    events = {}
    for line in lines:
        events.setdefault(os.path.basename(line["file"]), []).append(line.get("label") or line["error"])
    assert events == {"phone.mp3": ["burst"], "voice.ogg": ["burst"], "browser.webm": ["burst"],
                      "real.mp3": ["burst"],
                      "moved.wav": [f"dangling link (points to {tmp_path / 'deleted.wav'}, which does not exist)"],
                      "screen.mp4": ["no audio stream (the file holds: video h264)"]}
    # libsndfile's mpg123 used to print its notes on the AAC named .mp3
    for noise in ("Note: Illegal", "mpg123", "resync", "Header missing", "Traceback"):
        assert noise not in err


def test_evaluate_streaming_on_an_aac_file(run_dir, tmp_path):
    path = _coded_recording(tmp_path, "aac named .mp3", bursts=[1.0, 5.0])
    (tmp_path / "events.csv").write_text(f"path,label,start,end\n{path.name},burst,1.0,1.4\n{path.name},burst,5.0,5.4\n")
    metrics = evaluate_streaming(run_dir, tmp_path / "events.csv", settings=SETTINGS)
    assert (metrics["events"], metrics["matched"], metrics["false"]) == (2, 2, 0)
    assert metrics["files"][0]["seconds"] == pytest.approx(10.0, abs=0.15)


# --------------------------------------------------------------------------- command line


def test_cli_detect_json_and_text(run_dir, tmp_path, capsys):
    from seqapps.cli import main

    _long_recording(tmp_path / "long.wav", seconds=8, bursts=[1.0, 5.0])
    options = ["--threshold", "0.8", "--window-ms", "200", "--suppression-ms", "300"]
    assert main(["detect", str(run_dir), str(tmp_path / "long.wav"), "--json", *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]  # stdout is JSON only
    assert [e["label"] for e in events] == ["burst", "burst"]
    assert set(events[0]) == {"file", "label", "start", "end", "score"}
    assert main(["detect", str(run_dir), str(tmp_path / "long.wav"), str(tmp_path / "missing.wav"), *options]) == 1
    out = capsys.readouterr().out
    assert "events in 8.0 s" in out and "missing.wav\terror: file not found" in out


def test_cli_detect_prints_decoder_warnings_on_stderr_and_keeps_stdout_json(run_dir, tmp_path, capsys):
    """A scratched MP3 decodes (FFmpeg skips the bad bytes) with notes: they are named on
    stderr, with the file, and stdout stays one JSON object per event."""
    from pipelines.encode import write_audio
    from seqapps.cli import main

    signal = 0.6 * _long_recording(tmp_path / "source.wav", seconds=8, bursts=[1.0, 5.0])
    write_audio(tmp_path / "full.mp3", signal[np.newaxis], sample_rate=RATE, codec="libmp3lame")
    data = (tmp_path / "full.mp3").read_bytes()
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    (tmp_path / "scratched.mp3").write_bytes(data[:middle] + noise + data[middle + 600:])
    options = ["--threshold", "0.8", "--window-ms", "200", "--suppression-ms", "300"]
    assert main(["detect", str(run_dir), str(tmp_path / "scratched.mp3"), "--json", *options]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["label"] for line in captured.out.splitlines()] == ["burst", "burst"]
    warnings = [line for line in captured.err.splitlines() if "warning:" in line]
    assert warnings and all(line.startswith(f"{tmp_path / 'scratched.mp3'}: warning: ") for line in warnings)


def test_cli_evaluate_streaming(run_dir, tmp_path, capsys):
    from seqapps.cli import main

    _long_recording(tmp_path / "a.wav", seconds=6, bursts=[2.0])
    (tmp_path / "events.csv").write_text("path,label,start,end\na.wav,burst,2.0,2.4\n")
    argv = ["evaluate", str(run_dir), "--streaming", str(tmp_path / "events.csv"), "--threshold", "0.8",
            "--window-ms", "200", "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["matched"], metrics["false"], metrics["miss_rate"]) == (1, 0, 0.0)
    assert main(["evaluate", str(run_dir), "--streaming", str(tmp_path / "none.csv")]) == 2
    assert "events CSV" in capsys.readouterr().err


def test_cli_listen_through_sounddevice(run_dir, tmp_path, capsys, monkeypatch):
    import sys
    import types

    from seqapps.cli import main

    signal = _long_recording(tmp_path / "mic.wav", seconds=4, bursts=[1.0])
    fake = types.ModuleType("sounddevice")
    fake.InputStream = lambda **settings: _FakeMicrophone(signal, **settings)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    assert main(["listen", str(run_dir), "--seconds", "4", "--threshold", "0.8", "--window-ms", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    label, start, _end, _score = lines[0].split("\t")
    assert len(lines) == 1 and label == "burst" and 1.0 <= float(start) <= 1.2


# --------------------------------------------------------------------------- exported SavedModel


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from seqapps.export import export_model

    base = tmp_path_factory.mktemp("saved_models")
    export_model(_loudness_model(), base_dir=base, name="bursts", warmup_examples=2,
                 preprocessing={"kind": "audio", "sample_rate": RATE, "window_samples": RATE, "hop_samples": RATE // 2})
    return base / "bursts"


def test_saved_model_detects_as_the_run(run_dir, exported, tmp_path):
    _long_recording(tmp_path / "long.wav", seconds=8, bursts=[1.0, 4.5])
    from_run = detect_file(load_streaming_model(run_dir), tmp_path / "long.wav", settings=SETTINGS)
    from_export = detect_file(load_streaming_model(exported), tmp_path / "long.wav", settings=SETTINGS)
    assert [e.label for e in from_export.events] == ["burst", "burst"]
    assert [(e.label, e.start, e.end) for e in from_export.events] == [(e.label, e.start, e.end) for e in from_run.events]
    np.testing.assert_allclose([e.score for e in from_export.events], [e.score for e in from_run.events], atol=1e-5)


def test_saved_model_state_through_json_and_warmup_records(exported):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    model = load_streaming_model(exported)
    rng = np.random.default_rng(3)
    signal = (0.3 * rng.standard_normal((1, 5000))).astype(np.float32)
    plain, through_json = model.initial_state(1), model.initial_state(1)
    for start, stop in ((0, 1), (1, 700), (700, 5000)):
        out_plain, plain = model.step(signal[:, start:stop], plain)
        out_json, through_json = model.step(signal[:, start:stop], through_json)
        # as TF Serving's REST API carries it: float32 -> JSON number -> float32
        text = json.dumps({name: value.tolist() for name, value in through_json.items()})
        through_json = {name: np.asarray(value, model.description["state"][name]["dtype"])
                        for name, value in json.loads(text).items()}
        np.testing.assert_array_equal(out_json["probabilities"], out_plain["probabilities"])
    version = sorted(p for p in exported.iterdir() if p.name.isdigit())[-1]
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in
               tf.data.TFRecordDataset(str(version / "assets.extra" / "tf_serving_warmup_requests"))]
    raw_requests = [r.predict_log.request for r in records if r.predict_log.request.model_spec.signature_name == "stream_raw"]
    assert len(raw_requests) == 2
    function = tf.saved_model.load(str(version)).signatures["stream_raw"]
    for request in raw_requests:  # each warm-up request is a valid call
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        assert set(inputs) == {"waveform", "reset", *model.state_names}
        result = function(**{key: tf.constant(value) for key, value in inputs.items()})
        assert result["probabilities"].shape[0] == inputs["waveform"].shape[0]


def test_default_cmvn_audio_model_exports_stream_raw_and_detects(tmp_path, capsys):
    """The audio model seqapps.runs builds with per-utterance CMVN (a SpeechFrontend) serves
    stream_raw (running CMVN in the state), and `seqapps detect` runs on the run and on the
    export alike."""
    from pipelines.sources import DataSource
    from seqapps.cli import main
    from seqapps.export import export_model
    from seqapps.runs.settings import resolve_settings
    from seqapps.runs.train import build_model

    settings = resolve_settings("audio", overrides={"data": {"normalization": "utterance"}, "model": {"units": 8}})
    model = build_model("audio", "classify", settings, DataSource([], ["_silence_", "burst"], None, "classify"))
    assert type(model.frontend).__name__ == "SpeechFrontend"
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "labels.json").write_text(json.dumps(model.class_names))
    path = export_model(model, base_dir=tmp_path / "saved_models", name="cmvn", warmup_examples=1,
                        preprocessing={"kind": "audio", "sample_rate": RATE, "window_samples": RATE,
                                       "hop_samples": RATE // 2})
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["stream_raw"]["cmvn"]["statistic"] == "cumulative"
    assert {"cmvn_count", "cmvn_mean", "cmvn_variance"} <= set(card["stream_raw"]["state"])
    signal = _long_recording(tmp_path / "long.wav", seconds=6, bursts=[1.0, 3.5])
    from_run, from_export = load_streaming_model(run), load_streaming_model(path.parent)
    state_run, state_export = from_run.initial_state(1), from_export.initial_state(1)
    for start, stop in ((0, 1), (1, 1601), (1601, 50000), (50000, len(signal))):
        out_run, state_run = from_run.step(signal[None, start:stop], state_run)
        out_export, state_export = from_export.step(signal[None, start:stop], state_export)
        np.testing.assert_allclose(out_export["probabilities"], out_run["probabilities"], atol=1e-5)
    # a low threshold so that the untrained model fires: the events of run and export agree
    options = ["--threshold", "0.3", "--window-ms", "200", "--suppression-ms", "500", "--json"]
    found = []
    for source in (run, path.parent):
        assert main(["detect", str(source), str(tmp_path / "long.wav"), *options]) == 0
        found.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])  # stdout is JSON only
    assert found[0] and [e["label"] for e in found[0]] == [e["label"] for e in found[1]]
    np.testing.assert_allclose([e["score"] for e in found[0]], [e["score"] for e in found[1]], atol=1e-5)
