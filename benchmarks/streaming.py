"""Live audio: how fast is stream_raw, how fast is `seqapps detect`, and how well does it detect?

1. latency  one 10 ms chunk (160 samples) through stream_raw at batch 1 (p50, p90), beside the
            features-only `stream` step (model.stream in one tf.function) on the one frame the
            chunk completes, interleaved, in-process and through the exported SavedModel (with
            an empty signature of the same inputs and outputs: the cost of the call itself); then
            32 streams in one batch (10 ms and 1 s chunks): cost per second of audio per
            stream. Two models, 12 classes, untrained (weights do not change the time):
            "defaults", what `seqapps train audio` builds (16 kHz, 40 mels, per-utterance CMVN
            streamed as a running statistic, Recurrent(128) relu), and "logmel", the log-mel
            model with its top_db floor that part 3 trains. Target: p50 <= 1 ms.
2. detect   real-time factor of detect_file (blocks of 2 s read by content, pipelines.decode_stream; the stream; Recognizer) on
            long WAV files of two lengths, each in a fresh process, with its peak resident
            memory: flat in file length is the target, and RTF >= 200.
3. accuracy a keyword model (the default model; 5 synthetic keyword classes of
            pipelines.synthetic_audio mixed onto real background, plus a "_background_" class
            of real music and speech from ../shared/data, resampled to 16 kHz; training
            keywords shifted up to 0.25 s, backgrounds cut across two clips) trained on
            one half of the background recordings; on held-out clips (keywords on the other
            half) the clip accuracy with the per-utterance top_db floor (training) and with
            the stream's running floor; then long recordings built from held-out background
            with keywords every 3-8 s: false accepts per hour, miss rate, wrong, latency, at
            several thresholds (TF RecognizeCommands, 500 ms window, suppression 500 ms).

    PYTHONPATH=. .venv/bin/python benchmarks/streaming.py           # ~10 min
    PYTHONPATH=. .venv/bin/python benchmarks/streaming.py --quick   # ~3 min

Writes bench_out/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RATE = 16000
SHARED = Path(os.environ.get("SEQAPPS_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _default_model(num_classes=12, class_names=None):
    """The log-mel model (top_db floor, no CMVN) the accuracy part trains."""
    from seqapps.layers import LogMelSpectrogram
    from seqapps.tasks import SequenceClassifier

    return SequenceClassifier(num_classes=num_classes, class_names=class_names, input_shape=(RATE,), units=128,
                              frontend=LogMelSpectrogram(sample_rate=RATE, n_fft=512, hop_length=160, n_mels=40))


def _settings_model(num_classes=12):
    """What `seqapps train audio` builds with today's defaults (running CMVN when streamed)."""
    from types import SimpleNamespace

    from seqapps.runs.settings import resolve_settings
    from seqapps.runs.train import build_model

    source = SimpleNamespace(class_names=[f"c{i}" for i in range(num_classes)], task="classify")
    return build_model("audio", "classify", resolve_settings("audio"), source)


LATENCY_MODELS = {"defaults": _settings_model, "logmel": _default_model}


