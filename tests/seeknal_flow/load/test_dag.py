"""Dag: duplicates, unknown refs, cycles, deterministic topological order, closures, resolve."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seeknal_flow.authoring.specs import Location, Ref, SourceFormat, SourceSpec, TransformSpec
from seeknal_flow.errors import DagError
from seeknal_flow.load.dag import Dag


def _t(name: str, *refs: str, line: int = 1, file: str | None = None) -> TransformSpec:
    file = file or f"seeknal/transforms/{name}.py"
    return TransformSpec(
        name=name,
        location=Location(file, line),
        refs=tuple(Ref(r, Location(file, line + 3 + i)) for i, r in enumerate(refs)),
    )


def _s(name: str, line: int = 1) -> SourceSpec:
    return SourceSpec(name=name, location=Location(f"seeknal/sources/{name}.yml", line), format=SourceFormat.CSV, table=f"data/{name}.csv")


# ------------------------------------------------------------------ problems


def test_duplicate_ids_name_both_locations():
    with pytest.raises(
        DagError,
        match=re.escape(
            "seeknal/transforms/b.py:9: duplicate node id 'transform.a' (also defined at "
            "seeknal/transforms/a.py:2); rename one of them"
        ),
    ):
        Dag([_t("a", line=2, file="seeknal/transforms/a.py"), _t("a", line=9, file="seeknal/transforms/b.py")])


def test_same_name_in_different_kinds_is_fine():
    dag = Dag([_s("x"), _t("x", "source.x")])
    assert dag.order == ["source.x", "transform.x"]


def test_unknown_ref_with_suggestion():
    with pytest.raises(
        DagError,
        match=re.escape(
            "seeknal/transforms/a.py:4: transform.a refers to unknown node 'source.transactionz'; "
            "did you mean 'source.transactions'?"
        ),
    ):
        Dag([_s("transactions"), _t("a", "source.transactionz")])


def test_unknown_ref_without_close_match_has_no_suggestion():
    with pytest.raises(DagError, match=re.escape("refers to unknown node 'feature_group.zzz'")) as info:
        Dag([_s("transactions"), _t("a", "feature_group.zzz")])
    assert "did you mean" not in str(info.value)


def test_self_reference():
    with pytest.raises(DagError, match=re.escape("seeknal/transforms/a.py:4: node 'transform.a' refers to itself")):
        Dag([_t("a", "transform.a")])


def test_cycle_message_names_the_cycle_in_data_flow_order():
    specs = [_t("a", "transform.c"), _t("b", "transform.a"), _t("c", "transform.b"), _t("d", "transform.c")]
    with pytest.raises(
        DagError,
        match=re.escape(
            "dependency cycle: transform.a (seeknal/transforms/a.py:1) -> transform.b (seeknal/transforms/b.py:1) -> "
            "transform.c (seeknal/transforms/c.py:1) -> transform.a (seeknal/transforms/a.py:1); remove one of these refs"
        ),
    ):
        Dag(specs)


def test_all_problems_reported_at_once():
    specs = [_t("a", "source.nope"), _t("a", line=7), _t("b", "transform.b"), _t("c", "transform.missing")]
    with pytest.raises(DagError, match=re.escape("duplicate node id 'transform.a'")) as info:
        Dag(specs)
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert any("refers to unknown node 'source.nope'" in ln for ln in lines)
    assert any("refers to itself" in ln for ln in lines)
    assert any("refers to unknown node 'transform.missing'" in ln for ln in lines)


def test_repeated_refs_make_one_edge():
    dag = Dag([_s("x"), _t("a", "source.x", "source.x")])
    assert dag.upstream["transform.a"] == ["source.x"]
    assert dag.downstream["source.x"] == ["transform.a"]


# -------------------------------------------------------------- random DAGs


@st.composite
def dags(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"n{i:02d}" for i in range(n)]
    rank = draw(st.permutations(names))  # edges go from lower to higher rank: acyclic
    edges = draw(
        st.sets(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] < e[1]),
            max_size=3 * n,
        )
    )
    edge_names = {(rank[i], rank[j]) for i, j in edges}  # (upstream, downstream)
    return names, edge_names


def _specs(names, edges):
    return [_t(n, *sorted(f"transform.{u}" for u, d in edges if d == n)) for n in names]


def _reach(start: str, edges: set[tuple[str, str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for u, d in edges:
            if u == node and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


@settings(max_examples=25, deadline=None)
@given(graph=dags(), data=st.data())
def test_topological_order_respects_edges_and_ignores_input_order(graph, data):
    names, edges = graph
    specs = _specs(names, edges)
    dag = Dag(specs)
    ids = [f"transform.{n}" for n in names]
    assert sorted(dag.order) == sorted(ids)
    position = {node: i for i, node in enumerate(dag.order)}
    for up, down in edges:
        assert position[f"transform.{up}"] < position[f"transform.{down}"]
    shuffled = data.draw(st.permutations(specs))
    assert Dag(shuffled).order == dag.order


@settings(max_examples=25, deadline=None)
@given(graph=dags())
def test_ancestors_and_descendants_match_reachability(graph):
    names, edges = graph
    dag = Dag(_specs(names, edges))
    reversed_edges = {(d, u) for u, d in edges}
    for n in names:
        assert dag.descendants(f"transform.{n}") == {f"transform.{x}" for x in _reach(n, edges)}
        assert dag.ancestors(f"transform.{n}") == {f"transform.{x}" for x in _reach(n, reversed_edges)}
        assert dag.upstream[f"transform.{n}"] == sorted(f"transform.{u}" for u, d in edges if d == n)


@settings(max_examples=25, deadline=None)
@given(graph=dags(), data=st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(graph, data):
    names, edges = graph
    if not edges:
        return
    up, down = data.draw(st.sampled_from(sorted(edges)))
    # Close a cycle: `up` now also depends on something downstream of it.
    back = data.draw(st.sampled_from(sorted(_reach(up, edges))))
    specs = [
        _t(n, *sorted({f"transform.{u}" for u, d in edges if d == n} | ({f"transform.{back}"} if n == up else set())))
        for n in names
    ]
    with pytest.raises(DagError, match=r"^dependency cycle: ") as info:
        Dag(specs)
    chain = re.findall(r"transform\.(\w+) \(", str(info.value))
    assert chain[0] == chain[-1]
    all_edges = edges | {(back, up)}
    for a, b in zip(chain, chain[1:], strict=False):
        assert (a, b) in all_edges  # each step is a real data-flow edge


# ----------------------------------------------------------------- lookups


def test_ancestors_descendants_on_a_diamond():
    dag = Dag([_s("raw"), _t("left", "source.raw"), _t("right", "source.raw"), _t("join", "transform.left", "transform.right"), _s("other")])
    assert dag.ancestors("transform.join") == {"transform.left", "transform.right", "source.raw"}
    assert dag.descendants("source.raw") == {"transform.left", "transform.right", "transform.join"}
    assert dag.ancestors("source.raw") == set()
    assert dag.descendants("source.other") == set()
    assert dag.order == ["source.other", "source.raw", "transform.left", "transform.right", "transform.join"]


def test_resolve():
    dag = Dag([_s("x"), _t("x", "source.x"), _t("clean", "source.x")])
    assert dag.resolve("transform.x") == "transform.x"
    assert dag.resolve("clean") == "transform.clean"
    with pytest.raises(DagError, match=re.escape("'x' is ambiguous: source.x, transform.x; use the full id")):
        dag.resolve("x")
    with pytest.raises(DagError, match=re.escape("unknown node 'tranform.clean'; did you mean 'transform.clean'?")):
        dag.resolve("tranform.clean")
    with pytest.raises(DagError, match=r"^unknown node 'zzz'$"):
        dag.resolve("zzz")


def test_empty_dag():
    dag = Dag([])
    assert dag.order == []
    assert dag.nodes == {}
