"""Progress on a terminal that reports no size (a pty nobody sized: `script`, some CI runners)."""

from __future__ import annotations

import os
import select

import pytest

from pipelines.progress import progress

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _drawn(columns: int | None) -> str:
    master, slave = os.openpty()
    if columns is not None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    with os.fdopen(slave, "w") as stream:
        with progress(total=3, description="decode audio", unit="file", enabled=True, stream=stream) as bar:
            for _ in range(3):
                bar.update(1)
        stream.flush()
        out = b""
        while select.select([master], [], [], 0.5)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            out += chunk
    os.close(master)
    return out.decode("utf-8", "replace")


def test_a_zero_column_terminal_still_gets_a_bar():
    drawn = _drawn(None)
    last = drawn.strip().split("\r")[-1]
    assert "decode audio: 100%" in last and "3/3" in last
    assert len(last) <= 80


def test_a_sized_terminal_uses_its_width():
    last = _drawn(120).strip().split("\r")[-1]
    assert "decode audio: 100%" in last and "3/3" in last and 80 < len(last) <= 120
