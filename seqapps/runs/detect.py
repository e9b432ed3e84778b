"""Live audio, the application side: detect keywords in long files, evaluate, listen.

A model is a `seqapps train` run folder (model.keras: the stream is built in-process by
``seqapps.layers.streaming.raw_stream``) or an exported SavedModel with a ``stream_raw``
signature (what TF Serving runs). Files are read block by block with the decoder their
content calls for (``pipelines.decode_stream``: libsndfile or FFmpeg, as training decodes),
mixed to mono and resampled chunk by chunk with soxr, so memory stays flat whatever the
file's length; the stream and ``Recognizer`` see one block at a time.

>>> events = detect_file(load_streaming_model("runs/kws"), "long.wav")  # doctest: +SKIP
>>> [(e.label, round(e.start, 2)) for e in events.events]  # doctest: +SKIP
[('seven', 12.34), ...]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqapps.errors import BadMediaError, ConfigError
from seqapps.layers.detection import DetectionSettings, Event, Recognizer

__all__ = ["StreamingModel", "DetectionResult", "load_streaming_model", "read_blocks", "detect_file",
           "evaluate_streaming", "listen", "DEFAULT_BACKGROUND"]

# Class names taken as "nothing happening" unless the caller names others: never reported.
DEFAULT_BACKGROUND = ("_silence_", "silence", "_background_noise_", "background")
STREAM_SIGNATURE = "stream_raw"


class StreamingModel:
    """One audio model's ``stream_raw`` step with its labels and layout.

    Attributes:
        labels: class names; sample_rate: Hz; frame_seconds: time between frames;
        flush_samples: zeros to send at the end of a stream; state_names: the state keys.
    """

    def __init__(self, *, step: Callable, description: dict, labels: list[str], source: str):
        if description.get("kind") != "audio":
            raise ConfigError(f"{source}: live detection needs an audio model; this one takes {description.get('kind')}")
        self._step = step
        self.description = description
        self.labels = list(labels)
        self.source = source
        self.sample_rate = int(description["sample_rate"])
        self.frame_seconds = float(description["frame_seconds"])
        self.flush_samples = int(description["flush_samples"])
        self.state_names = list(description["state"])
        self._initial = description["initial_values"]

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        state = {}
        for name, spec in self.description["state"].items():
            shape = [batch] + [d for d in spec["shape"][1:]]
            state[name] = np.full(shape, self._initial[name], np.dtype(spec["dtype"]))
        return state

    def step(self, waveform: np.ndarray, state: dict) -> tuple[dict, dict]:
        """(outputs, new state) for one chunk [batch, samples]."""
        waveform = np.asarray(waveform, np.float32)
        result = self._step(waveform=waveform, reset=np.zeros(waveform.shape[:1], bool), **state)
        result = {name: np.asarray(value) for name, value in result.items()}
        return result, {name: result[name] for name in self.state_names}


def load_streaming_model(path: str | Path) -> StreamingModel:
    """A run folder (model.keras + config.json) or a SavedModel (NAME or NAME/VERSION)."""
    path = Path(path)
    if (path / "model.keras").is_file():
        return _from_run(path)
    from seqapps.exported import load_exported

    try:
        exported = load_exported(path)
    except ConfigError:
        raise ConfigError(f"{path}: neither a run folder (model.keras) nor a SavedModel") from None
    if STREAM_SIGNATURE not in exported.signatures or not exported.model_card.get(STREAM_SIGNATURE):
        raise ConfigError(f"{exported.path}: this export has no `{STREAM_SIGNATURE}` signature; "
                          "export the run again with this version of seqapps")
    function = exported.signatures[STREAM_SIGNATURE]
    return StreamingModel(step=lambda **inputs: function(**inputs), description=exported.model_card[STREAM_SIGNATURE],
                          labels=exported.labels or [], source=str(exported.path))


def _from_run(run_dir: Path) -> StreamingModel:
    import keras

    import seqapps.tasks  # noqa: F401  (registers the classes model.keras names)
    from seqapps.layers.streaming import raw_stream

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    labels_file = run_dir / "labels.json"
    labels = json.loads(labels_file.read_text()) if labels_file.is_file() else getattr(model, "class_names", None)
    if not labels:
        raise ConfigError(f"{run_dir}: live detection needs a classifier (no labels.json)")
    stream = raw_stream(model)
    return StreamingModel(step=stream.function, description=stream.describe(), labels=labels, source=str(run_dir))


def read_blocks(path: str | Path, *, sample_rate: int, block_seconds: float = 2.0,
                notes: list[str] | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of about `block_seconds` at `sample_rate`, read with constant memory.

    The decoder is chosen by the file's content as for training (``pipelines.decode_stream``:
    libsndfile for WAV/FLAC/AIFF/Ogg-Vorbis, FFmpeg for AAC/M4A, MP3, Opus, WebM, video
    tracks); channels are averaged and another rate is resampled by one soxr stream
    ("HQ"), giving the samples training decodes. FFmpeg's warnings go to `notes`.

    Raises:
        BadMediaError: with the true reason (dangling link, permission denied, no audio
            stream, unsupported codec, truncated, ...).
    """
    from pipelines.decode_stream import stream_audio

    return stream_audio(path, sample_rate=sample_rate, block_seconds=block_seconds, notes=notes)


