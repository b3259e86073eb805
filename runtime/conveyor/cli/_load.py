"""Loading a user's workflow from `module:attribute`, the form manifests and the CLI use."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from conveyor._engine.builder import Builder
from conveyor._engine.workflow import Workflow


def load_builder(entrypoint: str, paths: tuple[str, ...] = ()) -> Builder[Any, Any]:
    """The Builder named by `module:attribute` (a Builder, a built Workflow's definition is not enough, or a
    function returning a Builder). Raises click.BadParameter saying what is wrong."""
    module_name, sep, attribute = entrypoint.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(f"{entrypoint!r}: expected module:attribute, e.g. orders.workflow:builder")
    for path in paths:
        absolute = os.path.abspath(path)
        if absolute not in sys.path:
            sys.path.insert(0, absolute)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}") from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise click.BadParameter(f"module {module_name!r} has no attribute {attribute!r}") from None
    if callable(value) and not isinstance(value, Builder | Workflow):
        value = value()
    if isinstance(value, Builder):
        return value
    raise click.BadParameter(f"{entrypoint} is a {type(value).__name__}; expected a conveyor.Builder")


_CONVEYOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIB = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


def load_failure(error: Exception) -> str:
    """The user's code failing as it loads (raising at import, not parsing, building an invalid graph), in one
    line: the error and where in the user's code it was raised, for a message instead of a traceback."""
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} ({error.filename}, line {error.lineno})"
    message = " ".join(str(error).split())
    # Where in the user's code: the last frame neither conveyor's nor importlib's (an invalid graph is raised by
    # the builder, but the line to fix is the user's add_step).
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith((_CONVEYOR, "<", _LIB))]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {message}{where}"
