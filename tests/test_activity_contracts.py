"""Workflows and workers agree on every activity.

The typed references the workflows run (`sorapi.contracts.activities`) match, name for name, what the activity
implementations declare.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from temporalio import activity

import sorapi.activities
from sorapi.contracts import activities as contracts


def implementations() -> dict[str, list[activity._Definition]]:
    """Every activity defined in `sorapi.activities`, by name (a name may have several hosts' versions)."""
    found: dict[str, list[activity._Definition]] = {}
    for module in pkgutil.iter_modules(sorapi.activities.__path__, "sorapi.activities."):
        for owner in vars(importlib.import_module(module.name)).values():
            for member in vars(owner).values() if isinstance(owner, type) else [owner]:
                defn = activity._Definition.from_callable(member) if callable(member) else None
                if defn is not None and defn.name:
                    found.setdefault(defn.name, []).append(defn)
    return found


def _none(kind: Any) -> Any:
    return None if kind is type(None) else kind


def test_every_activity_a_workflow_runs_is_implemented_with_the_same_types() -> None:
    found = implementations()
    assert contracts.ALL
    for reference in contracts.ALL:
        assert reference.name in found, f"no worker implements {reference.name}"
        for defn in found[reference.name]:
            assert defn.arg_types == [reference.arg_type], (reference.name, defn.arg_types)
            assert _none(defn.ret_type) == reference.result_type, (reference.name, defn.ret_type)


def test_every_implemented_activity_has_a_typed_reference() -> None:
    assert set(implementations()) == {reference.name for reference in contracts.ALL}
