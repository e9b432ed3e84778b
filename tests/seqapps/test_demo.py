"""The demo job wired end to end on tiny data (accuracy and time are measured by `make demo`)."""

from __future__ import annotations

import json

from seqapps.export import load_exported
from seqapps.runs.demo import run_demo


def test_demo_trains_evaluates_and_exports_both_kinds(tmp_path, capsys):
    summary = run_demo(tmp_path / "out", epochs=1, base_dir=str(tmp_path / "saved_models"),
                       audio_per_class=4, video_per_class=4)
    assert set(summary) == {"audio", "video"}
    for kind, entry in summary.items():
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["n_clips"] > 0
        exported = load_exported(entry["export"])
        assert exported.preprocessing["kind"] == kind
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed and "audio" in printed and "video" in printed
