"""The argparse types of the benches' size flags, so a bad size is refused before anything starts, with a message
naming the flag (argparse prefixes it: "argument --runs: expected a whole number >= 1, got '0'")."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A whole number >= 1 (runs, shards, rates)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value
