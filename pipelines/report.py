"""Bad-input reports: skip a broken file and say so, or fail naming it (strict mode).

Every decoder and source in pipelines/ routes problems through one ``BadInputReport`` so
that nothing is dropped silently: a skipped file is counted, given a reason, printed and
saved; in strict mode it is an error naming the file instead.

>>> report = BadInputReport(strict=False)
>>> report.add("a.wav", "empty file")
>>> report.count
1
>>> report.summary().splitlines()[0]
'1 input file skipped:'
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from seqapps.atomic import write_json
from seqapps.errors import BadMediaError


@dataclass
class BadInputReport:
    """Collects (path, reason) for inputs that could not be used.

    Args:
        strict: when True, ``add`` raises ``BadMediaError`` naming the file instead of
            recording it.
    """

    strict: bool = False
    entries: list[dict] = field(default_factory=list)

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

    def extend(self, other: BadInputReport | Iterable[dict]) -> None:
        """Append the entries of another report (e.g. one from a worker process)."""
        items = other.entries if isinstance(other, BadInputReport) else other
        self.entries.extend(dict(e) for e in items)

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def skipped(self) -> list[dict]:
        """Entries whose file was not used at all."""
        return [e for e in self.entries if "kept_frames" not in e]

    def summary(self) -> str:
        """A human-readable summary: count, then one line per file with its reason."""
        if not self.entries:
            return "no bad input files"
        skipped = len(self.skipped)
        partial = self.count - skipped
        head = f"{skipped} input file{'s' if skipped != 1 else ''} skipped"
        if partial:
            head += f", {partial} kept in part"
        lines = [head + ":"]
        for e in self.entries:
            kept = f" (kept {e['kept_frames']} frames)" if "kept_frames" in e else ""
            lines.append(f"  {e['path']}: {e['reason']}{kept}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> None:
        """Write the report as JSON ({"count": N, "entries": [...]}) atomically."""
        write_json(path, {"count": self.count, "entries": self.entries})
