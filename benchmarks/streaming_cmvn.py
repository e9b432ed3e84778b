"""What per-utterance CMVN costs in a stream: cumulative vs exponential running statistic.

A keyword model whose frontend is the SpeechFrontend the audio settings build with
``data.normalization: "utterance"`` (40 log-mels, per-utterance CMVN) is trained on the
synthetic keyword set of benchmarks/streaming.py (5 classes of pipelines.synthetic_audio on
real background, plus "_background_"). On held-out clips the clip accuracy is measured

- ``predict_clip``: per-utterance CMVN over the whole 1 s clip (what training saw);
- ``isolated``: each clip streamed from a reset (then the frontend's end-padding zeros),
  the prediction read at its last frame, pooled over the training window (101 frames);
- ``continuous``: all held-out clips back to back as one stream in 1 s chunks (a long
  recording), each clip's prediction read at its last frame, pooled over its window;

for the running statistic ``cumulative`` (all frames since the stream started) and ``ema``
(bias-corrected, time constant of the training window).

    PYTHONPATH=. .venv/bin/python benchmarks/streaming_cmvn.py [--epochs 8 --per-class 40]

Prints JSON (and writes bench_out/streaming_cmvn.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streaming as kws  # noqa: E402  (benchmarks/streaming.py: the keyword clip set)

RATE = kws.RATE


def _model(names, units, *, top_db="default"):
    from seqapps.runs.settings import resolve_settings
    from seqapps.runs.speech import make_speech_frontend
    from seqapps.tasks import SequenceClassifier

    data = resolve_settings("audio", overrides={"data": {"normalization": "utterance"}})["data"]
    frontend, shape = make_speech_frontend(data)
    if top_db != "default":  # the spectral layer's top_db floor (80 dB below the peak by default)
        config = frontend.get_config()
        config["spectral"]["config"]["top_db"] = top_db
        frontend = type(frontend).from_config(config)
    return SequenceClassifier(num_classes=len(names), class_names=names, input_shape=shape, units=units,
                              frontend=frontend)


def _isolated(stream, clips):
    state = stream.initial_state(len(clips))
    first = stream.step(clips, state)
    state = {name: first[name] for name in stream.state_spec()}
    last = stream.step(np.zeros((len(clips), stream.flush_samples), np.float32), state)
    return last["probabilities"].numpy()[:, -1]


def _continuous(stream, clips):
    signal = np.concatenate(list(clips))[None]
    frames_per_clip = RATE // stream.hop  # clip k's window ends at frame (k + 1) * 100
    state, outputs = stream.initial_state(1), []
    for start in range(0, signal.shape[1], RATE):
        result = stream.step(signal[:, start:start + RATE], state)
        state = {name: result[name] for name in stream.state_spec()}
        outputs.append(result["probabilities"].numpy()[0])
    flushed = stream.step(np.zeros((1, stream.flush_samples), np.float32), state)
    outputs = np.concatenate([*outputs, flushed["probabilities"].numpy()[0]])
    return outputs[[(k + 1) * frames_per_clip for k in range(len(clips))]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--no-top-db", action="store_true",
                        help="train without the spectral layer's per-utterance top_db floor")
    parser.add_argument("--out", default="bench_out/streaming_cmvn.json")
    args = parser.parse_args(argv)
    import keras

    from pipelines.synthetic_audio import CLASS_NAMES
    from seqapps.layers.streaming_speech import SpeechRawStream

    keras.utils.set_random_seed(0)
    train_bg, test_bg = kws._backgrounds()
    rng = np.random.default_rng(0)
    x_train, y_train = kws._clip_set(train_bg, args.per_class, rng, shift=0.25)
    x_test, y_test = kws._clip_set(test_bg, max(10, args.per_class // 2), rng)
    names = [*CLASS_NAMES, "_background_"]
    model = _model(names, args.units, top_db=None if args.no_top_db else "default")
    model.compile()
    train_features = model.frontend(x_train).numpy()
    model.normalization.adapt([(train_features, None)])
    model.fit({"features": train_features}, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    order = np.random.default_rng(1).permutation(len(y_test))  # classes mixed along the long stream
    x_test, y_test = x_test[order], y_test[order]
    report = {"clips_train": len(y_train), "clips_test": len(y_test), "epochs": args.epochs, "units": args.units,
              "top_db": model.frontend.spectral.top_db,
              "predict_clip": float(np.mean(np.asarray(model.predict_clip(x_test)).argmax(-1) == y_test))}
    for statistic in ("cumulative", "ema"):
        stream = SpeechRawStream(model, cmvn=statistic)
        report[f"isolated_{statistic}"] = float(np.mean(_isolated(stream, x_test).argmax(-1) == y_test))
        report[f"continuous_{statistic}"] = float(np.mean(_continuous(stream, x_test).argmax(-1) == y_test))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
