"""Progress of long steps: a tqdm bar on a terminal, one line per stage in logs.

Decoding a few thousand files takes a minute; a user should see count, rate and ETA.
On a terminal (stderr is a TTY) that is a ``tqdm`` bar; when stderr is a file or a pipe
(CI logs, ``2> log``) a bar would write hundreds of carriage-return updates, so each stage
writes one line when it ends instead: ``decode audio: 879 files in 12.3 s (71.5 files/s)``.
Everything goes to stderr, so ``--json`` output on stdout stays pure JSON.

``SEQAPPS_PROGRESS=0`` turns progress off, ``=1`` forces it on (also for small stages).

>>> with progress(total=3, description="decode audio", unit="file", enabled=False) as bar:
...     for _ in range(3):
...         bar.update(1)
>>> bar.count
3
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["MIN_ITEMS", "progress"]

MIN_ITEMS = 20  # smaller stages finish too fast for progress to help


class _Progress:
    def __init__(self, *, total: int | None, description: str, unit: str, enabled: bool, stream):
        self.total, self.description, self.unit = total, description, unit
        self.enabled, self.stream = enabled, stream
        self.count = 0
        self._bar = None
        self._start = None

    def __enter__(self):
        self._start = time.perf_counter()
        if self.enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            # A terminal that reports 0 columns (a pty nobody sized: `script`, some CI
            # runners) makes tqdm draw nothing at all; draw 80 columns there instead.
            width = None if _columns(self.stream) else 80
            self._bar = tqdm(total=self.total, desc=self.description, unit=self.unit, file=self.stream,
                             dynamic_ncols=width is None, ncols=width, leave=True)
        return self

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, exc_type, exc, tb):
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and exc_type is None:
            seconds = time.perf_counter() - self._start
            rate = self.count / seconds if seconds > 0 else float("inf")
            units = self.unit if self.count == 1 else self.unit + "s"
            print(f"{self.description}: {self.count} {units} in {seconds:.1f} s ({rate:.1f} {self.unit}s/s)",
                  file=self.stream, flush=True)
        return False


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _wanted(enabled: bool | None, total: int | None) -> bool:
    setting = os.environ.get("SEQAPPS_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if enabled is not None:
        return enabled
    if setting in ("1", "true", "yes", "on"):
        return True
    return total is None or total >= MIN_ITEMS


def progress(*, total: int | None, description: str, unit: str = "item", enabled: bool | None = None,
             stream=None) -> _Progress:
    """A context manager with ``update(n)``: tqdm on a terminal, one closing line otherwise.

    Args:
        total: how many items the stage has (None: unknown).
        description: the stage, e.g. ``"decode audio"``.
        unit: what an item is, e.g. ``"file"``.
        enabled: True/False to force; None (default): on for ``total >= MIN_ITEMS``.
            ``SEQAPPS_PROGRESS=0`` in the environment overrides everything.
        stream: where to write (default ``sys.stderr``).
    """
    return _Progress(total=total, description=description, unit=unit, enabled=_wanted(enabled, total),
                     stream=stream if stream is not None else sys.stderr)
