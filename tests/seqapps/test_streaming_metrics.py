"""seqapps.streaming_metrics: TF test_streaming_accuracy's matching, hand-computed cases."""

from __future__ import annotations

import pytest

from seqapps.errors import ConfigError
from seqapps.layers.detection import Event
from seqapps.streaming_metrics import read_events_csv, streaming_metrics, streaming_metrics_many


def test_matched_wrong_false_and_rates():
    truth = [("yes", 1.0, 1.5), ("no", 4.0, 4.4), ("yes", 8.0, 8.5)]
    found = [
        ("yes", 1.6),   # within 0.2 s of the first event, but after 1.2 matched it: wrong (as TF)
        ("yes", 1.2),   # inside the first event, first in time: matched (200 ms after its start)
        ("yes", 4.1),   # inside "no": wrong label
        ("no", 6.0),    # nothing near: false
        Event("yes", 7.9, 8.2, 0.9),  # 0.1 s before the third event: matched, from its start -100 ms
    ]
    metrics = streaming_metrics(truth, found, duration_seconds=1800.0, tolerance_ms=200)
    assert (metrics["events"], metrics["detections"]) == (3, 5)
    assert (metrics["matched"], metrics["wrong"], metrics["false"]) == (2, 2, 1)
    assert metrics["hours"] == 0.5 and metrics["false_accepts_per_hour"] == 2.0
    assert metrics["miss_rate"] == pytest.approx(1 / 3)
    latency = metrics["latency_ms"]
    assert latency["median_from_start"] == pytest.approx((200.0 - 100.0) / 2)
    assert latency["median_from_end"] == pytest.approx((-300.0 - 600.0) / 2)


def test_several_recordings_add_up():
    one = ([("a", 1.0, 2.0)], [("a", 1.5)], 3600.0)
    two = ([("a", 1.0, 2.0)], [("b", 10.0)], 3600.0)
    metrics = streaming_metrics_many([one, two], tolerance_ms=0)
    assert (metrics["matched"], metrics["false"], metrics["hours"]) == (1, 1, 2.0)
    assert metrics["false_accepts_per_hour"] == 0.5 and metrics["miss_rate"] == 0.5
    assert metrics["latency_ms"]["median_from_start"] == pytest.approx(500.0)


def test_no_detections_and_bad_arguments():
    metrics = streaming_metrics([("a", 0.0, 1.0)], [], duration_seconds=10.0)
    assert metrics["miss_rate"] == 1.0 and metrics["latency_ms"]["median_from_end"] is None
    with pytest.raises(ValueError, match="duration_seconds"):
        streaming_metrics([], [], duration_seconds=0.0)
    with pytest.raises(ValueError, match="tolerance_ms"):
        streaming_metrics([], [], duration_seconds=1.0, tolerance_ms=-1)


def test_events_csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("path,label,start,end\nlong.wav,yes,3.0,3.5\nlong.wav,no,1.0,1.2\n/abs/other.wav,yes,0,1\n")
    events = read_events_csv(path)
    assert events[tmp_path / "long.wav"] == [("no", 1.0, 1.2), ("yes", 3.0, 3.5)]
    assert list(events)[1].as_posix() == "/abs/other.wav"
    path.write_text("path,label,start,end\nlong.wav,yes,three,3.5\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_events_csv(path)
    path.write_text("file,label,start\n")
    with pytest.raises(ConfigError, match="missing path, end"):
        read_events_csv(path)
    with pytest.raises(ConfigError, match="not found"):
        read_events_csv(tmp_path / "missing.csv")
