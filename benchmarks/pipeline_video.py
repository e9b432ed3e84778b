"""How fast does video become features, and how much faster are windows from the cache?

Measures, on ../shared/data/video/bikes.mp4 (640x272 h264, 250 frames):

1. reference: OpenCV alone decoding and resizing to 64x64 (cv2.VideoCapture + cv2.resize);
2. first pass: ``write_frame_cache`` decoding (in a background thread), cropping to 64x64
   and running ``FramePixels`` on chunks of frames, written as SequenceExamples, in frames/s
   (target >= 600 frames/s);
3. windows/s from decoding (``video_dataset`` with the same layer) vs windows/s from the cache
   (``read_frame_cache``), same windows (target: cache >= 20x decoding).

Run: PYTHONPATH=. .venv/bin/python benchmarks/pipeline_video.py [--quick]
Writes bench_out/pipeline_video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.fspath(ROOT))

from pipelines.frame_cache import read_frame_cache, write_frame_cache  # noqa: E402
from pipelines.video import iter_frames, video_dataset  # noqa: E402
from seqapps.layers.video_frontends import FramePixels  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "video" / "bikes.mp4"
SIZE = (64, 64)


def opencv_reference(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    capture = cv2.VideoCapture(os.fspath(path))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_AREA)
        count += 1
    capture.release()
    return count, time.perf_counter() - start


def stream_only(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    count = sum(1 for _ in iter_frames(path, size=SIZE))
    return count, time.perf_counter() - start


def first_pass(path: Path, layer, out_dir: Path) -> tuple[int, float]:
    start = time.perf_counter()
    cache = write_frame_cache([os.fspath(path)], None, out_dir, feature_layer=layer,
                              size=SIZE, chunk_frames=16)
    elapsed = time.perf_counter() - start
    with open(cache / "manifest.json") as f:
        return json.load(f)["n_frames"], elapsed


def count_windows(dataset) -> tuple[int, float]:
    start = time.perf_counter()
    windows = 0
    for inputs, _ in dataset:
        windows += int(inputs["mask"].shape[0])
    return windows, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default=os.fspath(ROOT / "bench_out" / "pipeline_video.json"))
    args = parser.parse_args(argv)
    if not VIDEO.is_file():
        print(f"{VIDEO} is absent; nothing to measure")
        return {}
    repeats = 2 if args.quick else 5
    clips = 4 if args.quick else 16
    epochs = 3
    length, shift, batch = 16, 8, 32
    layer = FramePixels(size=(32, 32))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Warm up: trace the layer's function and OpenCV's decoder once.
        first_pass(VIDEO, layer, tmp / "warmup")
        reference = [opencv_reference(VIDEO) for _ in range(repeats)]
        streamed = [stream_only(VIDEO) for _ in range(repeats)]
        passes = [first_pass(VIDEO, layer, tmp / f"pass{i}") for i in range(repeats)]
        ref_fps = max(n / t for n, t in reference)
        pass_fps = max(n / t for n, t in passes)
        stream_fps = max(n / t for n, t in streamed)

        # The same clip several times makes a cache worth reading (distinct entries, one file).
        sources = [os.fspath(VIDEO)] * clips
        cache = write_frame_cache(sources, None, tmp / "cache", feature_layer=layer, size=SIZE)
        direct = video_dataset(sources[: max(1, clips // 4)], window_frames=length, hop_frames=shift,
                               size=SIZE, feature_layer=layer, batch_size=batch)
        direct_windows, direct_time = count_windows(direct)
        # Several epochs per run: what training sees, start-up cost spread out.
        cached_runs = [
            count_windows(read_frame_cache(cache, window_frames=length, hop_frames=shift, batch_size=batch)
                          .repeat(epochs))
            for _ in range(repeats)
        ]
        cached_windows, cached_time = min(cached_runs, key=lambda r: r[1])

    direct_wps = direct_windows / direct_time
    cached_wps = cached_windows / cached_time
    results = {
        "video": VIDEO.name,
        "frames": passes[0][0],
        "size": list(SIZE),
        "feature_layer": "FramePixels(size=(32, 32))",
        "opencv_decode_resize_fps": round(ref_fps, 1),
        "iter_frames_decode_crop_fps": round(stream_fps, 1),
        "first_pass_decode_features_fps": round(pass_fps, 1),
        "first_pass_target_fps": 600,
        "windows": {"length": length, "shift": shift, "batch_size": batch},
        "decode_windows_per_s": round(direct_wps, 1),
        "cache_windows_per_s": round(cached_wps, 1),
        "cache_speedup": round(cached_wps / direct_wps, 1),
        "cache_speedup_target": 20,
        "repeats": repeats,
        "cache_epochs_per_run": epochs,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "opencv": cv2.__version__},
    }
    rows = [
        ("OpenCV decode + resize (reference)", f"{ref_fps:8.0f} frames/s", ""),
        ("iter_frames: decode + centre crop 64x64", f"{stream_fps:8.0f} frames/s", ""),
        ("first pass: decode + FramePixels + write", f"{pass_fps:8.0f} frames/s", ">= 600"),
        ("windows from decoding", f"{direct_wps:8.0f} windows/s", ""),
        ("windows from the cache", f"{cached_wps:8.0f} windows/s",
         f"{cached_wps / direct_wps:.1f}x decoding (>= 20x)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'rate':>18}  target / comparison")
    for name, rate, note in rows:
        print(f"{name:<{width}}  {rate:>18}  {note}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