@dataclass
class DetectionResult:
    """Events of one recording, its length in seconds and the decoder's warnings."""

    path: str
    duration_seconds: float
    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _recognizer(model: StreamingModel, settings: DetectionSettings, background) -> Recognizer:
    if background is None:
        background = [label for label in model.labels if label in DEFAULT_BACKGROUND]
    return Recognizer(model.labels, average_window_ms=settings.average_window_ms, threshold=settings.threshold,
                      suppression_ms=settings.suppression_ms, minimum_count=settings.minimum_count,
                      background=background)


class _Detector:
    """The stream and the recognizer over consecutive blocks of one recording."""

    def __init__(self, model: StreamingModel, settings: DetectionSettings, background):
        self.model = model
        self.recognizer = _recognizer(model, settings, background)
        self.state = model.initial_state(1)
        self.samples = 0

    def feed(self, block: np.ndarray) -> list[Event]:
        outputs, self.state = self.model.step(block[np.newaxis], self.state)
        self.samples += len(block)
        valid = outputs["frame_mask"][0]
        scores = outputs["probabilities"][0][valid]
        # times from the integer frame index: exact whatever the stream's length
        times_ms = outputs["frame_index"][0][valid] * (1000.0 * self.model.frame_seconds)
        return self.recognizer.update(scores, times_ms)

    def finish(self) -> list[Event]:
        # The frontend's end padding: the last frames come out as in one whole-file call.
        events = self.feed(np.zeros(self.model.flush_samples, np.float32)) if self.model.flush_samples else []
        self.samples -= self.model.flush_samples
        return events + self.recognizer.finish()


def detect_file(model: StreamingModel, path, *, settings: DetectionSettings | None = None, background=None,
                block_seconds: float = 2.0, on_event: Callable[[Event], None] | None = None) -> DetectionResult:
    """Run the stream over one file block by block; events as ``Recognizer`` reports them.

    Args:
        model: from ``load_streaming_model``.
        settings: DetectionSettings (default: TF test_streaming_accuracy's).
        background: class names never reported (default: those of DEFAULT_BACKGROUND).
        block_seconds: audio per stream call.
        on_event: called with each event as soon as it ends (for printing while reading).
    """
    detector = _Detector(model, settings or DetectionSettings(), background)
    result = DetectionResult(path=str(path), duration_seconds=0.0)

    def emit(events):
        for event in events:
            result.events.append(event)
            if on_event is not None:
                on_event(event)

    for block in read_blocks(path, sample_rate=model.sample_rate, block_seconds=block_seconds,
                             notes=result.warnings):
        emit(detector.feed(block))
    if detector.samples == 0:
        raise BadMediaError(path, "no audio samples (zero samples decoded)")
    emit(detector.finish())
    result.duration_seconds = detector.samples / model.sample_rate
    return result


def evaluate_streaming(model_path, events_csv, *, settings: DetectionSettings | None = None, background=None,
                       tolerance_ms: float = 500.0, block_seconds: float = 2.0) -> dict:
    """Streaming metrics (seqapps.streaming_metrics) of a model on the recordings of an
    events CSV (``path,label,start,end``)."""
    from seqapps.streaming_metrics import read_events_csv, streaming_metrics_many

    model = load_streaming_model(model_path)
    truth = read_events_csv(events_csv)
    unknown = sorted({label for events in truth.values() for label, _, _ in events} - set(model.labels))
    if unknown:
        raise ConfigError(f"{events_csv}: labels the model does not know: {', '.join(unknown)} "
                          f"(known: {', '.join(model.labels)})")
    recordings, files = [], []
    for path, events in truth.items():
        found = detect_file(model, path, settings=settings, background=background, block_seconds=block_seconds)
        recordings.append((events, found.events, found.duration_seconds))
        files.append({"path": str(path), "seconds": found.duration_seconds, "events": len(events),
                      "detections": len(found.events)})
    metrics = streaming_metrics_many(recordings, tolerance_ms=tolerance_ms)
    metrics["files"] = files
    metrics["settings"] = {**vars(settings or DetectionSettings()), "tolerance_ms": tolerance_ms}
    return metrics


def listen(model_path, *, settings: DetectionSettings | None = None, background=None, device=None,
           block_seconds: float = 0.1, max_seconds: float | None = None,
           on_event: Callable[[Event], None] = print, open_input=None) -> list[Event]:
    """Detect keywords on a microphone (sounddevice, the optional extra ``live``).

    Reads blocks of `block_seconds` until `max_seconds` (or Ctrl-C), calling `on_event`
    for each event. `open_input(samplerate=, blocksize=, channels=, dtype=, device=)`
    returns the input stream (default ``sounddevice.InputStream``; tests pass a fake).
    """
    model = load_streaming_model(model_path)
    if open_input is None:
        try:
            import sounddevice
        except (ImportError, OSError) as err:
            raise ConfigError(f"`seqapps listen` needs sounddevice and PortAudio: pip install 'seqapps[live]' ({err})") from None
        open_input = sounddevice.InputStream
    detector = _Detector(model, settings or DetectionSettings(), background)
    block = max(1, int(round(block_seconds * model.sample_rate)))
    events = []
    with open_input(samplerate=model.sample_rate, blocksize=block, channels=1, dtype="float32", device=device) as stream:
        try:
            while max_seconds is None or detector.samples < max_seconds * model.sample_rate:
                data, _overflowed = stream.read(block)
                for event in detector.feed(np.asarray(data, np.float32).reshape(len(data), -1).mean(axis=1)):
                    events.append(event)
                    on_event(event)
        except KeyboardInterrupt:
            pass
    for event in detector.recognizer.finish():
        events.append(event)
        on_event(event)
    return events
