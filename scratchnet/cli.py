"""The ``scratchnet`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchnet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"scratchnet {__version__}")
    commands = parser.add_subparsers(dest="command")
    summary = commands.add_parser("summary", help="print a model's layers and parameter counts")
    summary.add_argument("--model", default="mlp", help="model name (default: mlp)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "summary":
        from .layers import Dense, Flatten
        from .model import Sequential

        model = Sequential([Flatten(), Dense(128, activation="relu"), Dense(10)], input_shape=(28, 28, 1))
        model.summary()
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
