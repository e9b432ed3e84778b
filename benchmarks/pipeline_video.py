"""How fast does video become features, and how much faster are windows from the cache?

Measures, on ../shared/data/video/bikes.mp4 (640x272 h264, 250 frames):

1. reference: OpenCV alone decoding and resizing to 64x64 (cv2.VideoCapture + cv2.resize);
2. first pass: ``write_frame_cache`` decoding (in a background thread), cropping to 64x64
   and running ``FramePixels`` on chunks of frames, written as SequenceExamples, in frames/s
   (target >= 600 frames/s);
3. windows/s from decoding (``video_dataset`` with the same layer) vs windows/s from the cache
   (``read_frame_cache``), same windows (target: cache >= 20x decoding).

4. ``--backends``: the two frame readers side by side (``pipelines.video`` backend "opencv"
   and "pyav"): decode fps (all frames, BGR, best of the repeats) and what each reports on
   the real videos, then on clips written with PyAV (variable frame rate h264/vp9/ffv1/
   mpeg4/AV1, a rotated phone clip): frames read, timestamp error against the written
   times, whether the rotation was applied.

Run: PYTHONPATH=. .venv/bin/python benchmarks/pipeline_video.py [--quick] [--backends [--backends-only]]
[--data FOLDER]
Writes bench_out/pipeline_video.json.
"""

from __future__ import annotations

import argparse
import json
import math
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
    parser.add_argument("--backends", action="store_true", help="also compare the OpenCV and PyAV readers")
    parser.add_argument("--backends-only", action="store_true", help="only the reader comparison")
    parser.add_argument("--data", default=os.fspath(VIDEO.parent), help="folder of real videos")
    args = parser.parse_args(argv)
    comparison = None
    if args.backends or args.backends_only:
        comparison = compare_readers(Path(args.data), repeats=2 if args.quick else 3)
        if args.backends_only:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump({"readers": comparison}, f, indent=2)
            print(f"wrote {args.out}")
            return {"readers": comparison}
    video = Path(args.data) / VIDEO.name
    if not video.is_file():
        print(f"{video} is absent; nothing to measure")
        return {}
    repeats = 2 if args.quick else 5
    clips = 4 if args.quick else 16
    epochs = 3
    length, shift, batch = 16, 8, 32
    layer = FramePixels(size=(32, 32))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Warm up: trace the layer's function and OpenCV's decoder once.
        first_pass(video, layer, tmp / "warmup")
        reference = [opencv_reference(video) for _ in range(repeats)]
        streamed = [stream_only(video) for _ in range(repeats)]
        passes = [first_pass(video, layer, tmp / f"pass{i}") for i in range(repeats)]
        ref_fps = max(n / t for n, t in reference)
        pass_fps = max(n / t for n, t in passes)
        stream_fps = max(n / t for n, t in streamed)

        # The same clip several times makes a cache worth reading (distinct entries, one file).
        sources = [os.fspath(video)] * clips
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
        "video": video.name,
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
        "readers": comparison,
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


# --------------------------------------------------------------------------- readers side by side

# Variable frame rate: irregular gaps (s) as phones write when the scene is still.
_GAPS = (0.02, 0.04, 0.04, 0.1, 0.25)


def _reader_fps(path: Path, backend: str, repeats: int) -> tuple[int, float, list[dict]]:
    from pipelines.report import BadInputReport

    best, count, entries = math.inf, 0, []
    for _ in range(repeats):
        report = BadInputReport()
        start = time.perf_counter()
        count = sum(1 for _ in iter_frames(path, color="bgr", report=report, backend=backend))
        best = min(best, time.perf_counter() - start)
        entries = report.entries
    return count, count / best if best > 0 else 0.0, entries


