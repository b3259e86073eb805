"""`conveyor graph ENTRYPOINT`: a workflow's state diagram; `conveyor graph diff OLD NEW`: what changed between
two versions of it, to read before a deploy (statuses added, removed, renamed and renumbered, transitions added and
removed, and the statuses whose runs the new code would leave stranded)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from conveyor.cli._load import load, load_apart

# The name `conveyor graph ENTRYPOINT` runs under: `graph` with no subcommand named is `graph show`.
SHOW = "show"


class _GraphGroup(click.Group):
    """`conveyor graph` is a group whose default command (`show`) takes over when no subcommand is named, so
    `conveyor graph ENTRYPOINT [OPTIONS]` (and its --help) work as they always did beside `conveyor graph diff`.
    An entrypoint is `module:attribute`, so it can never be taken for a subcommand's name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [SHOW, *args]
        return super().parse_args(ctx, args)


class _AsTheGroup(click.Context):
    """The default command's context, named as `conveyor graph` itself in its usage line and errors."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


@click.group(cls=_GraphGroup)
def graph() -> None:
    """A workflow's state diagram (mermaid or JSON), or what changed between two versions of it (`graph diff`)."""


_OUTPUT_HELP = "json: statuses and transitions for scripts (the mermaid text included)."


class _Show(click.Command):
    context_class = _AsTheGroup


@graph.command(SHOW, cls=_Show, hidden=True)
@click.argument("entrypoint")
@click.option("--path", "paths", multiple=True, default=(".",), show_default=True, help="Import path (repeatable).")
@click.option("--direction", type=click.Choice(["LR", "TB", "RL", "BT"]), default="LR", show_default=True)
@click.option(
    "--output", "-o", type=click.Choice(["mermaid", "json"]), default="mermaid", show_default=True, help=_OUTPUT_HELP
)
def show(entrypoint: str, paths: tuple[str, ...], direction: str, output: str) -> None:
    """Print the workflow's state diagram (mermaid).

    `conveyor graph diff OLD NEW` compares two versions of a workflow instead (see `conveyor graph diff --help`)."""
    from conveyor._engine.run_data import workflow_data
    from conveyor._engine.visualise import mermaid

    spec = load(entrypoint, paths).spec()
    if output == "json":
        # The shape of each workflow in the UI's /api/workflows.
        click.echo(json.dumps(workflow_data(spec, direction), indent=2))
    else:
        click.echo(mermaid(spec, direction), nl=False)


@graph.command("diff", short_help="What changed between two versions of a workflow's graph.")
@click.argument("old")
@click.argument("new")
@click.option(
    "--old-path",
    "old_paths",
    multiple=True,
    metavar="DIR",
    help="Where OLD is imported from (repeatable, the first searched first; default: --path): a checkout of the "
    "deployed version, say.",
)
@click.option(
    "--new-path",
    "new_paths",
    multiple=True,
    metavar="DIR",
    help="Where NEW is imported from (repeatable, the first searched first; default: --path).",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    default=(".",),
    show_default=True,
    metavar="DIR",
    help="Where both are imported from when --old-path or --new-path is not given (repeatable).",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the same changes as an object for scripts (keys old, new, changed, statuses, transitions, stranded).",
)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the graphs differ (as `git diff --exit-code` does).")
def diff(
    old: str,
    new: str,
    old_paths: tuple[str, ...],
    new_paths: tuple[str, ...],
    paths: tuple[str, ...],
    output: str,
    exit_code: bool,
) -> None:
    """Compare the graph of OLD (the workflow as deployed) with that of NEW (the one about to be), each a
    `module:attribute` naming a Builder, each imported on its own (two checkouts may hold modules of the same
    name): statuses added, removed, renamed (same number, new name) and renumbered (same name, new number),
    transitions added and removed, and the statuses whose runs NEW cannot move (OLD has a step, callback or
    timeout there, NEW none): runs there when NEW is deployed are stranded. Runs store their status's number.

    \b
    conveyor graph diff orders.workflow:builder orders.workflow:builder \\
        --old-path ../orders-1.3 --new-path .

    Exits 0 whatever changed, or with --exit-code 1 when something did; 2 for bad usage (an entrypoint that does
    not load, named in the message)."""
    from conveyor._engine.graph_diff import graph_diff

    before = load_apart(old, old_paths or paths, "'OLD'")
    after = load_apart(new, new_paths or paths, "'NEW'")
    changes = graph_diff(before, after)
    changes["old"]["entrypoint"], changes["new"]["entrypoint"] = old, new
    if output == "json":
        click.echo(json.dumps(changes, indent=2))
    else:
        click.echo("\n".join(diff_text(changes)))
    if exit_code and changes["changed"]:
        sys.exit(1)


def _status(item: dict[str, Any]) -> str:
    return f"{item['name']} ({item['value']})"


def diff_text(changes: dict[str, Any]) -> list[str]:
    """`graph_diff`'s changes for people: one line per change, `+` added, `-` removed, `~` changed, `!` runs at
    risk."""
    old, new = changes["old"], changes["new"]
    lines = [f"--- {old['entrypoint']} (workflow {old['name']})", f"+++ {new['entrypoint']} (workflow {new['name']})"]
    if not changes["changed"]:
        return [*lines, "no change: the graphs are the same"]
    if old["name"] != new["name"]:
        lines.append(
            f"! workflow renamed {old['name']} -> {new['name']}: runs belong to their workflow's name, so the new "
            f"code moves none of {old['name']}'s"
        )
    statuses, transitions = changes["statuses"], changes["transitions"]
    if any(statuses.values()):
        lines.append("statuses:")
        lines += [f"  - {_status(s)}" for s in statuses["removed"]]
        lines += [f"  + {_status(s)}" for s in statuses["added"]]
        lines += [f"  ~ {s['value']} renamed {s['old_name']} -> {s['new_name']}" for s in statuses["renamed"]]
        lines += [
            f"  ~ {s['name']} renumbered {s['old_value']} -> {s['new_value']}: runs stored at {s['old_value']} "
            f"are not at {s['new_value']}"
            for s in statuses["renumbered"]
        ]
    if any(transitions.values()):
        lines.append("transitions:")
        for sign, key in (("-", "removed"), ("+", "added")):
            lines += [f"  {sign} {_status(t['from'])} -> {_status(t['to'])} by {t['by']}" for t in transitions[key]]
    if changes["stranded"]:
        lines.append("stranded: runs at these statuses when NEW is deployed stay there (NEW moves none of them):")
        for s in changes["stranded"]:
            value, by = s["value"], " and a ".join(s["old_by"])
            now = (
                f"NEW has no status {value}"
                if s["new_name"] is None
                else f"NEW's {s['new_name']} has no step, callback or timeout"
            )
            lines.append(f"  ! {value} ({s['old_name']} in OLD, moved on by a {by}): {now}")
    return lines
