"""Which default video features tell classes apart by motion, not by looks?

A synthetic suite whose appearance is random and independent of the class: background
colour, gradient and texture, object shape (square or disc), colour (brighter or darker
than the background), size, position and sensor noise are drawn per clip. Tasks:

  direction   moving left / right / up / down (speed random)
  speed       slow / fast (direction random)
  rotation    a bar turning clockwise / counter-clockwise (centre, length, start random)
  rhythm      moving back and forth with a short / long period (direction, phase random)
  size        growing / shrinking (appearance changes, the object stays put)
  fade        fading in / fading out (the object's contrast changes)

Any single frame could come from any class of its task. Clips are written as MJPG .avi
under ~/.cache/seqapps/video_suite (deterministic in the seed) and decoded with
pipelines.video.read_clip, as `seqapps train video` does. Every feature set of FEATURE_SETS
is computed once per task with the model's own frontend (seqapps.runs.train.build_model);
models train with the video defaults (units, epochs, learning rate) and no early stop, on
18 clips per class, and are tested on 12 new clips per class; mean ± std over 3 data seeds.

    PYTHONPATH=. .venv/bin/python benchmarks/video_suite.py          # ~15 min on 2 cores
    PYTHONPATH=. .venv/bin/python benchmarks/video_suite.py --show bench_out/video_suite.json

Writes bench_out/video_suite.json after every run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench_out"
DATA = Path.home() / ".cache" / "seqapps" / "video_suite"
TASKS = {
    "direction": ("left", "right", "up", "down"),
    "direction_any_contrast": ("left", "right", "up", "down"),
    "speed": ("slow", "fast"),
    "rotation": ("clockwise", "counterclockwise"),
    "rhythm": ("short_period", "long_period"),
    "size": ("growing", "shrinking"),
    "fade": ("fading_in", "fading_out"),
}
# name -> data settings changed from the defaults
FEATURE_SETS = {
    "pixels+difference 8x8": {"features": ["pixels", "difference"], "pixel_size": [8, 8]},
    "pixels 8x8": {"features": ["pixels"], "pixel_size": [8, 8]},
    "difference 8x8": {"features": ["difference"], "pixel_size": [8, 8]},
    "difference 16x16": {"features": ["difference"], "pixel_size": [16, 16]},
    "motion+difference 16x16": {"features": ["motion", "difference"], "pixel_size": [16, 16]},
    "pixels+difference 16x16": {"features": ["pixels", "difference"], "pixel_size": [16, 16]},
    "histogram+difference 16x16": {"features": ["histogram", "difference"], "pixel_size": [16, 16]},
    # `flow` is FrameFlow with its layer defaults (32x32 frames, 4x4 cells, regularization
    # 1e-3); pixel_size is difference's. FLOW_OPTIONS rows try other FrameFlow arguments.
    "flow 32x32 grid 4x4": {"features": ["flow"]},
    "flow+difference 8x8": {"features": ["flow", "difference"], "pixel_size": [8, 8]},
    "flow+motion": {"features": ["flow", "motion"]},
    "flow+motion+difference 8x8": {"features": ["flow", "motion", "difference"], "pixel_size": [8, 8]},
    "flow reg 1e-4": {"features": ["flow"]},
    "flow reg 1e-2": {"features": ["flow"]},
    "flow grid 2x2": {"features": ["flow"]},
    "flow grid 8x8": {"features": ["flow"]},
    "flow 16x16 grid 4x4": {"features": ["flow"]},
    "flow grid 2x2+difference 8x8": {"features": ["flow", "difference"], "pixel_size": [8, 8]},
    "flow grid 2x2+motion+difference 8x8": {"features": ["flow", "motion", "difference"], "pixel_size": [8, 8]},
    "flow grid 1x1+difference 8x8": {"features": ["flow", "difference"], "pixel_size": [8, 8]},
}
# name -> FrameFlow arguments other than the defaults (not data settings: `flow` has none)
FLOW_OPTIONS = {
    "flow reg 1e-4": {"regularization": 1e-4},
    "flow reg 1e-2": {"regularization": 1e-2},
    "flow grid 2x2": {"grid": (2, 2)},
    "flow grid 8x8": {"grid": (8, 8)},
    "flow 16x16 grid 4x4": {"size": (16, 16)},
    "flow grid 2x2+difference 8x8": {"grid": (2, 2)},
    "flow grid 2x2+motion+difference 8x8": {"grid": (2, 2)},
    "flow grid 1x1+difference 8x8": {"grid": (1, 1)},
}
SIZE, N_FRAMES, FPS = 64, 24, 12


# --------------------------------------------------------------------------- clips


def _background(rng: np.random.Generator) -> np.ndarray:
    """A random colour with a random linear gradient and a smooth random texture."""
    base = rng.uniform(20, 200, size=3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy - 0.5)[..., None] * rng.uniform(-60, 60, size=3)
    texture = cv2.resize(rng.normal(0, 1, (8, 8, 3)).astype(np.float32), (SIZE, SIZE),
                         interpolation=cv2.INTER_CUBIC) * rng.uniform(0, 20)
    return base + gradient + texture


def _object_colour(background: np.ndarray, rng: np.random.Generator, *, any_contrast: bool) -> np.ndarray:
    """Brighter than the background, or (any_contrast) brighter or darker at random."""
    level = background.mean()
    if not any_contrast:
        return np.clip(background.mean(axis=(0, 1)) + rng.uniform(60, 150, size=3), 0, 255)
    if rng.random() < 0.5 and level < 170:
        return rng.uniform(min(level + 50, 255), 256, size=3)
    if level > 60:
        return rng.uniform(0, max(level - 50, 1), size=3)
    return rng.uniform(min(level + 50, 255), 256, size=3)


def _trajectory(task: str, label: str, rng: np.random.Generator):
    """Per-frame (x, y, size, angle, contrast) of the object."""
    t = np.arange(N_FRAMES, dtype=np.float64)
    side = np.full(N_FRAMES, rng.uniform(0.12, 0.3) * SIZE)
    angle = np.zeros(N_FRAMES)
    contrast = np.ones(N_FRAMES)
    x = np.full(N_FRAMES, rng.uniform(0.3, 0.7) * SIZE)
    y = np.full(N_FRAMES, rng.uniform(0.3, 0.7) * SIZE)
    directions = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    if task in ("direction", "direction_any_contrast", "speed"):
        name = str(rng.choice(list(directions))) if task == "speed" else label
        dx, dy = directions[name]
        step = rng.uniform(0.8, 1.6) if task != "speed" else (
            rng.uniform(0.4, 0.8) if label == "slow" else rng.uniform(1.4, 2.0))
        travel = step * (N_FRAMES - 1)
        x0 = rng.uniform(side[0] / 2 + max(0, -dx) * travel, SIZE - side[0] / 2 - max(0, dx) * travel)
        y0 = rng.uniform(side[0] / 2 + max(0, -dy) * travel, SIZE - side[0] / 2 - max(0, dy) * travel)
        x, y = x0 + dx * step * t, y0 + dy * step * t
    elif task == "rotation":
        side = np.full(N_FRAMES, rng.uniform(0.3, 0.5) * SIZE)  # the bar's length
        sign = 1 if label == "clockwise" else -1
        angle = rng.uniform(0, np.pi) + sign * rng.uniform(0.08, 0.18) * t
    elif task == "rhythm":
        period = rng.uniform(5, 7) if label == "short_period" else rng.uniform(14, 20)
        amplitude = rng.uniform(0.12, 0.22) * SIZE
        direction = rng.uniform(0, np.pi)
        offset = amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        x, y = x + np.cos(direction) * offset, y + np.sin(direction) * offset
    elif task == "size":
        small, large = rng.uniform(0.1, 0.2) * SIZE, rng.uniform(0.35, 0.55) * SIZE
        side = np.linspace(small, large, N_FRAMES)
        side = side if label == "growing" else side[::-1]
    elif task == "fade":
        contrast = np.linspace(rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0), N_FRAMES)
        contrast = contrast if label == "fading_in" else contrast[::-1]
    return x, y, side, angle, contrast


def clip_frames(task: str, label: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 BGR frames [N_FRAMES, SIZE, SIZE, 3] of one clip."""
    background = _background(rng)
    colour = _object_colour(background, rng, any_contrast=task == "direction_any_contrast")
    disc = rng.random() < 0.5 and task != "rotation"
    noise = rng.uniform(2, 10)
    x, y, side, angle, contrast = _trajectory(task, label, rng)
    frames = np.empty((N_FRAMES, SIZE, SIZE, 3), np.uint8)
    for i in range(N_FRAMES):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        centre = (int(round(x[i])), int(round(y[i])))
        if task == "rotation":
            box = cv2.boxPoints(((x[i], y[i]), (side[i], side[i] * 0.25), np.degrees(angle[i])))
            cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
        elif disc:
            cv2.circle(mask, centre, int(round(side[i] / 2)), 1, -1)
        else:
            half = side[i] / 2
            cv2.rectangle(mask, (int(x[i] - half), int(y[i] - half)), (int(x[i] + half), int(y[i] + half)), 1, -1)
        frame = background.copy()
        weight = mask[..., None] * contrast[i]
        frame = frame * (1 - weight) + colour * weight
        frame += rng.normal(0, noise, frame.shape)
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_task(task: str, *, per_class: int, seed: int, root: Path = DATA) -> list[tuple[Path, int]]:
    """Clips of one task as .avi files (reused when present); [(path, label id)]."""
    folder = root / f"v2_{task}_seed{seed}_n{per_class}"
    done = folder / "done.json"
    labels = TASKS[task]
    items = [(folder / f"{label}_{i:03d}.avi", c) for c, label in enumerate(labels) for i in range(per_class)]
    if done.is_file():
        return items
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, list(TASKS).index(task)])
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    for path, c in items:
        writer = cv2.VideoWriter(os.fspath(path), fourcc, float(FPS), (SIZE, SIZE))
        for frame in clip_frames(task, labels[c], rng):
            writer.write(frame)
        writer.release()
    done.write_text(json.dumps({"task": task, "per_class": per_class, "seed": seed}))
    return items