def _stamps(path: Path, backend: str) -> list[float] | None:
    from pipelines import video as video_module
    from pipelines import video_av

    if backend == "pyav":
        try:
            return [ms for _, _, ms in video_av.raw_frames(path, [])]
        except Exception:  # noqa: BLE001 - a reader that cannot open it
            return None
    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        return None
    stamps = [ms for _, _, ms in video_module._raw_frames(capture, path, [])]
    capture.release()
    return stamps


def _generated_clips(folder: Path) -> list[dict]:
    import numpy as np

    from pipelines.encode import write_video

    rng = np.random.default_rng(0)
    n, h, w = 120, 120, 160
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (w, h))
    frames = np.stack([np.roll(base, 3 * k, axis=1) for k in range(n)])
    times = np.concatenate([[0.0], np.cumsum(rng.choice(_GAPS, size=n - 1))])
    clips = []
    for name, codec, extra in (("vfr_h264.mp4", "libx264", {}), ("vfr_vp9.webm", "libvpx-vp9", {}),
                               ("vfr_ffv1.mkv", "ffv1", {}), ("vfr_mpeg4.avi", "mpeg4", {}),
                               ("vfr_av1.mp4", "libsvtav1", {}), ("rotated_h264.mp4", "libx264", {"rotation": 90})):
        path = folder / name
        try:
            written = write_video(path, frames, times=None if extra else times, fps=25, codec=codec, **extra)
        except Exception as error:  # noqa: BLE001 - an encoder this FFmpeg build lacks
            print(f"skipped {name}: cannot write ({error})")
            continue
        clips.append({"path": path, "times": written, "rotated": bool(extra), "shape": (w, h, 3) if extra
                      else (h, w, 3)})
    return clips


def compare_readers(folder: Path, *, repeats: int) -> list[dict]:
    """Decode fps and reports of both readers on the real videos and on generated clips."""
    import tempfile as _tempfile

    import numpy as np

    rows = []
    real = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov", ".webm"))
    for backend in ("opencv", "pyav"):  # warm up both (imports, first open)
        if real:
            _reader_fps(real[0], backend, 1)
    with _tempfile.TemporaryDirectory() as tmp:
        generated = _generated_clips(Path(tmp))
        for path, clip in [(p, None) for p in real] + [(c["path"], c) for c in generated]:
            for backend in ("opencv", "pyav"):
                count, fps, entries = _reader_fps(path, backend, repeats)
                row = {"file": path.name, "backend": backend, "frames": count, "fps": round(fps, 1),
                       "report": entries[0]["reason"] if entries else ""}
                if clip is not None:
                    stamps = _stamps(path, backend)
                    if stamps:
                        k = min(len(stamps), len(clip["times"]))
                        error = np.abs(np.asarray(stamps[:k]) - 1000 * np.asarray(clip["times"][:k]))
                        row.update(ts_mean_error_ms=round(float(error.mean()), 3),
                                   ts_max_error_ms=round(float(error.max()), 3))
                    if clip["rotated"] and count:
                        first = next(iter_frames(path, backend=backend))
                        row["upright"] = tuple(first.shape) == clip["shape"]
                    row["written_frames"] = len(clip["times"])
                rows.append(row)
    print(f"\nframe readers, all frames as BGR, best of {repeats} (load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs)")
    header = f"{'file':<24} {'backend':<7} {'frames':>9} {'fps':>8} {'ts err ms (mean/max)':>21}  report"
    print(header)
    for r in rows:
        frames = f"{r['frames']}" + (f"/{r['written_frames']}" if "written_frames" in r else "")
        ts = f"{r['ts_mean_error_ms']:.2f}/{r['ts_max_error_ms']:.2f}" if "ts_mean_error_ms" in r else "-"
        upright = {True: " (upright)", False: " (NOT upright)"}.get(r.get("upright"), "")
        print(f"{r['file']:<24} {r['backend']:<7} {frames:>9} {r['fps']:>8.0f} {ts:>21}  {r['report']}{upright}")
    return rows


if __name__ == "__main__":
    main()
