"""Data for the command line: sources, frontends, datasets and clip-level predictions.

The one place where seqapps (models) and pipelines (data) meet, per data kind:
  audio: waveforms are cached by pipelines.audio; the model's LogMelSpectrogram
         frontend turns windows into features inside the graph.
  video: frame features are computed once by the model's frame-feature frontend and
         cached as SequenceExamples (pipelines.frame_cache); training reads them back
         as {"features": ...}, and the exported model keeps the frontend for raw frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines import sources
from pipelines.report import BadInputReport
from seqapps.errors import ConfigError
from seqapps.runs.settings import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS


def load_source(kind: str, *, data_dir=None, manifest=None, task="classify", target_columns=None,
                report: BadInputReport) -> sources.DataSource:
    """A folder with one sub-folder per class, or a CSV manifest."""
    if (data_dir is None) == (manifest is None):
        raise ConfigError("give exactly one of DATA_DIR or --manifest CSV")
    if manifest is not None:
        return sources.from_manifest(manifest, task=task, target_columns=target_columns, report=report)
    if task != "classify":
        raise ConfigError("regression needs a --manifest CSV with numeric targets (a folder gives classes)")
    extensions = AUDIO_EXTENSIONS if kind == "audio" else VIDEO_EXTENSIONS
    source = sources.from_directory(data_dir, extensions=extensions, report=report, kind=kind)
    if "_background_noise_" in source.class_names:
        # Speech Commands' noise recordings (augmentation.noise_dir "auto"), not a class.
        kept = [e for e in source.examples if e.label != "_background_noise_"]
        if not kept:
            raise ConfigError(f"data folder {data_dir} holds only _background_noise_ (no class sub-folders)")
        source = sources.DataSource(examples=kept, class_names=[c for c in source.class_names
                                                                 if c != "_background_noise_"],
                                    target_names=None, task="classify")
    return source


def load_training_source(kind: str, *, data_dir=None, manifest=None, task="classify", target_columns=None,
                         report: BadInputReport, group_pattern: str | None = None, test_dir=None,
                         test_manifest=None) -> sources.DataSource:
    """The training source of `seqapps train`: groups from file names (`group_pattern`)
    and a separate test set (`test_dir` or `test_manifest`, split "test") joined in."""
    from pipelines import groups

    source = load_source(kind, data_dir=data_dir, manifest=manifest, task=task, target_columns=target_columns,
                         report=report)
    if group_pattern is not None:
        source = groups.groups_from_names(source, group_pattern)
    if test_dir is None and test_manifest is None:
        return source
    if test_dir is not None and test_manifest is not None:
        raise ConfigError("give --test-dir or --test-manifest, not both")
    test = load_source(kind, data_dir=test_dir, manifest=test_manifest, task=task, target_columns=target_columns,
                       report=report)
    if group_pattern is not None:
        test = groups.groups_from_names(test, group_pattern)
    return groups.with_test_set(source, test)


def with_model_classes(source: sources.DataSource, class_names: list[str]) -> sources.DataSource:
    """Relabel a source by a trained model's class list (new data may lack some classes)."""
    unknown = sorted({e.label for e in source.examples} - set(class_names))
    if unknown:
        raise ConfigError(f"labels the model was not trained on: {', '.join(unknown)} (known: {', '.join(class_names)})")
    return sources.DataSource(examples=source.examples, class_names=list(class_names),
                              target_names=source.target_names, task=source.task)


