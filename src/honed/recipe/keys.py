"""Dotted recipe keys (`optimizer.lr`, `data.column_types.zip`): the one place that walks them.

Over raw mappings (reading and writing `--set` values) and over the schema (which section a key lands in,
what it may hold). The `data` section depends on `data.source`: each source has its own section type.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from honed.errors import UserError, did_you_mean


def get_dotted(raw: Any, key: str) -> Any:
    """The value at `key` in nested mappings, or None where a part is missing."""
    node = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` in nested mappings, making sections on the way; a setting in the way is an error."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"override {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def flat(values: dict, prefix: str = "") -> dict[str, object]:
    """{'train.epochs': 10, ...}: nested sections as dotted keys (what --set takes)."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def section_of(annotation: Any) -> type[BaseModel] | None:
    """The recipe section a field's annotation holds (`Optional[EarlyStoppingSpec]` -> EarlyStoppingSpec), or None
    for a plain setting. The data section's union answers its common part (DataBase)."""
    from honed.recipe.schema import DATA_SECTIONS, DataBase

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = getattr(annotation, "__args__", ()) or ()
    if any(a in DATA_SECTIONS.values() for a in args):
        return DataBase
    for arg in args:
        found = section_of(arg)
        if found is not None:
            return found
    return None


def child_section(model: type[BaseModel], name: str, source: Optional[str]) -> type[BaseModel] | None:
    """The section type of field `name` of `model`; `data` is the section of `source` (or DataBase if unknown)."""
    from honed.recipe.schema import DATA_SECTIONS, Recipe

    if model is Recipe and name == "data":
        return DATA_SECTIONS.get(source or "", section_of(Recipe.model_fields["data"].annotation))
    return section_of(model.model_fields[name].annotation)


def allowed_keys(loc: list[str], source: Optional[str] = None) -> list[str]:
    """The field names of the section at `loc` (e.g. ['optimizer']; ['data'] for `source`'s data section)."""
    from honed.recipe.schema import Recipe

    model: type[BaseModel] = Recipe
    for part in loc:
        if part not in model.model_fields:
            break
        inner = child_section(model, part, source)
        if inner is None:
            break
        model = inner
    return sorted(model.model_fields)


def setting_problem(key: str, source: Optional[str] = None) -> str | None:
    """Why `key` (dotted, e.g. optimizer.lr) is not a recipe setting a search can vary; None if it is. With no
    `source` known, a data key is one when some source reads it (the recipe's own source checks it later)."""
    from honed.recipe.schema import DATA_SECTIONS, Recipe

    if source is None and key.startswith("data."):
        problems = [setting_problem(key, name) for name in DATA_SECTIONS]
        if None in problems:
            return None

    model: type[BaseModel] = Recipe
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields or (i == 0 and part in ("search", "name")):
            where = ".".join(parts[:i])
            allowed = [f for f in fields if i or f not in ("search", "name")]
            full = [f"{where}.{f}" if where else f for f in allowed]
            return (f"unknown parameter {key!r}{did_you_mean(key, full)}; "
                    f"{where or 'a recipe'} has: {', '.join(sorted(allowed))}")
        inner = child_section(model, part, source)
        if i == len(parts) - 1:
            return f"{key!r} is a section, not a setting; name one of its keys" if inner else None
        if inner is None:
            return f"unknown parameter {key!r}: {'.'.join(parts[: i + 1])} is a setting, not a section"
        model = inner
    return None