# --------------------------------------------------------------------------- 1. latency
def latency(repeats: int, make_model=_settings_model) -> dict:
    import tensorflow as tf

    from seqapps.layers.streaming import raw_stream

    model = make_model()
    stream = raw_stream(model)
    raw = stream.function
    features_step = tf.function(model.stream, autograph=False, input_signature=[
        tf.TensorSpec([None, None, 40]), tf.TensorSpec([None, 1, 128]), tf.TensorSpec([None], tf.bool)]
    ).get_concrete_function()
    result = {}
    for batch, seconds in ((1, 0.01), (32, 0.01), (32, 1.0)):
        samples = int(seconds * RATE)
        state = {k: tf.constant(v) for k, v in stream.initial_state(batch).items()}
        # start mid-stream, so the chunk completes exactly one frame per 160 samples
        warm = raw(waveform=tf.zeros([batch, 4000]), reset=tf.zeros([batch], tf.bool), **state)
        state = {k: warm[k] for k in stream.state_spec()}
        chunk = tf.constant(np.random.default_rng(0).standard_normal((batch, samples)).astype(np.float32) * 0.1)
        reset = tf.zeros([batch], tf.bool)
        frames = tf.zeros([batch, samples // 160, 40])
        recurrent = tf.zeros([batch, 1, 128])
        raw_times, feature_times = [], []
        calls = repeats if samples < 1000 else max(10, repeats // 20)
        for _ in range(5):
            raw(waveform=chunk, reset=reset, **state)
            features_step(frames, recurrent, reset)
        for _ in range(calls):  # interleaved: machine noise hits both alike
            start = time.perf_counter()
            raw(waveform=chunk, reset=reset, **state)
            middle = time.perf_counter()
            features_step(frames, recurrent, reset)
            raw_times.append(1000.0 * (middle - start))
            feature_times.append(1000.0 * (time.perf_counter() - middle))
        key = f"b{batch}_{int(seconds * 1000)}ms"
        result[key] = {
            "stream_raw_p50_ms": float(np.median(raw_times)), "stream_raw_p90_ms": float(np.percentile(raw_times, 90)),
            "stream_p50_ms": float(np.median(feature_times)), "stream_p90_ms": float(np.percentile(feature_times, 90)),
            "stream_raw_ms_per_audio_second_per_stream": float(np.median(raw_times)) / (batch * seconds),
        }
    return result


def exported_latency(repeats: int, make_model=_settings_model) -> dict:
    """The same 10 ms chunk through the exported SavedModel's stream_raw and stream
    signatures (what TF Serving runs), batch 1, interleaved."""
    import tensorflow as tf

    from seqapps.export import export_model

    with tempfile.TemporaryDirectory() as base:
        path = export_model(make_model(), base_dir=base, name="kws", warmup_examples=0,
                            preprocessing={"kind": "audio", "sample_rate": RATE, "window_samples": RATE,
                                           "hop_samples": RATE // 2})
        loaded = tf.saved_model.load(str(path))
        raw, features = loaded.signatures["stream_raw"], loaded.signatures["stream"]
        layout = json.loads((path / "assets" / "model_card.json").read_text())["stream_raw"]
        state = {name: tf.zeros([1, *spec["shape"][1:]], spec["dtype"]) for name, spec in layout["state"].items()}
        warm = raw(waveform=tf.zeros([1, 4000]), reset=tf.constant([True]), **state)
        state = {name: warm[name] for name in layout["state"]}
        chunk, reset = tf.constant(0.1 * np.ones((1, 160), np.float32)), tf.constant([False])
        frame, recurrent = tf.zeros([1, 1, 40]), tf.zeros([1, 1, 128])
        empty = _empty_step(raw, os.path.join(base, "empty"))
        raw_times, feature_times, empty_times = [], [], []
        for i in range(repeats + 10):
            start = time.perf_counter()
            raw(waveform=chunk, reset=reset, **state)
            middle = time.perf_counter()
            features(features=frame, state=recurrent, reset=reset)
            end = time.perf_counter()
            empty(waveform=chunk, reset=reset, **state)
            if i >= 10:
                raw_times.append(1000.0 * (middle - start))
                feature_times.append(1000.0 * (end - middle))
                empty_times.append(1000.0 * (time.perf_counter() - end))
    return {"stream_raw_p50_ms": float(np.median(raw_times)), "stream_raw_p90_ms": float(np.percentile(raw_times, 90)),
            "stream_p50_ms": float(np.median(feature_times)), "stream_p90_ms": float(np.percentile(feature_times, 90)),
            "empty_step_p50_ms": float(np.median(empty_times))}


def _empty_step(signature, folder):
    """A SavedModel signature that does nothing, with the same inputs, as many captured
    variables and outputs as `signature`, loaded and called the same way: its time is what
    calling any such step from Python costs (argument conversion, the call), not the
    model's work. TF Serving pays its own request handling instead."""
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    names = sorted(specs)
    module = tf.Module()
    module.holder = [tf.Variable(0.0) for _ in signature.captured_inputs]
    count = len(signature.structured_outputs)

    @tf.function(input_signature=[specs[name] for name in names], autograph=False)
    def step(*inputs):
        values = [tf.identity(x) for x in inputs] + [v.read_value() for v in module.holder]
        return {f"out{i}": values[i % len(values)] for i in range(count)}

    tf.saved_model.save(module, folder, signatures={"empty": step})
    loaded = tf.saved_model.load(folder)
    empty = loaded.signatures["empty"]
    return lambda **inputs: (loaded, empty(**inputs))[1]  # the request's names: the specs' names


# --------------------------------------------------------------------------- 2. detect
def _write_long(path: Path, minutes: float, rng) -> None:
    """Noise with tone bursts, written block by block (the writer holds one block)."""
    import soundfile

    with soundfile.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as handle:
        for _ in range(int(minutes * 6)):  # 10 s blocks
            block = 0.01 * rng.standard_normal(10 * RATE)
            block[RATE:2 * RATE] += 0.3 * np.sin(2 * np.pi * 800 * np.arange(RATE) / RATE)
            handle.write(block.astype(np.float32))


def _child_detect(run_dir: str, path: str) -> None:
    import resource

    from seqapps.runs.detect import detect_file, load_streaming_model

    model = load_streaming_model(run_dir)
    detect_file(model, path, block_seconds=2.0)  # warm-up pass on the same file's code paths
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = detect_file(model, path, block_seconds=2.0)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": result.duration_seconds, "wall": wall, "rtf": result.duration_seconds / wall,
                      "max_rss_mb": peak / 1024, "max_rss_before_mb": before / 1024, "events": len(result.events)}))


def detect_speed(folder: Path, run_dir: Path, minutes: list[float]) -> list[dict]:
    rows = []
    for length in minutes:
        path = folder / f"long_{length:g}min.wav"
        _write_long(path, length, np.random.default_rng(1))
        out = subprocess.run([sys.executable, __file__, "--child-detect", str(run_dir), str(path)],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
        rows.append({"minutes": length, **json.loads(out.stdout.strip().splitlines()[-1])})
        path.unlink()
    return rows


# --------------------------------------------------------------------------- 3. accuracy
def _backgrounds():
    import librosa

    folder = SHARED / "audio" / "speech_music_silence"
    files = sorted((folder / "music").glob("*.wav")) + sorted((folder / "speech").glob("*.wav"))
    if not files:
        raise SystemExit(f"no background recordings under {folder} (set SEQAPPS_SHARED_DATA)")
    clips = [librosa.load(f, sr=RATE)[0][:RATE] for f in files]
    clips = [np.pad(c, (0, RATE - len(c))) for c in clips]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(clips))
    half = len(clips) // 2
    return [clips[i] for i in order[:half]], [clips[i] for i in order[half:]]


def _scaled(clip, rng, low=0.01, high=0.05):
    return clip / max(np.sqrt(np.mean(clip ** 2)), 1e-6) * rng.uniform(low, high)


def _keyword(label, rng):
    from pipelines.synthetic_audio import synthesize_clip

    return synthesize_clip(label, sample_rate=RATE, rng=rng, pitch=rng.uniform(0.8, 1.25), tilt=rng.uniform(0, 0.6))


def _background_window(backgrounds, rng):
    """One second cut at a random place from two background clips back to back, each at
    its own gain: what a stream's window sees when the background changes."""
    pair = np.concatenate([_scaled(backgrounds[i], rng) for i in rng.integers(len(backgrounds), size=2)])
    start = int(rng.integers(0, RATE))
    return pair[start:start + RATE]


def _shifted(clip, rng, most=0.25):
    """The clip moved by up to `most` seconds either way (zeros in): keywords cut at a
    window's edge, as a stream's windows see them."""
    shift = int(rng.uniform(-most, most) * RATE)
    out = np.zeros_like(clip)
    if shift >= 0:
        out[shift:] = clip[:len(clip) - shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def _clip_set(backgrounds, per_class, rng, *, shift=0.0):
    from pipelines.synthetic_audio import CLASS_NAMES

    clips, labels = [], []
    for index, label in enumerate(CLASS_NAMES):
        for _ in range(per_class):
            clips.append(_shifted(_keyword(label, rng), rng, shift) + _background_window(backgrounds, rng))
            labels.append(index)
    for _ in range(4 * per_class):  # background is most of a long recording: most of the negatives
        clips.append(_background_window(backgrounds, rng))
        labels.append(len(CLASS_NAMES))
    return np.stack(clips).astype(np.float32), np.array(labels)


def _running_floor_features(model, clips):
    """Features as the stream computes them from a reset at the clip start (running peak)."""
    from seqapps.layers import LogMelSpectrogram

    db = LogMelSpectrogram.from_config({**model.frontend.get_config(), "top_db": None})(clips).numpy()
    floor = np.maximum.accumulate(db.max(axis=2), axis=1) - model.frontend.top_db
    return np.maximum(db, floor[:, :, None])


def _long_recording(path, backgrounds, minutes, rng):
    import soundfile

    from pipelines.synthetic_audio import CLASS_NAMES

    total = int(minutes * 60 * RATE)
    signal = np.concatenate([_scaled(backgrounds[i % len(backgrounds)], rng)  # gains as in training
                             for i in rng.permutation(int(np.ceil(total / RATE)))])[:total]
    events, t = [], rng.uniform(1, 4)
    while t + 1.5 < total / RATE:
        label = CLASS_NAMES[rng.integers(len(CLASS_NAMES))]
        begin = int(t * RATE)
        signal[begin:begin + RATE] += _keyword(label, rng)
        events.append((label, t, t + 1.0))
        t += 1.0 + rng.uniform(3, 8)
    soundfile.write(path, np.clip(signal, -1, 1).astype(np.float32), RATE)
    return events


def accuracy(folder: Path, *, epochs: int, per_class: int, minutes: float, recordings: int) -> dict:
    import keras

    from pipelines.synthetic_audio import CLASS_NAMES
    from seqapps.layers.detection import DetectionSettings
    from seqapps.runs.detect import evaluate_streaming

    keras.utils.set_random_seed(0)
    train_bg, test_bg = _backgrounds()
    rng = np.random.default_rng(0)
    x_train, y_train = _clip_set(train_bg, per_class, rng, shift=0.25)
    x_test, y_test = _clip_set(test_bg, max(10, per_class // 4), rng)
    names = [*CLASS_NAMES, "_background_"]
    model = _default_model(len(names), names)
    model.compile()
    train_features = model.frontend(x_train).numpy()
    model.normalization.adapt([(train_features, None)])
    model.fit({"features": train_features}, y_train, epochs=epochs, batch_size=32, verbose=0)
    per_utterance = model.predict({"features": model.frontend(x_test).numpy()}, verbose=0)
    running = model.predict({"features": _running_floor_features(model, x_test)}, verbose=0)
    result = {
        "clips_test": len(y_test),
        "clip_accuracy_per_utterance_floor": float(np.mean(per_utterance.argmax(1) == y_test)),
        "clip_accuracy_running_floor": float(np.mean(running.argmax(1) == y_test)),
    }
    run_dir = folder / "kws_run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "labels.json").write_text(json.dumps(names))
    lines = ["path,label,start,end"]
    for i in range(recordings):
        events = _long_recording(folder / f"rec{i}.wav", test_bg, minutes, rng)
        lines += [f"rec{i}.wav,{label},{start:.3f},{end:.3f}" for label, start, end in events]
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    result["streaming"] = []
    for threshold in (0.5, 0.7, 0.9):
        settings = DetectionSettings(average_window_ms=500, threshold=threshold, suppression_ms=500, minimum_count=4)
        metrics = evaluate_streaming(run_dir, folder / "events.csv", settings=settings, background=["_background_"])
        metrics.pop("files")
        result["streaming"].append(metrics)
    return result, run_dir


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench_out/streaming.json")
    parser.add_argument("--parts", default="latency,accuracy,detect",
                        help="comma-separated parts to run (detect needs accuracy's model)")
    parser.add_argument("--child-detect", nargs=2, metavar=("RUN", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_detect:
        _child_detect(*args.child_detect)
        return 0
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "quick": args.quick}
    parts = set(args.parts.split(","))
    report["machine"]["cpu"] = _cpu_model()
    report["latency"], report["exported_latency_b1_10ms"] = {}, {}
    for name, make_model in LATENCY_MODELS.items() if "latency" in parts else ():
        rows = report["latency"][name] = latency(300 if args.quick else 1000, make_model)
        for key, row in rows.items():
            print(f"latency {name:8s} {key:10s} stream_raw p50 {row['stream_raw_p50_ms']:.3f} ms "
                  f"(p90 {row['stream_raw_p90_ms']:.3f})  features stream p50 {row['stream_p50_ms']:.3f} ms  -> "
                  f"{row['stream_raw_ms_per_audio_second_per_stream']:.3f} ms per stream-second")
        row = report["exported_latency_b1_10ms"][name] = exported_latency(300 if args.quick else 1000, make_model)
        print(f"SavedModel {name:8s} b1 10 ms: stream_raw p50 {row['stream_raw_p50_ms']:.3f} ms "
              f"(p90 {row['stream_raw_p90_ms']:.3f})  stream p50 {row['stream_p50_ms']:.3f} ms "
              f"(p90 {row['stream_p90_ms']:.3f})  an empty step with the same inputs and outputs "
              f"p50 {row['empty_step_p50_ms']:.3f} ms (the Python call alone)")
    if parts & {"accuracy", "detect"}:
        _accuracy_and_detect(report, parts, quick=args.quick)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _accuracy_and_detect(report, parts, *, quick):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        quick_sizes = dict(epochs=8, per_class=40, minutes=2.0, recordings=2)
        full = dict(epochs=20, per_class=80, minutes=10.0, recordings=3)
        report["accuracy"], run_dir = accuracy(folder, **(quick_sizes if quick else full))
        acc = report["accuracy"]
        print(f"clip accuracy ({acc['clips_test']} held-out clips): per-utterance floor "
              f"{acc['clip_accuracy_per_utterance_floor']:.3f}, running floor {acc['clip_accuracy_running_floor']:.3f}")
        for m in acc["streaming"]:
            print(f"streaming threshold {m['settings']['threshold']:.1f}: {m['events']} events in {m['hours'] * 60:.0f} min, "
                  f"matched {m['matched']} wrong {m['wrong']} false {m['false']}; FA/h {m['false_accepts_per_hour']:.1f}, "
                  f"miss rate {m['miss_rate']:.3f}, median latency from end {m['latency_ms']['median_from_end']} ms")
        if "detect" not in parts:
            report["detect"] = []
        else:
            report["detect"] = detect_speed(folder, run_dir, [2.0, 8.0] if quick else [10.0, 40.0])
        for row in report["detect"]:
            print(f"detect {row['minutes']:g} min: RTF {row['rtf']:.0f}x, peak RSS {row['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
