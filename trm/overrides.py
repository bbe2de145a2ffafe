"""Dotted ``key=value`` overrides: the one parser for ``--set`` on presets, dataset parameters and search spaces.

A value is read as YAML, so ``3``, ``1e-4``, ``true``, ``null``, ``[a, b]`` and ``{k: v}`` mean what they say and
anything else stays a string; ``key=`` gives the empty string. Which keys are valid is the caller's business
(each typed model checks its own tree and names the valid choices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from trm.errors import UsageError


class OverrideError(UsageError):
    """A ``key=value`` string that cannot be applied; the message quotes it."""


def parse_value(text: str) -> Any:
    """YAML scalar/collection, or the text itself when it is not valid YAML."""
    if not text.strip():
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_assignment(item: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep:
        raise OverrideError(f"--set {item!r}: expected key=value")
    if not key or any(not part for part in key.split(".")):
        raise OverrideError(f"--set {item!r}: empty key or key part")
    return key, parse_value(text)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Several ``key=value`` strings -> ``{dotted key: value}`` (a later key wins)."""
    return dict(parse_assignment(item) for item in items)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``tree["a"]["b"] = value`` for ``key="a.b"``, creating (or replacing non-mapping) intermediate levels."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_dotted(tree: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``tree`` with every dotted key of ``flat`` set."""
    result = deep_merge({}, tree)
    for key, value in flat.items():
        set_dotted(result, key, value)
    return result


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{dotted key: leaf}`` (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in recursively (update wins; neither input is modified)."""
    merged: dict[str, Any] = {k: deep_merge({}, v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = deep_merge({}, value) if isinstance(value, Mapping) else value
    return merged