# --------------------------------------------------------------------------- frontends
def make_frontend(kind: str, data: dict, *, augmentation: dict | None = None, noise=None):
    """The in-graph frontend for raw input of `kind`, and the raw input shape.

    Audio: see seqapps.runs.speech (`augmentation` settings and decoded `noise` add the
    training-only waveform augmentations).
    """
    if kind == "audio":
        from seqapps.runs.speech import make_speech_frontend

        return make_speech_frontend(data, augmentation=augmentation, noise=noise)
    from seqapps.layers.video_flow import FrameFlow
    from seqapps.layers.video_frontends import (
        ColorHistogram,
        FrameDifference,
        FrameFeatures,
        FrameMotion,
        FramePixels,
    )

    # `flow` keeps its layer defaults (32x32, 4x4 cells) rather than `pixel_size`: the
    # gradients need the object's edges resolved, which 8x8 frames blur away.
    makers = {
        "pixels": lambda: FramePixels(size=tuple(data["pixel_size"]), grayscale=data["grayscale"],
                                      normalization=data["pixel_normalization"]),
        "motion": lambda: FrameMotion(grid=(2, 2)),
        "histogram": lambda: ColorHistogram(bins=8),
        "difference": lambda: FrameDifference(size=tuple(data["pixel_size"])),
        "flow": lambda: FrameFlow(),
    }
    unknown = [name for name in data["features"] if name not in makers]
    if unknown or not data["features"]:
        raise ConfigError(
            f"`data.features` must be a non-empty list drawn from {sorted(makers)}. Received: {data['features']!r}"
        )
    parts = [makers[name]() for name in data["features"]]
    frontend = parts[0] if len(parts) == 1 else FrameFeatures(layers=parts)
    height, width = data["size"]
    return frontend, (None, height, width, 3)


def preprocessing_config(kind: str, data: dict) -> dict:
    """What a client must do before calling the model: the export's preprocessing.json."""
    if kind == "audio":
        rate = data["sample_rate"]
        return {
            "kind": "audio",
            "sample_rate": rate,
            "window_samples": int(round(data["window_seconds"] * rate)),
            "hop_samples": int(round(data["hop_seconds"] * rate)),
        }
    return {
        "kind": "video",
        "fps": data["fps"],
        "size": list(data["size"]),
        "window_frames": data["window_frames"],
        "hop_frames": data["hop_frames"],
    }


# --------------------------------------------------------------------------- datasets
def _rename_inputs_to_features(inputs, *rest):
    renamed = {"features": inputs["inputs"], "mask": inputs["mask"]}
    if "clip_index" in inputs:
        renamed["clip_index"] = inputs["clip_index"]
    return (renamed, *rest)


def make_dataset(kind: str, source, indices, *, data: dict, frontend, batch_size: int, shuffle: bool,
                 seed: int, cache_dir: str | os.PathLike, report: BadInputReport,
                 with_clip_index: bool = False) -> tf.data.Dataset:
    """Batches of ({"inputs"|"features", "mask"[, "clip_index"]}, targets) for one split."""
    if kind == "audio":
        from pipelines.audio import audio_dataset

        return audio_dataset(
            source, indices, sample_rate=data["sample_rate"], window_seconds=data["window_seconds"],
            hop_seconds=data["hop_seconds"], batch_size=batch_size, shuffle=shuffle, seed=seed,
            cache_dir=cache_dir, report=report, with_clip_index=with_clip_index, print_summary=False,
        )
    from pipelines.frame_cache import read_frame_cache, write_frame_cache

    folder = write_frame_cache(
        source, indices, Path(cache_dir), feature_layer=frontend, fps=data["fps"], size=tuple(data["size"]),
        report=report, backend=data.get("video_backend"),
    )
    dataset = read_frame_cache(
        folder, window_frames=data["window_frames"], hop_frames=data["hop_frames"], batch_size=batch_size,
        target="label" if source.task == "classify" else "clip_targets", shuffle=shuffle, seed=seed,
        with_clip_index=with_clip_index,
    )
    return dataset.map(_rename_inputs_to_features)


def window_and_hop(preprocessing: dict) -> tuple[int, int]:
    """(window, hop) in samples (audio) or frames (video) of a run's preprocessing config."""
    from seqapps.serving import window_settings

    settings = window_settings(preprocessing)
    if settings is None:
        raise ConfigError("the run's config.json sets no window (window_samples or window_frames)")
    return settings


