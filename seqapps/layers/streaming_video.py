"""Raw-frame streaming for video models: the previous frame travels in the state.

See seqapps.layers.streaming (``raw_stream`` builds this for a video frontend). The state:

    previous_frame   uint8   [batch, h, w, 3]     the last raw frame
    frames_seen      int64   [batch]
    state            float32 [batch, layers, units]

>>> import numpy as np
>>> from seqapps.layers import FrameDifference
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(None, 8, 8, 3), units=4,
...                            frontend=FrameDifference(size=(4, 4)))
>>> stream = VideoRawStream(model, fps=25.0)
>>> result = stream.step(np.zeros((1, 3, 8, 8, 3), np.uint8), stream.initial_state(1))
>>> result["frame_times"].numpy().tolist()
[[0.0, 0.03999999910593033, 0.07999999821186066]]
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.streaming import _RawStream

__all__ = ["VideoRawStream"]


class VideoRawStream(_RawStream):
    """Streaming step of a model with a frame-feature video frontend (see module doc).

    The frontend runs on the previous frame followed by the chunk and the first output is
    dropped, so difference and motion features see the frame before the chunk; the first
    frame of a stream is its own predecessor, as in the frontend (zero difference).
    """

    input_name = "frames"

    def __init__(self, model, *, fps: float | None = None, **options):
        if fps is not None and not fps > 0:
            raise invalid_argument("fps", fps, "a positive number or None")
        if options.get("detection") is not None and fps is None:
            raise invalid_argument("fps", fps, "a positive number when detection is on (its times are in ms)")
        self.fps = None if fps is None else float(fps)
        super().__init__(model, **options)
        shape = tuple(model.raw_input_shape)
        if len(shape) != 4 or any(d is None for d in shape[1:]):
            raise invalid_argument("model.raw_input_shape", shape, "(None, height, width, channels) for streaming")
        self.frame_shape = tuple(int(d) for d in shape[1:])

    def input_spec(self):
        return tf.TensorSpec([None, None, *self.frame_shape], tf.uint8, name="frames")

    def _frontend_state_spec(self):
        return {
            "previous_frame": tf.TensorSpec([None, *self.frame_shape], tf.uint8, name="previous_frame"),
            "frames_seen": tf.TensorSpec([None], tf.int64, name="frames_seen"),
        }

    @property
    def frame_ms(self) -> float:
        return 1000.0 / self.fps

    def _describe_frontend(self):
        return {"kind": "video", "fps": self.fps, "frame_shape": list(self.frame_shape),
                "window_frames": self.window_frames}

    def _step(self, frames, state, reset):
        state = self._reset(state, reset)
        seen = state["frames_seen"]
        fresh = (seen == 0)[:, tf.newaxis, tf.newaxis, tf.newaxis]
        previous = tf.where(fresh, frames[:, 0], state["previous_frame"])
        features = self.frontend(tf.concat([previous[:, tf.newaxis], frames], axis=1), training=False)[:, 1:]
        batch = tf.shape(frames)[0]
        count = tf.cast(tf.shape(frames)[1], tf.int64)
        outputs, recurrent = self._recur(features, state, tf.fill([batch], count), seen)
        mask = tf.ones([batch, tf.cast(count, tf.int32)], tf.bool)
        detected = self._detect(outputs, mask, state)
        index = seen[:, tf.newaxis] + tf.range(count, dtype=tf.int64)[tf.newaxis]
        times = tf.cast(index, tf.float32) / (self.fps or 1.0)
        return {
            **outputs,
            "frame_mask": mask,
            "frame_index": index,
            "frame_times": times,
            "previous_frame": frames[:, -1],
            "frames_seen": seen + count,
            **recurrent,
            **detected,
        }
