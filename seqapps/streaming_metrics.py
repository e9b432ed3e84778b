"""Streaming accuracy on long recordings, as TF's speech_commands/test_streaming_accuracy.py.

Ground truth is an events CSV with a header ``path,label,start,end`` (seconds from the start
of the file; paths relative to the CSV's folder unless absolute). Detections (label, time)
are matched in time order, as TF's ``StreamingAccuracyStats``:

- a detection at time t looks for the first ground-truth event (by start) whose span
  widened by ``tolerance_ms`` on both sides, [start - tol, end + tol], contains t (TF
  widens the event's start time alone; events here have an extent);
- same label and that event not matched before: **matched** (correct); otherwise
  **wrong** (wrong label, or a second detection of a matched event, as in TF); the event
  counts as taken either way;
- no event near t: a **false** detection (false accept).

Reported: ``events``, ``detections``, ``matched``, ``wrong``, ``false``, ``hours``,
``false_accepts_per_hour`` = false / hours, ``miss_rate`` = (events - matched) / events,
and the latency of matched detections in ms (``latency_ms``: median and mean of t - end,
and median of t - start).

>>> truth = [("yes", 1.0, 1.6), ("no", 5.0, 5.5)]
>>> found = [("yes", 1.7), ("yes", 3.0), ("yes", 5.2)]
>>> m = streaming_metrics(truth, found, duration_seconds=3600.0, tolerance_ms=300)
>>> m["matched"], m["wrong"], m["false"], m["false_accepts_per_hour"], m["miss_rate"]
(1, 1, 1, 1.0, 0.5)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from seqapps.errors import ConfigError, invalid_argument

__all__ = ["read_events_csv", "streaming_metrics", "streaming_metrics_many"]

COLUMNS = ("path", "label", "start", "end")


def read_events_csv(path: str | os.PathLike) -> dict[Path, list[tuple[str, float, float]]]:
    """Ground-truth events per recording: {resolved path: [(label, start, end), ...]} sorted
    by start. Errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"events CSV not found: {path}")
    events: dict[Path, list[tuple[str, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: the header must name {', '.join(COLUMNS)}; missing {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = float(row["start"]), float(row["end"])
            except (TypeError, ValueError):
                raise ConfigError(f"{path}, line {line}: start and end must be numbers of seconds. "
                                  f"Received: start={row['start']!r}, end={row['end']!r}") from None
            if not 0 <= start <= end:
                raise ConfigError(f"{path}, line {line}: need 0 <= start <= end. Received: start={start}, end={end}")
            recording = Path(row["path"])
            recording = recording if recording.is_absolute() else path.parent / recording
            events.setdefault(recording, []).append((str(row["label"]), start, end))
    for recording in events:
        events[recording].sort(key=lambda event: event[1])
    return events


def streaming_metrics(truth: Iterable, detections: Iterable, *, duration_seconds: float,
                      tolerance_ms: float = 500.0) -> dict:
    """Metrics of one recording (see module docstring).

    Args:
        truth: (label, start, end) ground-truth events, seconds.
        detections: (label, time) in seconds, or objects with ``label`` and ``start``
            (seqapps.layers.detection.Event).
        duration_seconds: the recording's length (for false accepts per hour).
        tolerance_ms: how far outside an event a detection still matches it.
    """
    return streaming_metrics_many([(truth, detections, duration_seconds)], tolerance_ms=tolerance_ms)


def streaming_metrics_many(recordings: Iterable, *, tolerance_ms: float = 500.0) -> dict:
    """Metrics over several recordings: (truth, detections, duration_seconds) triples;
    counts and hours add up, rates and latencies are over all of them."""
    if not tolerance_ms >= 0:
        raise invalid_argument("tolerance_ms", tolerance_ms, "a non-negative number")
    counts = dict.fromkeys(("events", "detections", "matched", "wrong", "false"), 0)
    seconds, from_start, from_end = 0.0, [], []
    for truth, detections, duration in recordings:
        if not duration > 0:
            raise invalid_argument("duration_seconds", duration, "a positive number")
        seconds += float(duration)
        one = _match(truth, detections, tolerance_ms / 1000.0)
        for key in counts:
            counts[key] += one[key]
        from_start += one["from_start"]
        from_end += one["from_end"]
    if not seconds:
        raise invalid_argument("recordings", [], "at least one recording")
    return _summary(**counts, seconds=seconds, from_start=from_start, from_end=from_end)


def _match(truth, detections, tolerance: float) -> dict:
    truth = sorted(((str(label), float(start), float(end)) for label, start, end in truth), key=lambda e: e[1])
    found = sorted((_as_pair(d) for d in detections), key=lambda d: d[1])
    taken: set[int] = set()
    result = {"events": len(truth), "detections": len(found), "matched": 0, "wrong": 0, "false": 0,
              "from_start": [], "from_end": []}
    for label, time in found:
        index = next((i for i, (_, start, end) in enumerate(truth)
                      if start - tolerance <= time <= end + tolerance), None)
        if index is None:
            result["false"] += 1
            continue
        if truth[index][0] == label and index not in taken:
            result["matched"] += 1
            result["from_start"].append(1000.0 * (time - truth[index][1]))
            result["from_end"].append(1000.0 * (time - truth[index][2]))
        else:
            result["wrong"] += 1
        taken.add(index)
    return result


def _as_pair(detection) -> tuple[str, float]:
    if hasattr(detection, "label"):
        return str(detection.label), float(detection.start)
    label, time = detection
    return str(label), float(time)


def _summary(*, events, detections, matched, wrong, false, seconds, from_start, from_end) -> dict:
    hours = seconds / 3600.0

    def stat(values, function):
        return float(function(values)) if values else None

    return {
        "events": events,
        "detections": detections,
        "matched": matched,
        "wrong": wrong,
        "false": false,
        "hours": hours,
        "false_accepts_per_hour": false / hours,
        "miss_rate": (events - matched) / events if events else None,
        "latency_ms": {
            "median_from_end": stat(from_end, np.median),
            "mean_from_end": stat(from_end, np.mean),
            "median_from_start": stat(from_start, np.median),
        },
    }
