"""The `seqapps` command line: thin; parses, calls library functions, prints."""

from __future__ import annotations

import argparse
import json
import sys


def _demo(args) -> int:
    from seqapps.iir_example import fit_iir_filter

    result = fit_iir_filter()
    print("Fitting a one-unit linear Recurrent layer to a first-order IIR filter:")
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqapps", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main job on built-in data")
    demo.add_argument("--out", default="demo_out")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
