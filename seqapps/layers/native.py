"""The compiled time loops (recurrence_kernels.cc): built on first use, cached, optional.

The recursion's loops run as two TensorFlow CPU kernels when this module can build them
with the machine's C++ compiler against the installed TensorFlow (the way TensorFlow
documents custom ops: `tf.sysconfig` flags, `tf.load_op_library`). The library is built
once per TensorFlow version, source and CPU into a cache folder and then loaded in a
fraction of a second. `make` builds it while setting up `.venv` (see main()).

When it cannot be built (no compiler, unwritable cache, another platform) or
SEQAPPS_NATIVE_KERNELS=0 is set, `load()` returns None after one warning and the layer
runs its loops as TF graph ops: same results, slower training steps.

>>> ops = load()                      # doctest: +SKIP
>>> states, final = ops.seqapps_recurrence_forward(x, w_x, b, w_s, s0, activation="tanh")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import tensorflow as tf

from seqapps.atomic import atomic_path

SOURCE = Path(__file__).with_name("recurrence_kernels.cc")
DISABLE_VARIABLE = "SEQAPPS_NATIVE_KERNELS"
CACHE_VARIABLE = "SEQAPPS_KERNEL_CACHE"
COMPILE_SECONDS = 600


def cache_dir() -> Path:
    """SEQAPPS_KERNEL_CACHE if set; else $XDG_CACHE_HOME/seqapps/kernels or
    ~/.cache/seqapps/kernels, or a folder in the temp dir when that cannot be written
    (a read-only home in a container)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    preferred = Path(base) / "seqapps" / "kernels"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"seqapps-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def compile_command(output: Path) -> list[str]:
    """g++ for this machine's CPU (the library is cached per CPU, see library_path)."""
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "g++"
    flags = ["-shared", "-fPIC", "-O3", "-march=native", "-DNDEBUG", "-w"]
    if {"avx512fp16", "avx512_fp16"} & _cpu_flags():
        # Eigen's AVX512-FP16 packets do not compile with GCC 12; float32/64 never use them.
        flags.append("-mno-avx512fp16")
    return [compiler, *flags, str(SOURCE), "-o", str(output),
            *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]


def library_path() -> Path:
    """Where the library for this source, TensorFlow, platform and CPU lives in the cache."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__.encode(), platform.platform().encode(),
                 " ".join(sorted(_cpu_flags())).encode(), " ".join(compile_command(Path("x"))).encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"recurrence_kernels-{key.hexdigest()[:16]}.so"


def build(*, force: bool = False) -> Path:
    """Compile the library into the cache (atomically: concurrent builds cannot clash).

    Raises:
        RuntimeError: naming the compiler command and its last error lines.
    """
    target = library_path()
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A first training step that sits silent for a minute looks hung: say why.
    print(f"seqapps: compiling the Recurrent layer's training kernels into {target.parent} "
          "(once per TensorFlow version and CPU, about a minute)", file=sys.stderr, flush=True)
    try:
        with atomic_path(target) as partial:
            command = compile_command(partial)
            done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_SECONDS)
            if done.returncode != 0:
                tail = "\n".join(line for line in done.stderr.splitlines() if "error" in line)[-2000:]
                raise RuntimeError(f"building {SOURCE.name} failed ({command[0]} exit "
                                   f"{done.returncode}):\n{tail or done.stderr[-2000:]}")
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"building {SOURCE.name} failed: {error}") from error
    return target


def enabled() -> bool:
    """False when SEQAPPS_NATIVE_KERNELS is 0/false/no/off."""
    return os.environ.get(DISABLE_VARIABLE, "1").strip().lower() not in {"0", "false", "no", "off"}


_LOAD_LOCK = threading.Lock()


@functools.cache
def _load_library():
    try:
        return tf.load_op_library(str(build()))
    except (RuntimeError, OSError, tf.errors.NotFoundError) as error:
        warnings.warn(
            f"seqapps: compiled recurrence kernels unavailable, using TF graph loops "
            f"(same results, slower training). Reason: {error}", RuntimeWarning, stacklevel=3
        )
        return None


def load():
    """The loaded op module (seqapps_recurrence_forward / _backward), or None."""
    if not enabled():
        return None
    # Replicas of a tf.distribute strategy trace the layer in parallel threads: one builds.
    with _LOAD_LOCK:
        return _load_library()


def main() -> int:
    """Build (or find) the library and print its path; exit 0 even when it cannot be
    built (the layer works without it), after saying why on stderr."""
    if not enabled():
        print(f"{DISABLE_VARIABLE} is off: not building")
        return 0
    try:
        path = build()
        tf.load_op_library(str(path))
    except (RuntimeError, OSError, tf.errors.NotFoundError) as error:
        # Not fatal: the layer works without it.
        print(f"warning: {error}\nThe layer will use TF graph loops (slower training).", file=sys.stderr)
        return 0
    print(path)
    return 0

