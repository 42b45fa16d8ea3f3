"""One way to declare an on/off command-line option."""

from __future__ import annotations

import argparse


def flag(parser: argparse.ArgumentParser, *names: str, help: str) -> None:
    """`names` (e.g. "-f", "--follow") switch something on; `help` says what."""
    parser.add_argument(*names, action="store_true", help=help)
