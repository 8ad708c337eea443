"""Entities of a project: which feature groups describe which entity, with one set of join keys."""

from __future__ import annotations

from seeknal_flow.authoring.specs import FeatureGroupSpec
from seeknal_flow.errors import SpecError
from seeknal_flow.load.dag import Dag


def entity_groups(dag: Dag) -> dict[str, tuple[tuple[str, ...], list[FeatureGroupSpec]]]:
    """Entity name -> (join keys, its feature groups); join-key mismatches are errors."""
    out: dict[str, tuple[tuple[str, ...], list[FeatureGroupSpec]]] = {}
    for spec in dag.nodes.values():
        if not isinstance(spec, FeatureGroupSpec) or spec.entity is None:
            continue
        keys, groups = out.setdefault(spec.entity.name, (spec.entity.join_keys, []))
        if spec.entity.join_keys != keys:
            first = groups[0]
            raise SpecError(
                f"entity '{spec.entity.name}': {first.id} ({first.location}) has join keys "
                f"{list(keys)} but {spec.id} ({spec.location}) has {list(spec.entity.join_keys)}; "
                "make them equal"
            )
        groups.append(spec)
    for _, groups in out.values():
        groups.sort(key=lambda s: s.name)
    return out
