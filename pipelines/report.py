"""Bad-input reports: skip a broken file and say so, or fail naming it (strict mode).

Every decoder and source in pipelines/ routes problems through one ``BadInputReport`` so
that nothing is dropped silently: a skipped file is counted, given a true reason, saved,
and summarised once per run (counts by reason, then the files); in strict mode it is an
error naming the file instead. Library warnings raised while decoding (FFmpeg's log,
Python ``warnings`` from librosa and others) are kept in the same report instead of being
printed raw.

>>> report = BadInputReport(strict=False)
>>> report.add("a.wav", "empty file (0 bytes)")
>>> report.add("b.mp3", "truncated after 1.20 s (the mp4 header declares 3.00 s)")
>>> report.count
2
>>> print(report.summary())
skipped by reason: 1 empty file, 1 truncated
2 input files skipped:
  a.wav: empty file (0 bytes)
  b.mp3: truncated after 1.20 s (the mp4 header declares 3.00 s)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from seqapps.atomic import write_json
from seqapps.errors import BadMediaError

# Reason kinds, longest first where one starts another; a reason's kind is the first
# one it starts with (reasons are written "KIND ..." by pipelines.decode and friends).
REASON_KINDS = (
    "unsupported codec",
    "truncated",
    "no audio stream",
    "no video stream",
    "no audio samples",
    "non-finite samples",
    "permission denied",
    "dangling link",
    "unreadable link",  # a link loop (ELOOP) and the like
    "not a file",
    "file not found",
    "empty file",
    "empty path",  # a manifest row without a path
    "not decodable",
    "cannot be opened",  # "cannot be opened as a video (...)"
    "cannot be read",  # an OSError while reading the header
    "cannot read",  # "cannot read as audio with soundfile (...)" (seqapps detect)
    "no decodable frame",
    "only",  # "only N of M declared frames decode"
    "resolution changed",
    "decoding failed",
    "corrupt after",  # "corrupt after N s (libsndfile: ...)", a stream that loses sync
    "no sample rate",  # "no sample rate in the header"
    "no per-frame targets",
    "too few per-frame targets",
    "missing",  # "missing label (manifest ... line N)", "missing target:x ..."
)
_KIND_NAMES = {"only": "frames missing", "missing": "missing label or target",
               "cannot be opened": "not decodable", "cannot read": "not decodable", "corrupt after": "corrupt"}


def reason_kind(reason: str) -> str:
    """The kind of a reason, for counting: ``"truncated"``, ``"no audio stream"``, ...

    >>> reason_kind("unsupported codec atrac3 (no decoder in this FFmpeg build)")
    'unsupported codec'
    >>> reason_kind("something else entirely")
    'other'
    """
    for kind in REASON_KINDS:
        if reason.startswith(kind):
            return _KIND_NAMES.get(kind, kind)
    return "other"


@dataclass
class BadInputReport:
    """Collects (path, reason) for inputs that could not be used, and library warnings.

    Args:
        strict: when True, ``add`` raises ``BadMediaError`` naming the file instead of
            recording it.

    ``extend`` (how cached splits replay their bad files) never records an entry twice.
    """

    strict: bool = False
    entries: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    def add(self, path: str | os.PathLike, reason: str, *, kept_frames: int | None = None) -> None:
        """Record a bad input; raise ``BadMediaError`` instead in strict mode.

        ``kept_frames`` is set when a partly decodable file was kept (frames before the
        error); the entry is then a warning, not a loss.
        """
        if self.strict:
            raise BadMediaError(path, reason)
        entry = {"path": os.fspath(path), "reason": reason}
        if kept_frames is not None:
            entry["kept_frames"] = int(kept_frames)
        self.entries.append(entry)

    def warn(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        """Keep a library warning (with the file it came from, when known); never raises."""
        entry = {"message": message} if path is None else {"path": os.fspath(path), "message": message}
        if entry not in self.warnings:
            self.warnings.append(entry)

    def extend(self, other: BadInputReport | Iterable[dict]) -> None:
        """Append the entries (and warnings) of another report, e.g. one from a worker or
        a cache; an entry already here (same path and reason) is not added twice, so a
        split read again from its cache is reported once."""
        items = other.entries if isinstance(other, BadInputReport) else other
        for e in items:
            if not any(mine["path"] == e["path"] and mine["reason"] == e["reason"] for mine in self.entries):
                self.entries.append(dict(e))
        if isinstance(other, BadInputReport):
            for w in other.warnings:
                self.warn(w["message"], path=w.get("path"))

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def skipped(self) -> list[dict]:
        """Entries whose file was not used at all."""
        return [e for e in self.entries if "kept_frames" not in e]

    @property
    def skipped_paths(self) -> set[str]:
        return {e["path"] for e in self.skipped}

    def counts_by_reason(self) -> dict[str, int]:
        """Skipped files per reason kind, most frequent first."""
        return dict(Counter(reason_kind(e["reason"]) for e in self.skipped).most_common())

    def summary(self, *, max_files: int = 50, max_warnings: int = 5) -> str:
        """Counts by reason, then the files grouped by reason (at most ``max_files``
        lines), then the library warnings (at most ``max_warnings`` distinct messages)."""
        if not self.entries and not self.warnings:
            return "no bad input files"
        lines = []
        skipped = self.skipped
        partial = [e for e in self.entries if "kept_frames" in e]
        if skipped:
            lines.append("skipped by reason: " + ", ".join(f"{n} {k}" for k, n in self.counts_by_reason().items()))
        if self.entries:
            head = f"{len(skipped)} input file{'s' if len(skipped) != 1 else ''} skipped"
            if partial:
                head += f", {len(partial)} kept in part"
            lines.append(head + ":")
            order = list(self.counts_by_reason())
            shown = sorted(skipped, key=lambda e: order.index(reason_kind(e["reason"]))) + partial
            for e in shown[:max_files]:
                kept = f" (kept {e['kept_frames']} frames)" if "kept_frames" in e else ""
                lines.append(f"  {e['path']}: {e['reason']}{kept}")
            if len(shown) > max_files:
                lines.append(f"  ... and {len(shown) - max_files} more (all listed in bad_inputs.json)")
        if self.warnings:
            messages = Counter(w["message"] for w in self.warnings)
            n_files = len({w["path"] for w in self.warnings if "path" in w})
            lines.append(f"{len(self.warnings)} library warning{'s' if len(self.warnings) != 1 else ''}"
                         f" while decoding ({n_files} file{'s' if n_files != 1 else ''}), kept here instead of printed:")
            for message, n in messages.most_common(max_warnings):
                lines.append(f"  {n} x {message}")
            if len(messages) > max_warnings:
                lines.append(f"  ... and {len(messages) - max_warnings} other messages (in bad_inputs.json)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"count": self.count, "by_reason": self.counts_by_reason(), "entries": self.entries,
                "warnings": self.warnings}

    def save(self, path: str | os.PathLike) -> None:
        """Write the report as JSON (count, by_reason, entries, warnings) atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> BadInputReport:
        """A report written by ``save`` (lenient: a loaded report records, never raises)."""
        saved = json.loads(Path(path).read_text())
        return cls(entries=[dict(e) for e in saved.get("entries", [])],
                   warnings=[dict(w) for w in saved.get("warnings", [])])
