"""The status graph of a workflow: which status may follow which, where runs start and where they end."""

from __future__ import annotations


class StatusGraph:
    """Transitions in the order they were declared. A node with no incoming transition is a starting point; a
    node with no outgoing one is terminal (reaching it completes the run)."""

    def __init__(self) -> None:
        self._edges: dict[int, list[int]] = {}
        self._order: list[int] = []
        self._incoming: set[int] = set()

    def add(self, source: int, targets: tuple[int, ...]) -> None:
        self._note(source)
        edges = self._edges.setdefault(source, [])
        for target in targets:
            self._note(target)
            self._incoming.add(target)
            if target not in edges:
                edges.append(target)

    def _note(self, node: int) -> None:
        if node not in self._order:
            self._order.append(node)

    @property
    def nodes(self) -> list[int]:
        return list(self._order)

    def transitions(self, node: int) -> list[int]:
        return list(self._edges.get(node, ()))

    def is_valid(self, node: int) -> bool:
        return node in self._order

    def is_terminal(self, node: int) -> bool:
        return node in self._order and not self._edges.get(node)

    @property
    def starting(self) -> list[int]:
        return [n for n in self._order if n not in self._incoming]

    @property
    def terminal(self) -> list[int]:
        return [n for n in self._order if self.is_terminal(n)]
