"""The node graph: unique ids, resolved refs, cycles, topological order, lineage."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable

from seeknal_flow.authoring.specs import ENTITY_REF
from seeknal_flow.errors import DagError


class Dag:
    """Nodes keyed by id with their upstream/downstream edges.

    Build it with ``Dag(specs)``; every duplicate id, unknown ref and cycle is
    reported at once, each with its file and line.
    """

    def __init__(self, specs: Iterable) -> None:
        self.nodes: dict[str, object] = {}
        problems: list[str] = []
        for spec in specs:
            other = self.nodes.get(spec.id)
            if other is not None:
                problems.append(
                    f"{spec.location}: duplicate node id '{spec.id}' (also defined at "
                    f"{other.location}); rename one of them"
                )
                continue
            self.nodes[spec.id] = spec
        self.upstream: dict[str, list[str]] = {}
        by_entity: dict[str, list[str]] = {}
        for node_id, spec in self.nodes.items():
            entity = getattr(spec, "entity", None)
            if entity is not None:
                by_entity.setdefault(entity.name, []).append(node_id)
        for node_id, spec in self.nodes.items():
            ups = []
            for ref in spec.refs:
                if ref.target.startswith(ENTITY_REF):
                    entity = ref.target[len(ENTITY_REF):]
                    if entity not in by_entity:
                        known = ", ".join(sorted(by_entity)) or "none"
                        problems.append(f"{ref.location}: {node_id} reads entity '{entity}', which no feature "
                                        f"group describes (entities: {known})")
                    ups += [g for g in by_entity.get(entity, []) if g != node_id and g not in ups]
                elif ref.target in self.nodes:
                    if ref.target != node_id and ref.target not in ups:
                        ups.append(ref.target)
                    elif ref.target == node_id:
                        problems.append(f"{ref.location}: node '{node_id}' refers to itself")
                else:
                    hint = _hint(ref.target, self.nodes)
                    problems.append(f"{ref.location}: {node_id} refers to unknown node '{ref.target}'{hint}")
            self.upstream[node_id] = sorted(ups)
        self.downstream: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node_id, ups in self.upstream.items():
            for up in ups:
                self.downstream[up].append(node_id)
        for ids in self.downstream.values():
            ids.sort()
        if not problems:
            cycle = self._find_cycle()
            if cycle:
                path = " -> ".join(f"{n} ({self.nodes[n].location})" for n in cycle)
                problems.append(f"dependency cycle: {path}; remove one of these refs")
        if problems:
            raise DagError("\n".join(problems))
        self.order = self._topological_order()

    def _find_cycle(self) -> list[str] | None:
        state: dict[str, int] = {}  # 1 = on stack, 2 = done
        for start in sorted(self.nodes):
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            path: list[str] = []
            while stack:
                node, i = stack.pop()
                if i == 0:
                    state[node] = 1
                    path.append(node)
                ups = self.upstream[node]
                if i < len(ups):
                    stack.append((node, i + 1))
                    nxt = ups[i]
                    if state.get(nxt) == 1:
                        cycle = path[path.index(nxt):] + [nxt]
                        return cycle[::-1]  # upstream first reads as data flow
                    if not state.get(nxt):
                        stack.append((nxt, 0))
                else:
                    state[node] = 2
                    path.pop()
        return None

    def _topological_order(self) -> list[str]:
        indegree = {n: len(ups) for n, ups in self.upstream.items()}
        ready = [n for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for down in self.downstream[node]:
                indegree[down] -= 1
                if indegree[down] == 0:
                    heapq.heappush(ready, down)
        return order

    def ancestors(self, node_id: str) -> set[str]:
        return self._closure(node_id, self.upstream)

    def descendants(self, node_id: str) -> set[str]:
        return self._closure(node_id, self.downstream)

    @staticmethod
    def _closure(node_id: str, edges: dict[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        todo = list(edges[node_id])
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges[n])
        return seen

    def resolve(self, text: str) -> str:
        """Accept a full id or an unambiguous bare name; raise DagError otherwise."""
        if text in self.nodes:
            return text
        matches = [n for n in self.nodes if n.split(".", 1)[1] == text]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DagError(f"'{text}' is ambiguous: {', '.join(sorted(matches))}; use the full id")
        raise DagError(f"unknown node '{text}'{_hint(text, self.nodes)}")


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return ""
