"""Bad-input reports count every reason the decoders write under a named kind, never "other".

The reasons are read from the source (every ``BadMediaError(path, REASON)``,
``report.add(path, REASON)``, ``problems.append(REASON)``, ``reason = REASON`` and the
strings returned by the ``*_problem`` / ``*_truncation`` helpers in pipelines/ and
seqapps/runs/), so a new reason without a kind fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines.report import BadInputReport, reason_kind

ROOT = Path(__file__).resolve().parents[2]
SCANNED = sorted((ROOT / "pipelines").glob("*.py")) + sorted((ROOT / "seqapps" / "runs").glob("*.py"))
_HELPER = re.compile(r"problem|truncation")


def _leading_text(node) -> str | None:
    """The literal start of a string expression: "truncated after " of
    f"truncated after {s:.2f} s", or None when it is not a string expression."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if not isinstance(part, ast.Constant):
                break
            text += part.value
        return text
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _leading_text(node.left)
    if isinstance(node, ast.Subscript):  # f"...".splitlines()[0]
        return _leading_text(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _leading_text(node.func.value)
    return None


def _reason_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if name == "BadMediaError" and len(node.args) >= 2:
                yield node.args[1]
            elif name == "add" and "report" in receiver and len(node.args) >= 2:
                yield node.args[1]
            elif name == "append" and receiver == "problems" and node.args:
                yield node.args[0]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "reason" for t in node.targets):
            yield node.value
        elif isinstance(node, ast.FunctionDef) and _HELPER.search(node.name):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and inner.value is not None:
                    yield inner.value


def _written_reasons() -> dict[str, str]:
    """{literal start of a reason: "file:line"} over the scanned modules."""
    found = {}
    for path in SCANNED:
        nodes = list(_reason_nodes(ast.parse(path.read_text(), filename=str(path))))
        while nodes:
            node = nodes.pop()
            if isinstance(node, ast.IfExp):  # "not a file (a pipe)" if fifo else "not a file"
                nodes += [node.body, node.orelse]
                continue
            text = _leading_text(node)
            if text and text.strip():  # "" : built from another reason (f"{problem} {where}")
                found.setdefault(text, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_reason_in_the_source_has_a_named_kind():
    reasons = _written_reasons()
    # The scan sees the reasons it must (else this test would pass on nothing).
    for expected in ("cannot be opened as a video", "unreadable link (", "cannot be read (", "truncated after ",
                     "dangling link (points to ", "empty file (0 bytes)", "no decodable frame", "only ",
                     "not a file (a pipe)", "non-finite samples: ", "unsupported codec "):
        assert any(r.startswith(expected) for r in reasons), expected
    assert len(reasons) >= 25
    other = {r: where for r, where in reasons.items() if reason_kind(r) == "other"}
    assert not other, f"reasons counted as 'other': {other}"


@pytest.mark.parametrize("reason, kind", [
    ("cannot be opened as a video (Invalid data found when processing input)", "not decodable"),
    ("cannot be opened as a video (unreadable or not a video file)", "not decodable"),
    ("cannot be read (Input/output error)", "cannot be read"),
    ("unreadable link (Too many levels of symbolic links)", "unreadable link"),
    ("only 68 of 444 declared frames decode", "frames missing"),
    ("missing label (manifest m.csv line 5)", "missing label or target"),
    ("too few per-frame targets (3 for 8 frames); frame targets not cached", "too few per-frame targets"),
    ("truncated or corrupt: opus decoding stopped after 1.00 s (x)", "truncated"),
    ("something nobody wrote", "other"),
])
def test_reason_kinds(reason, kind):
    assert reason_kind(reason) == kind


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_a_text_file_named_mp4_is_counted_as_not_decodable(tmp_path, backend):
    from pipelines.video import read_clip

    path = tmp_path / "notes.mp4"
    path.write_text("shopping list, not a video\n" * 20)
    report = BadInputReport()
    assert read_clip(path, fps=None, size=(16, 16), report=report, backend=backend) is None
    assert [e["path"] for e in report.skipped] == [str(path)]
    assert report.counts_by_reason() == {"not decodable": 1}, report.entries
    assert report.summary().startswith("skipped by reason: 1 not decodable\n")


def test_a_link_loop_is_an_unreadable_link(tmp_path):
    import soundfile

    from pipelines.sources import from_directory

    (tmp_path / "a").mkdir()
    soundfile.write(tmp_path / "a" / "tone.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "a" / "loop.wav").symlink_to(tmp_path / "a" / "loop.wav")
    report = BadInputReport()
    source = from_directory(tmp_path, extensions=(".wav",), report=report, kind="audio")
    assert [Path(e.path).name for e in source.examples] == ["tone.wav"]
    assert report.counts_by_reason() == {"unreadable link": 1}, report.entries


def test_a_saved_report_loads_back_and_merges_without_repeats(tmp_path):
    report = BadInputReport()
    report.add("a.wav", "empty file (0 bytes)")
    report.add("b.wav", "truncated after 0.31 s (the mp3 header declares 1.00 s)", kept_frames=3)
    report.warn("aac: 1 corrupt packet skipped", path="c.m4a")
    report.save(tmp_path / "bad_inputs.json")
    loaded = BadInputReport.load(tmp_path / "bad_inputs.json")
    assert (loaded.entries, loaded.warnings, loaded.strict) == (report.entries, report.warnings, False)
    report.extend(loaded)  # a resumed fold's report merged into the run's: nothing twice
    assert report.to_dict() == loaded.to_dict()
