"""Settings of the plain Recurrent audio classifier that might close its gap to the GRU.

The default `seqapps train audio` model against variants that change one setting (or a
combination) on the spoken digits of benchmarks/accuracy_audio.py, on all 4 voice-held-out
folds and with the same budget (30 epochs, batch 32, same seeds and batch order): the
training and evaluation are accuracy_audio.py's own functions (imported, not copied).

  SpecAugment {}                     "spec_augment": {} -> seqapps.layers.SpecAugment defaults
                                     (2 freq masks <= 8 mels, 2 time masks <= 10 frames)
  SpecAugment f1x5 t2x8              1 freq mask <= 5 mels, 2 time masks <= 8 frames
  hop_length=320                     20 ms hop: half the time steps (features recomputed)
  lr=0.003                           Adam learning rate 0.003 (default 0.002)
  spectral_radius 0.9                recurrent_initializer ("spectral_radius", 0.9)
  identity + relu                    recurrent_initializer "identity", activation relu (IRNN)

`--extra 'NAME={"model": {...}, "data": {...}}'` adds a variant (e.g. a combination);
`--reuse FILE.json` takes the models already measured in FILE (same seed and epochs)
instead of training them again, so a combination can be added to an earlier run cheaply.
The GRU row is read from bench_out/accuracy_audio.json (same folds, seeds and budget,
deterministic runs) unless `--gru` trains it here.

Prints a table (accuracy, macro F1, per-fold accuracy differences with the default) and
writes bench_out/accuracy_audio_variants.json.

    PYTHONPATH=. .venv/bin/python benchmarks/accuracy_audio_variants.py           # ~10-15 min
    PYTHONPATH=. .venv/bin/python benchmarks/accuracy_audio_variants.py --quick   # ~2 min
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks.accuracy_audio import OUT, _merged, compare, window_features  # noqa: E402
from benchmarks.espeak_digits import INSTALL_HINT, espeak_available, generate_digits  # noqa: E402
from pipelines import sources  # noqa: E402
from seqapps.runs.settings import resolve_settings  # noqa: E402

DEFAULT = "Recurrent (default)"
# name -> changes to the default settings (sections "data", "model", "training").
VARIANTS: dict[str, dict] = {
    "SpecAugment {}": {"model": {"spec_augment": {}}},
    "SpecAugment f1x5 t2x8": {"model": {"spec_augment": {"freq_masks": 1, "freq_mask_width": 5,
                                                         "time_masks": 2, "time_mask_width": 8}}},
    "hop_length=320": {"data": {"hop_length": 320}},
    "lr=0.003": {"training": {"learning_rate": 0.003}},
    "spectral_radius 0.9": {"model": {"recurrent_initializer": ["spectral_radius", 0.9]}},
    "identity + relu": {"model": {"recurrent_initializer": "identity", "activation": "relu"}},
}
GRU_FILE = OUT / "accuracy_audio.json"


def run_variants(source, *, settings: dict, variants: dict[str, dict], n_splits: int, max_folds: int,
                 seed: int, gru: bool = False) -> dict:
    """The default and every variant on the same folds; variants that change the data
    settings get their features computed with their own frontend."""
    by_data: dict[str, dict] = {}  # data settings (as JSON) -> contenders
    wanted = {DEFAULT: {}, **variants}
    if gru:
        wanted["GRU"] = {}
    for name, overrides in wanted.items():
        data = _merged(settings, overrides)["data"]
        layer_class = keras.layers.GRU if name == "GRU" else None
        by_data.setdefault(json.dumps(data, sort_keys=True), {})[name] = (layer_class, overrides)
    models: dict = {}
    for data_key, contenders in by_data.items():
        run_settings = _merged(settings, {"data": json.loads(data_key)})
        start = time.perf_counter()
        windows = window_features(source, settings=run_settings, cache_dir=OUT / "cache")
        print(f"  features {windows['features'].shape[1:]} for {', '.join(contenders)} "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
        models |= compare(source, windows, settings=run_settings, contenders=contenders, n_splits=n_splits,
                          max_folds=max_folds, seed=seed)
    return {name: models[name] for name in wanted}


def gru_from_file(path: Path, *, seed: int, epochs: int, folds: int) -> dict | None:
    """The GRU row of an accuracy_audio.py run with the same seed, budget and folds, if any."""
    if not path.exists():
        return None
    written = json.loads(path.read_text())
    digits = written.get("datasets", {}).get("espeak_digits", {})
    gru = digits.get("models", {}).get("GRU")
    if (gru is None or written.get("seed", 0) != seed or written.get("quick") or digits.get("epochs") != epochs
            or digits.get("folds") != folds):
        return None
    return gru | {"source": str(path)}


def table(models: dict, *, reference: str = DEFAULT) -> str:
    """Markdown: accuracy, macro F1 and per-fold accuracy differences with `reference`."""
    base = models[reference]
    lines = [
        "| model | weights | accuracy | macro F1 | acc − default per fold | mean Δacc | mean ΔF1 (better / worse) "
        "| s / epoch |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, r in models.items():
        cells = ["", "", ""]
        if name != reference:
            d_acc = [m["accuracy"] - b["accuracy"] for m, b in zip(r["folds"], base["folds"], strict=True)]
            d_f1 = [m["macro_f1"] - b["macro_f1"] for m, b in zip(r["folds"], base["folds"], strict=True)]
            better, worse = sum(d > 1e-9 for d in d_f1), sum(d < -1e-9 for d in d_f1)
            cells = [" ".join(f"{d:+.3f}" for d in d_acc), f"{statistics.fmean(d_acc):+.3f}",
                     f"{statistics.fmean(d_f1):+.3f} ({better} / {worse})"]
        a, f = r["accuracy"], r["macro_f1"]
        lines.append(f"| {name} | {r['params']:,} | {a['mean']:.3f} ± {a['std']:.3f} | {f['mean']:.3f} ± "
                     f"{f['std']:.3f} | {cells[0]} | {cells[1]} | {cells[2]} | {r['epoch_seconds']['mean']:.2f} |")
    lines.append("")
    lines.append("per-fold accuracy: " + "; ".join(
        f"{name} " + " ".join(f"{run['accuracy']:.3f}" for run in r["folds"]) for name, r in models.items()))
    return "\n".join(lines)


def _parse_extra(values: list[str], parser) -> dict[str, dict]:
    extra = {}
    for value in values:
        # Split at "={", so that a name may hold "=" (e.g. "lr=0.003 + SpecAugment").
        name, sep, overrides = value.partition("={")
        try:
            parsed = json.loads("{" + overrides) if sep else None
        except json.JSONDecodeError as err:
            parser.error(f"--extra {value!r}: not valid JSON ({err})")
        if not name.strip() or not isinstance(parsed, dict):
            parser.error(f"--extra must be NAME=JSON-object of settings sections. Received: {value!r}")
        extra[name.strip()] = parsed
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 epochs, 2 folds, 1 rendition per voice (~2 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, initialisation and batch order")
    parser.add_argument("--variants", metavar="NAMES",
                        help=f"comma-separated subset of: {', '.join(VARIANTS)} ('' for none)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=JSON",
                        help="an extra variant, e.g. 'lr+spec={\"training\": {\"learning_rate\": 0.003}, "
                             "\"model\": {\"spec_augment\": {}}}'")
    parser.add_argument("--gru", action="store_true", help="train the GRU here instead of reading it from "
                        f"{GRU_FILE.name}")
    parser.add_argument("--gru-file", default=str(GRU_FILE),
                        help="accuracy_audio.py output to take the GRU row from (same seed and epochs)")
    parser.add_argument("--reuse", metavar="JSON", help="reuse models measured in this earlier output")
    parser.add_argument("--digits-dir", default=str(OUT / "espeak_digits"))
    parser.add_argument("--out", default=str(OUT / "accuracy_audio_variants.json"))
    parser.add_argument("--show", metavar="JSON", help="print the table of a written file and exit")
    args = parser.parse_args(argv)
    if args.show:
        print(table(json.loads(Path(args.show).read_text())["models"]))
        return 0
    if not espeak_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 1

    variants = dict(VARIANTS)
    if args.variants is not None:
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            parser.error(f"unknown --variants {unknown}; known: {', '.join(VARIANTS)}")
        variants = {n: VARIANTS[n] for n in names}
    variants |= _parse_extra(args.extra, parser)

    settings = resolve_settings("audio")
    if args.quick:
        settings["training"]["epochs"] = 6
    max_folds = 2 if args.quick else 4

    reused: dict = {}
    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text())
        if (earlier["seed"], earlier["quick"], earlier["epochs"]) != (args.seed, args.quick,
                                                                     settings["training"]["epochs"]):
            parser.error(f"--reuse {args.reuse}: other seed, quick flag or epochs than this run")
        reused = earlier["models"]
    for name in [n for n in variants if n in reused]:
        # Same name, same settings: deterministic runs, so the earlier numbers stand.
        if reused[name].get("overrides") == variants[name]:
            del variants[name]

    print("espeak_digits: generating clips (cached) ...", flush=True)
    manifest = generate_digits(Path(args.digits_dir) / ("quick" if args.quick else "full"),
                               renditions=1 if args.quick else 3, seed=0)
    source = sources.from_manifest(manifest)
    started = time.perf_counter()
    fresh = run_variants(source, settings=settings, variants=variants, n_splits=4, max_folds=max_folds,
                         seed=args.seed, gru=args.gru)
    for name, overrides in variants.items():
        fresh[name]["overrides"] = overrides
    fresh[DEFAULT]["overrides"] = {}
    if reused and [r["accuracy"] for r in reused[DEFAULT]["folds"]] != [
            r["accuracy"] for r in fresh[DEFAULT]["folds"]]:
        print("warning: the default's per-fold accuracy differs from the reused file's; the runs are "
              "not reproducible here, so reused rows compare loosely", file=sys.stderr)
    models = {DEFAULT: fresh[DEFAULT]} | {n: r for n, r in reused.items() if n != DEFAULT} | fresh
    if "GRU" not in models:
        gru = gru_from_file(Path(args.gru_file), seed=args.seed, epochs=settings["training"]["epochs"], folds=max_folds)
        if gru is not None:
            models[f"GRU ({Path(args.gru_file).name})"] = gru

    results = {"seed": args.seed, "quick": args.quick, "epochs": settings["training"]["epochs"],
               "folds": max_folds, "settings": settings, "models": models,
               "seconds": time.perf_counter() - started}
    print(f"\nespeak_digits: {len(source.examples)} clips, {max_folds} folds by voice (test voices unseen), "
          f"{settings['training']['epochs']} epochs, seed {args.seed}\n")
    print(table(models))
    print(f"\ntotal {results['seconds'] / 60:.1f} min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
