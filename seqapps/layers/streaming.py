"""Raw-input streaming: waveform (or frame) chunks of any length in, per-frame outputs out.

``raw_stream(model)`` wraps a trained SequenceClassifier / SequenceRegressor (frontend,
feature normalisation, Recurrent layers, head) into one streaming step whose state holds
everything needed to continue, so a stateless server (TF Serving) can run it:

audio (LogMelSpectrogram or MFCC frontend, or a SpeechFrontend of one with running CMVN:
seqapps.layers.streaming_speech), input ``waveform`` [batch, samples], any ``samples >= 1``:

    pending_samples  float32 [batch, n_fft - 1]   the last n_fft - 1 samples of the padded
                                                  signal (zeros at the start: exactly the
                                                  centre padding of the frontend)
    samples_seen     int64   [batch]              samples consumed so far
    peak_db          float32 [batch]              running peak (only with the top_db floor)
    state            float32 [batch, layers, units]  the recurrent states s(n)
    window_logits    float32 [batch, W - 1, classes] the head's last logits (window outputs;
                                                  window_states [.., units] with a hidden layer)

video: seqapps.layers.streaming_video (the previous raw frame travels in the state).

Each step returns ``probabilities`` (classifiers) or ``predictions`` [batch, frames, ...]:
the head on each frame's state (as the ``stream`` signature) or, with ``window_frames`` W
(the default for mean-pooled audio models), the pooled prediction of the W frames ending
there; ``frame_mask`` bool [batch, frames] (rows of a batch may be at different positions,
so a row can complete one frame fewer; masked frames hold the state and carry no output);
``frame_index`` int64 and ``frame_times`` float32 (seconds, the frame centre); the new
state under the same names. ``reset`` bool [batch] starts a row afresh (zeros and
reset=True start a stream).

Audio frames are emitted once every sample they cover has arrived: frame t (centre
t * hop) needs samples up to t * hop + n_fft - n_fft // 2 - 1, so the stream lags the
whole-signal frontend by its last ``ceil((n_fft - n_fft // 2) / hop)`` frames, those the
frontend computes from its zero end padding; sending ``n_fft // 2`` zeros at the end of a
stream (``flush_samples``) yields them too, exactly.

The per-utterance top_db floor (``max(db, peak - top_db)``, peak over the whole input)
becomes a running peak over frames 0..t (its accuracy cost: benchmarks/streaming.py).

>>> import numpy as np
>>> from seqapps.layers import LogMelSpectrogram
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(16000,), units=4,
...                            frontend=LogMelSpectrogram(n_mels=8))
>>> stream = raw_stream(model, window_frames=None)
>>> state = stream.initial_state(1)
>>> result = stream.step(np.zeros((1, 1600), "float32"), state)
>>> result["probabilities"].shape   # 1600 samples complete frames 0..8 (frame 9 needs sample 1695)
TensorShape([1, 9, 2])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers import video_frontends as _video
from seqapps.layers.audio_frontends import _MelBase
from seqapps.layers.detection import (
    DETECTION_INITIAL_VALUES,
    DetectionSettings,
    detect_in_graph,
    detection_state_spec,
)
from seqapps.layers.running_ops import functional_conds, window_sums
from seqapps.layers.speech_frontend import SpeechFrontend
from seqapps.layers.video_flow import FrameFlow

__all__ = ["AudioRawStream", "raw_stream"]

_VIDEO_LAYERS = (_video.FramePixels, _video.ColorHistogram, _video.FrameDifference, _video.FrameMotion,
                 _video.FrameEmbedder, _video.FrameFeatures, FrameFlow)


def raw_stream(model, *, fps: float | None = None, detection: DetectionSettings | None = None,
               background: list[str] | tuple[str, ...] = (), window_frames: int | str | None = "auto"):
    """The raw streaming step of a seqapps task model (audio or video frontend).

    Args:
        model: a SequenceClassifier or SequenceRegressor with a frontend.
        fps: video only: frames per second, for ``frame_times`` (None: times are frame
            indices).
        detection: classifiers: also run RecognizeCommands in the graph
            (seqapps.layers.detection.detect_in_graph); adds its state and the outputs
            ``detected``, ``detected_label``, ``detected_score`` [batch, frames].
        background: class names that fire but are never reported (with `detection`).
        window_frames: the frames each output pools. None: the head on each frame's
            state (as the ``stream`` signature). An integer W: the head on the mean of
            the last W states (fewer at the start), i.e. what a mean-pooled model
            predicts for the window ending at each frame. "auto": the model's training
            window for a mean-pooled audio model (1 + window_samples // hop), else None.
    """
    frontend = getattr(model, "frontend", None)
    options = {"detection": detection, "background": background, "window_frames": window_frames}
    if isinstance(frontend, _MelBase):
        return AudioRawStream(model, **options)
    if isinstance(frontend, SpeechFrontend):  # checked there: only its streamable settings
        from seqapps.layers.streaming_speech import SpeechRawStream

        return SpeechRawStream(model, **options)
    if isinstance(frontend, _VIDEO_LAYERS):
        from seqapps.layers.streaming_video import VideoRawStream

        return VideoRawStream(model, fps=fps, **options)
    raise invalid_argument(
        "model.frontend", type(frontend).__name__,
        "a LogMelSpectrogram, MFCC or SpeechFrontend (audio) or a seqapps video frame-feature layer",
    )


class _RawStream:
    """Shared part: recurrent states in and out, outputs, reset, the serving function."""

    input_name: str

    def __init__(self, model, *, detection: DetectionSettings | None = None, background=(),
                 window_frames: int | str | None = None):
        for attribute in ("recurrent_states", "head", "num_layers", "units", "task"):
            if not hasattr(model, attribute):
                raise invalid_argument("model", type(model).__name__, "a seqapps SequenceClassifier or SequenceRegressor")
        if getattr(model, "bidirectional", False):
            raise invalid_argument("model.bidirectional", True, "False for streaming (the backward pass needs the future)")
        self.model = model
        self.frontend = getattr(self, "spectral", model.frontend)  # a SpeechFrontend's spectral layer
        # The names of the other signatures: class probabilities, or regression values.
        self.output_name = "probabilities" if model.task == "classify" else "predictions"
        if detection is not None and self.output_name != "probabilities":
            raise invalid_argument("detection", detection, "None for a regressor (detection needs classes)")
        self.detection = detection
        labels = list(getattr(model, "class_names", None) or [str(i) for i in range(getattr(model, "num_classes", 0))])
        unknown = [name for name in background if name not in labels]
        if unknown:
            raise invalid_argument("background", list(background), f"class names among {labels}")
        self.background = [labels.index(name) for name in background]
        if window_frames == "auto":
            window_frames = self._training_window() if getattr(model, "pooling", None) == "mean" else None
        if window_frames is not None and (isinstance(window_frames, bool) or not isinstance(window_frames, int)
                                          or window_frames < 1):
            raise invalid_argument("window_frames", window_frames, 'a positive integer, None or "auto"')
        self.window_frames = window_frames
        self._function = None

    def _training_window(self):
        return None

    def _window_layout(self):
        """What the window keeps: the head's logits when the head is linear in the states
        (no hidden layer; num_classes wide), else the last layer's states (units wide)."""
        head = self.model.head
        if not head.hidden_units:
            return "window_logits", int(head.compute_output_shape((None, None, self.model.units))[-1])
        return "window_states", self.model.units

    # ---------------------------------------------------------------- description
    def state_spec(self) -> dict[str, tf.TensorSpec]:
        """Name -> TensorSpec (batch first, None) of every state tensor."""
        specs = self._frontend_state_spec()
        specs["state"] = tf.TensorSpec([None, self.model.num_layers, self.model.units], tf.float32, name="state")
        if self.window_frames and self.window_frames > 1:
            name, width = self._window_layout()
            specs[name] = tf.TensorSpec([None, self.window_frames - 1, width], tf.float32, name=name)
        if self.detection is not None:
            specs.update(detection_state_spec(self.detection, frame_ms=self.frame_ms,
                                              num_classes=self.model.num_classes))
        return specs

    frame_ms: float  # milliseconds between frames (a property of each kind)

    def input_spec(self) -> tf.TensorSpec:
        raise TypeError(f"{type(self).__name__} must define input_spec (the chunk's TensorSpec)")

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """The inputs of one step: the chunk, ``reset`` and the state."""
        return {
            self.input_name: self.input_spec(),
            "reset": tf.TensorSpec([None], tf.bool, name="reset"),
            **self.state_spec(),
        }

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """The state of `batch` fresh streams (what ``reset`` sets)."""
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
            raise invalid_argument("batch", batch, "a non-negative integer")
        state = {}
        for name, spec in self.state_spec().items():
            shape = [batch] + [d for d in spec.shape.as_list()[1:]]
            state[name] = np.full(shape, self._initial_value(name), spec.dtype.as_numpy_dtype)
        return state

    def _initial_value(self, name):
        return DETECTION_INITIAL_VALUES.get(name, 0)

    def example_inputs(self, batch: int = 1, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Valid inputs of one step (a short random chunk, reset, the initial state): for
        TF Serving warm-up records and tests."""
        rng = np.random.default_rng(seed)
        spec = self.input_spec()
        if spec.dtype == tf.uint8:
            chunk = rng.integers(0, 256, (batch, 2, *spec.shape[2:]), dtype=np.uint8)
        else:
            chunk = (0.1 * rng.standard_normal((batch, 1600))).astype(np.float32)
        return {self.input_name: chunk, "reset": np.ones(batch, bool), **self.initial_state(batch)}

    def describe(self) -> dict:
        """JSON-ready layout of the signature (for the model card and clients)."""
        def spec(s):
            return {"dtype": s.dtype.name, "shape": [-1 if d is None else d for d in s.shape.as_list()]}

        return {
            "input": {self.input_name: spec(self.input_spec())},
            "state": {name: spec(s) for name, s in self.state_spec().items()},
            "initial_values": {name: self._initial_value(name) for name in self.state_spec()},
            "outputs": [self.output_name, "frame_mask", "frame_index", "frame_times",
                        *(["detected", "detected_label", "detected_score"] if self.detection else []),
                        *self.state_spec()],
            "detection": None if self.detection is None else {
                **vars(self.detection), "background": [self.model.class_names[i] if self.model.class_names
                                                       else str(i) for i in self.background]},
            **self._describe_frontend(),
        }

    # ---------------------------------------------------------------- running
    def step(self, chunk, state: dict, reset=None) -> dict:
        """One chunk through the stream (eager or in a graph). `state` as returned last time
        (or ``initial_state``); `reset` optional bool [batch]."""
        chunk = tf.convert_to_tensor(chunk, self.input_spec().dtype)
        if reset is None:
            reset = tf.zeros(tf.shape(chunk)[:1], tf.bool)
        return self.function(**{self.input_name: chunk, "reset": reset, **state})

    @property
    def function(self):
        """The step as a tf.function with keyword inputs (``input_signature``): the
        ``stream_raw`` serving signature."""
        if self._function is None:
            signature = self.input_signature()
            names = list(signature)

            def serve(*args):
                inputs = dict(zip(names, args, strict=True))
                chunk, reset = inputs.pop(self.input_name), inputs.pop("reset")
                return self._step(chunk, inputs, reset)

            traced = tf.function(serve, input_signature=list(signature.values()), autograph=False)
            with functional_conds():  # the live step does not pay for the general branch
                self._function = _KeywordFunction(traced, names)
        return self._function

    def _reset(self, state, reset):
        def fresh_rows():
            out = {}
            for name, value in state.items():
                fresh = tf.cast(tf.fill(tf.shape(value), self._initial_value(name)), value.dtype)
                row = tf.reshape(reset, tf.concat([tf.shape(reset), tf.ones([value.shape.rank - 1], tf.int32)], 0))
                out[name] = tf.where(row, fresh, value)
            return out

        # Most steps of a live stream reset nothing: one test instead of a select per state.
        return tf.cond(tf.reduce_any(reset), fresh_rows, lambda: dict(state))

    def _recur(self, features, state, frames_done, frames_before, *, single: bool = False):
        """(outputs, new state) over the new frames: the recurrent states taken at each
        row's last completed frame (a row completing none keeps its state), and with
        `window_frames` the last states kept for the next windows. `single`: every row
        completed exactly one frame and `features` has a static time length of 1, so the
        recurrence is one step written out (Recurrent's forward_only) and no gathers."""
        initial = [state["state"][:, i] for i in range(self.model.num_layers)]
        sequences = self.model.recurrent_states(features, initial_states=initial, training=False)
        finals = []
        for i, states in enumerate(sequences):
            if single:  # every row completed the chunk's one frame
                finals.append(states[:, -1])
                continue
            # s(0) in front, so a row that completed no frame (index 0) keeps its state.
            with_initial = tf.concat([initial[i][:, tf.newaxis], states], axis=1)
            finals.append(tf.gather(with_initial, frames_done, axis=1, batch_dims=1))
        new_state = {"state": tf.stack(finals, axis=1)}
        if not (self.window_frames and self.window_frames > 1):
            outputs = tf.cast(self.model.head.per_step(sequences[-1]), tf.float32)
            return {self.output_name: outputs}, new_state
        name, _ = self._window_layout()
        head, width = self.model.head, self.window_frames
        if single:
            return self._window_one_frame(sequences[-1][:, 0], state, frames_before, new_state)
        values = head.per_step_logits(sequences[-1]) if name == "window_logits" else sequences[-1]
        combined = tf.concat([state[name], tf.cast(values, tf.float32)], axis=1)  # [b, width - 1 + frames, ...]
        frames = tf.shape(values)[1]
        sums = window_sums(combined, width)  # the window ending at each new frame
        position = frames_before[:, tf.newaxis] + tf.range(1, tf.cast(frames, tf.int64) + 1, dtype=tf.int64)
        count = tf.cast(tf.minimum(position, width), sums.dtype)  # before the start: zeros, not states
        pooled = sums / count[..., tf.newaxis]
        new_state[name] = tf.cond(  # a slice when every row moved as far (a gather is slow)
            tf.reduce_all(frames_done == frames_done[:1]),
            lambda: combined[:, tf.reduce_max(tf.concat([frames_done, [0]], 0)):][:, :width - 1],
            lambda: tf.gather(combined, frames_done[:, tf.newaxis] + tf.range(width - 1, dtype=tf.int64),
                              axis=1, batch_dims=1))
        outputs = head.activate(pooled) if name == "window_logits" else head.per_step(pooled)
        outputs = tf.cast(outputs, tf.float32)
        return {self.output_name: outputs}, new_state

    def _window_one_frame(self, last, state, frames_before, new_state):
        """The window step of `_recur` for one new frame in every row, on 2-D tensors:
        `last` [batch, units] is the last layer's new state; the window is a sum."""
        name, _ = self._window_layout()
        head, width = self.model.head, self.window_frames
        values = tf.cast(head.per_step_logits(last) if name == "window_logits" else last, tf.float32)
        combined = tf.concat([state[name], values[:, tf.newaxis]], axis=1)  # [batch, width, ...]
        count = tf.cast(tf.minimum(frames_before + 1, width), tf.float32)  # fewer at the start
        pooled = tf.reduce_sum(combined, axis=1) / count[:, tf.newaxis]
        new_state[name] = combined[:, 1:]
        outputs = head.activate(pooled) if name == "window_logits" else head.per_step(pooled)
        return {self.output_name: tf.cast(outputs, tf.float32)[:, tf.newaxis]}, new_state

    def _detect(self, outputs, frame_mask, state):
        """Detection outputs and state (empty without `detection`)."""
        if self.detection is None:
            return {}
        names = detection_state_spec(self.detection, frame_ms=self.frame_ms, num_classes=self.model.num_classes)
        detected, new_state = detect_in_graph(
            outputs[self.output_name], frame_mask, {name: state[name] for name in names},
            settings=self.detection, frame_ms=self.frame_ms, background=self.background,
        )
        return {**detected, **new_state}


class _KeywordFunction:
    """A tf.function with a flat positional signature, called with keywords.

    Calls go to its one concrete function: matching Python arguments against the
    signature on every call would cost more than a 10 ms chunk's computation."""

    def __init__(self, function, names):
        self.function = function
        self.names = names
        self.concrete = function.get_concrete_function()
        self._dtypes = [spec.dtype for spec in function.input_signature]

    def __call__(self, **inputs):
        missing = [name for name in self.names if name not in inputs]
        if missing:
            raise invalid_argument("state", sorted(inputs), f"a dict holding {missing}")
        return self.concrete(*[tf.convert_to_tensor(inputs[name], dtype)
                               for name, dtype in zip(self.names, self._dtypes, strict=True)])

    def get_concrete_function(self):
        return self.concrete


# The audio step lives in its own module; imported last, as it subclasses _RawStream.
from seqapps.layers.streaming_audio import AudioRawStream  # noqa: E402