def clip_predictions(model, kind: str, source, indices, *, data: dict, cache_dir: str | os.PathLike,
                     report: BadInputReport):
    """``model.predict_clip`` on every usable clip of examples `indices` of `source`.

    Audio clips are decoded (``pipelines.audio.decode_files``); video clips are read back
    as whole-clip frame features from the frame cache (the one training built, so the
    features are those of training). Bad files go to `report`.

    Returns (source indices of the predicted clips, int64; their predictions; targets).
    """
    indices = np.asarray(indices, dtype=np.int64)
    window, hop = window_and_hop(preprocessing_config(kind, data))
    predict = tf.function(lambda clips: model.predict_clip(clips, window=window, hop=hop), reduce_retracing=True)
    if source.task == "classify":
        all_targets = np.asarray(source.labels_as_ids(), dtype=np.int32)
    else:
        all_targets = np.asarray(source.targets_array(), dtype=np.float32)
    from pipelines.progress import progress

    clips, predictions = [], []
    if kind == "audio":
        # Its own report, merged without repeats: in a training run these files were
        # decoded (and reported) once already, for the datasets.
        local = BadInputReport(strict=report.strict)
        waveforms = _cached_or_decoded([source.examples[int(i)].path for i in indices],
                                       sample_rate=data["sample_rate"], cache_dir=cache_dir, report=local)
        report.extend(local)
        with progress(total=len(indices), description="evaluate", unit="clip") as bar:
            for index, waveform in zip(indices, waveforms, strict=True):
                if waveform is not None and len(waveform):
                    clips.append(index)
                    predictions.append(predict(waveform[np.newaxis]).numpy()[0])
                bar.update(1)
    else:
        from pipelines.frame_cache import read_cached_clips, write_frame_cache

        folder = write_frame_cache(source, indices, Path(cache_dir), feature_layer=model.frontend,
                                   fps=data["fps"], size=tuple(data["size"]), report=report,
                                   backend=data.get("video_backend"))
        with progress(total=len(indices), description="evaluate", unit="clip") as bar:
            for clip in read_cached_clips(folder):
                clips.append(int(clip["clip_index"]))
                predictions.append(predict({"features": clip["features"][tf.newaxis]}).numpy()[0])
                bar.update(1)
    if not predictions:
        raise ConfigError("no clips to evaluate: every file was skipped (see the bad-input report)")
    clips = np.asarray(clips, dtype=np.int64)
    return clips, np.stack(predictions), all_targets[clips]


def _cached_or_decoded(paths: list[str], *, sample_rate: int, cache_dir, report: BadInputReport) -> list:
    """Waveforms of `paths` (None for bad files): read back from the waveform cache the
    datasets built (a training run's val and test splits) when there is one, else decoded.

    The progress line says which: ``read audio cache`` or ``decode audio``.
    """
    from pipelines.audio import build_cache, cache_key, decode_files
    from pipelines.progress import progress

    key = cache_key(paths, sample_rate=sample_rate)
    if cache_dir is None or not (Path(cache_dir) / f"audio-{key}" / "manifest.json").is_file():
        return decode_files(paths, sample_rate=sample_rate, report=report)
    # A hit (an incomplete folder is decoded and cached again first, saying so).
    folder, meta = build_cache(paths, cache_dir=cache_dir, sample_rate=sample_rate, report=report)
    spec = {"waveform": tf.io.FixedLenFeature([], tf.string), "position": tf.io.FixedLenFeature([], tf.int64)}
    waveforms: list = [None] * len(paths)
    records = tf.data.TFRecordDataset([os.fspath(folder / name) for name in meta["shards"]])
    with progress(total=len(meta["positions"]), description="read audio cache", unit="file") as bar:
        for record in records.map(lambda r: tf.io.parse_single_example(r, spec)).as_numpy_iterator():
            waveforms[int(record["position"])] = np.frombuffer(record["waveform"], dtype=np.float32)
            bar.update(1)
    return waveforms


def decode_file(kind: str, path: str, data: dict) -> np.ndarray:
    """Raw input of one file for prediction: waveform [samples] or frames [time, h, w, 3]."""
    if kind == "audio":
        from pipelines.audio import load_audio

        return load_audio(path, sample_rate=data["sample_rate"])
    from pipelines.video import read_clip

    # .get: runs trained before `data.video_backend` existed read with the default.
    return read_clip(path, fps=data["fps"], size=tuple(data["size"]), backend=data.get("video_backend"))
