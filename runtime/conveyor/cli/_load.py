"""Loading a user's workflow from `module:attribute`, the form manifests and the CLI use."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import click

from conveyor._engine.builder import Builder
from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.workflow import Workflow
from conveyor.errors import InvalidWorkflow


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


def load(entrypoint: str, paths: tuple[str, ...], hint: str = "'ENTRYPOINT'") -> Builder[Any, Any]:
    """`load_builder` for a command: whatever is wrong (a bad entrypoint, the user's code failing as it loads, an
    invalid graph) is a click.BadParameter naming the argument `hint`, so the command exits 2 with one line."""
    try:
        builder = load_builder(entrypoint, paths)
        builder.spec()  # an invalid graph is the entrypoint's problem, said now rather than as a traceback later
    except click.BadParameter as e:
        # Name the argument in the message ("Invalid value for 'ENTRYPOINT': ...").
        e.param_hint = e.param_hint or hint
        raise
    except InvalidWorkflow as e:
        raise click.BadParameter(f"{entrypoint}: {e}", param_hint=hint) from None
    except Exception as e:
        raise click.BadParameter(f"{entrypoint}: {load_failure(e)}", param_hint=hint) from None
    return builder


def load_apart(entrypoint: str, paths: tuple[str, ...], hint: str) -> WorkflowSpec[Any, Any]:
    """The spec of `entrypoint` imported from `paths` apart from any other version of it: two checkouts of one
    package (`orders.workflow:builder` of the last release and of this one) are two modules of the same name. The
    entrypoint's package and every module imported from `paths` leave `sys.modules` again afterwards (what was
    there before comes back), and `sys.path` is restored, so the next load imports its own; modules imported from
    elsewhere (pydantic, conveyor) stay, shared. `paths` are searched in their order, before the rest of
    `sys.path`."""
    with _apart(entrypoint.partition(":")[0].partition(".")[0], paths):
        return load(entrypoint, paths, hint).spec()


@contextlib.contextmanager
def _apart(package: str, paths: tuple[str, ...]) -> Iterator[None]:
    saved_path = list(sys.path)
    roots = tuple(os.path.join(os.path.abspath(p), "") for p in paths)
    # What is installed (a virtualenv inside the checkout, say) is no version of the user's code.
    installed = tuple(os.path.join(os.path.abspath(p), "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})

    def of_package(name: str) -> bool:
        return name == package or name.startswith(f"{package}.")

    def from_paths(name: str) -> bool:
        where = getattr(sys.modules.get(name), "__file__", None)
        if not isinstance(where, str):
            return False
        where = os.path.abspath(where)
        return where.startswith(roots) and not where.startswith(installed)

    saved = {name: sys.modules.pop(name) for name in [n for n in sys.modules if of_package(n)]}
    first = [os.path.abspath(p) for p in paths]
    sys.path[:] = [*first, *(p for p in saved_path if os.path.abspath(p or ".") not in first)]
    importlib.invalidate_caches()
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n not in before and (of_package(n) or from_paths(n))]:
            del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = saved_path
        importlib.invalidate_caches()


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
