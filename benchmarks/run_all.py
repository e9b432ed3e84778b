"""Run every benchmark in turn (`make bench`); each prints its table and writes JSON.

    python benchmarks/run_all.py            # full runs
    python benchmarks/run_all.py --quick    # the --quick variant of each

A benchmark that fails is reported and the others still run; the exit status is
non-zero when any failed. Results: bench_out/<name>.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Fast questions first; the long training comparisons last. Not here, because they need
# data made first or run for hours: proxy_speakers + speaker_independence, video_suite,
# placement, decode_ab (see benchmarks/README.md for their commands).
ORDER = ["recurrent", "pipeline_audio", "pipeline_video", "serving", "streaming", "streaming_cmvn",
         "long_memory", "accuracy_audio"]
# What --quick passes to each (most take --quick themselves).
QUICK = {name: ["--quick"] for name in ORDER}
QUICK["streaming_cmvn"] = ["--epochs", "3", "--per-class", "20"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=ORDER)
    args = parser.parse_args()
    results = {}
    for name in args.only or ORDER:
        command = [sys.executable, str(HERE / f"{name}.py")] + (QUICK[name] if args.quick else [])
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=HERE.parent)
        results[name] = (code, time.perf_counter() - start)
    print("\n=== summary")
    for name, (code, seconds) in results.items():
        print(f"  {name:16s} {'ok' if code == 0 else f'FAILED (exit {code})':>18s} {seconds:7.0f} s")
    return 1 if any(code for code, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
