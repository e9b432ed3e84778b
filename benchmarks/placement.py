"""Where should a short word sit in a 1 s window? `data.placement` none / trim / centre.

espeak-ng digits (benchmarks/espeak_digits.py, trimmed words of 0.3-0.7 s) are placed at
a random offset inside 1 s clips over a quiet noise floor (as in Speech Commands, where
the word is somewhere in the second), then each placement is trained and scored by
leave-voices-out group cross-validation (seqapps.runs.crossval) with the same budget.
Prints a table (mean ± std over folds) and writes JSON.

    PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/placement.py bench_out/placement
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.espeak_digits import generate_digits  # noqa: E402

VARIANTS = ("m1", "m3", "f1", "f3", "m5", "f5")


def placed_clips(manifest: Path, out_dir: Path, *, seconds: float = 1.0, seed: int = 0) -> Path:
    """Each word at a random offset in a `seconds` clip with noise 45-55 dB below it."""
    import soundfile

    rng = np.random.default_rng(seed)
    rows = []
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            word, rate = soundfile.read(manifest.parent / row["path"], dtype="float32")
            total = int(seconds * rate)
            word = word[:total]
            clip = np.zeros(total, np.float32)
            start = int(rng.integers(0, total - word.size + 1))
            clip[start:start + word.size] = word
            rms = np.sqrt(np.mean(word**2))
            clip += (rng.normal(size=total) * rms * 10 ** (-rng.uniform(45, 55) / 20)).astype(np.float32)
            path = out_dir / row["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, clip, rate, subtype="PCM_16")
            rows.append([row["path"], row["label"], row["group"]])
    placed = out_dir / "manifest.csv"
    with open(placed, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "group"], *rows])
    return placed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--renditions", type=int, default=3)
    parser.add_argument("--placements", nargs="+", default=["none", "trim", "centre"])
    parser.add_argument("--normalization", default="none", help="data.normalization for every run")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    words = generate_digits(out / "words", variants=VARIANTS, renditions=args.renditions)
    manifest = placed_clips(words, out / "placed")

    from seqapps import distribute
    from seqapps.runs.crossval import cross_validate_run

    results = {}
    for placement in args.placements:
        name = placement if args.normalization == "none" else f"{placement}_{args.normalization}"
        config = out / f"{name}.json"
        config.write_text(json.dumps({"data": {"placement": placement, "normalization": args.normalization},
                                      "model": {"units": 64},
                                      "training": {"patience": args.epochs}}))
        summary = cross_validate_run("audio", run_dir=out / f"run_{name}", folds=args.folds,
                                     manifest=manifest, epochs=args.epochs, config_file=config, verbose=0,
                                     strategy=distribute.make_strategy("default"))
        results[name] = {k: summary[k] for k in ("accuracy", "macro_f1")}
    print(f"{'placement':>10} | accuracy (mean ± std over {args.folds} leave-voices-out folds) | macro F1")
    for placement, r in results.items():
        print(f"{placement:>10} | {r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f}"
              f"{'':>30} | {r['macro_f1']['mean']:.3f} ± {r['macro_f1']['std']:.3f}")
    (out / f"placement_{args.normalization}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