# --------------------------------------------------------------------------- training


@contextlib.contextmanager
def flow_options(options: dict):
    """`data.features: ["flow"]` builds FrameFlow(**options) inside (for FLOW_OPTIONS rows)."""
    from seqapps.layers import video_flow

    original = video_flow.FrameFlow
    video_flow.FrameFlow = type("FrameFlow", (original,), {"__init__": lambda self, **kw: original.__init__(
        self, **{**options, **kw})})
    try:
        yield
    finally:
        video_flow.FrameFlow = original


def features_of(frames: np.ndarray, settings: dict, n_classes: int) -> np.ndarray:
    """[clips, N_FRAMES, F] from the frontend `seqapps train video` would build."""
    from seqapps.runs.train import build_model

    model = build_model("video", "classify", settings, SimpleNamespace(class_names=[str(i) for i in range(n_classes)]))
    return np.concatenate([model.frontend(frames[i : i + 16]).numpy() for i in range(0, len(frames), 16)])


def train_and_test(settings: dict, x_train, y_train, x_test, y_test, *, n_classes: int, seed: int) -> dict:
    import keras
    from sklearn.metrics import accuracy_score, f1_score

    from seqapps.runs.train import build_model

    keras.utils.set_random_seed(seed)
    plain = copy.deepcopy(settings)
    model = build_model("video", "classify", plain, SimpleNamespace(class_names=[str(i) for i in range(n_classes)]))
    training = settings["training"]
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"], clipnorm=training["clipnorm"]))
    model.normalization.adapt([(x_train, np.ones(x_train.shape[:2], bool))])
    start = time.perf_counter()
    model.fit({"features": x_train}, y_train, batch_size=training["batch_size"], epochs=training["epochs"],
              shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    predicted = model.predict({"features": x_test}, verbose=0).argmax(axis=1)
    return {"accuracy": float(accuracy_score(y_test, predicted)),
            "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
            "train_seconds": seconds}


def _summary(values):
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def table(result: dict) -> str:
    tasks = list(result["tasks"])
    lines = [f"video suite: {result['train_per_class']} training / {result['test_per_class']} test clips per class, "
             f"{result['epochs']} epochs, mean ± std of accuracy over {len(result['seeds'])} data seeds", "",
             "| features | " + " | ".join(tasks) + " | mean |", "|---|" + "---:|" * (len(tasks) + 1)]
    for name in result["feature_sets"]:
        cells, means = [], []
        for task in tasks:
            runs = result["tasks"][task].get(name, [])
            if runs:
                s = _summary([r["accuracy"] for r in runs])
                cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}")
                means.append(s["mean"])
            else:
                cells.append("")
        overall = f"{statistics.fmean(means):.3f}" if len(means) == len(tasks) else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {overall} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pipelines.video import read_clip
    from seqapps.runs.settings import resolve_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--features", help="comma-separated FEATURE_SETS names (default: all)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-per-class", type=int, default=18)
    parser.add_argument("--test-per-class", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=None, help="default: the video default")
    parser.add_argument("--out", default=str(OUT / "video_suite.json"))
    parser.add_argument("--show", metavar="JSON")
    args = parser.parse_args(argv)
    if args.show:
        print(table(json.loads(Path(args.show).read_text())))
        return 0
    tasks = [t.strip() for t in args.tasks.split(",")]
    names = [n.strip() for n in args.features.split(",")] if args.features else list(FEATURE_SETS)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = resolve_settings("video")
    if args.epochs is not None:
        base["training"]["epochs"] = args.epochs
    per_class = args.train_per_class + args.test_per_class
    result = {"command": " ".join(["benchmarks/video_suite.py", *(argv if argv is not None else sys.argv[1:])]),
              "settings": base, "train_per_class": args.train_per_class, "test_per_class": args.test_per_class,
              "epochs": base["training"]["epochs"], "seeds": seeds, "feature_sets": {n: {**FEATURE_SETS[n], **({"flow": FLOW_OPTIONS[n]} if n in FLOW_OPTIONS else {})}
                               for n in names},
              "tasks": {t: {} for t in tasks}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for task in tasks:
            items = write_task(task, per_class=per_class, seed=seed)
            frames = np.stack([read_clip(p, size=(SIZE, SIZE)) for p, _ in items])
            labels = np.array([c for _, c in items])
            # The first train_per_class clips of each class train, the rest test.
            index_in_class = np.arange(len(items)) % per_class
            train, test = index_in_class < args.train_per_class, index_in_class >= args.train_per_class
            for name in names:
                settings = copy.deepcopy(base)
                settings["data"].update(FEATURE_SETS[name])
                with flow_options(FLOW_OPTIONS.get(name, {})):
                    x = features_of(frames, settings, len(TASKS[task]))
                    run = train_and_test(settings, x[train], labels[train], x[test], labels[test],
                                         n_classes=len(TASKS[task]), seed=seed)
                result["tasks"][task].setdefault(name, []).append(run)
                print(f"seed {seed} {task:10s} {name:28s} acc {run['accuracy']:.3f} {run['train_seconds']:4.0f} s",
                      flush=True)
                out.write_text(json.dumps(result, indent=1))
    print()
    print(table(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
