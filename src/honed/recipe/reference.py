"""The recipe reference, generated from the schema (`honed recipes --reference`)."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from honed.recipe.keys import flat, get_dotted, section_of
from honed.recipe.schema import DATA_SECTIONS, DataBase, Recipe


def allowed(annotation) -> str:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return allowed(args[0])
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is typing.Union:
        inner = [allowed(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {allowed(args[0])}" if origin is list else "pair of numbers"
    return getattr(annotation, "__name__", str(annotation))


def sections(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, allowed values, default, description) for every leaf field."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner = section_of(field.annotation)
        if inner is DataBase:  # one section per data.source: the common keys, then each source's own
            rows.extend(data_rows(key + "."))
            continue
        if typing.get_origin(field.annotation) is dict and inner is None:  # data.column_types: {column: type}
            rows.append((key, f"mapping of names to {allowed(typing.get_args(field.annotation)[1])}", "{}",
                         field.description or ""))
            continue
        if typing.get_origin(field.annotation) is dict:  # search: {recipe key: Domain}
            rows.append((key, "mapping of recipe keys", "{}", field.description or ""))
            rows.extend(sections(inner, key + ".<key>."))
            continue
        if inner is not None:
            if field.default is None:
                rows.append((key, "section or null", "null", "off unless given"))
            rows.extend(sections(inner, key + "."))
            continue
        default = field.get_default(call_default_factory=True)
        rows.append((key, allowed(field.annotation), repr(default) if isinstance(default, str) else str(default),
                     field.description or ""))
    return rows


def data_rows(prefix: str) -> list[tuple[str, str, str, str]]:
    """The data keys: those every source reads, then each source's own; a key several sources read is one row
    naming them (with each source's meaning where they differ)."""
    rows = sections(DataBase, prefix)
    found: dict[str, list[tuple[str, tuple[str, str, str, str]]]] = {}
    for source, section in DATA_SECTIONS.items():
        for row in sections(section, prefix):
            name = row[0].removeprefix(prefix)
            if name.split(".")[0] not in DataBase.model_fields:
                found.setdefault(name, []).append((source, row))
    for name, readers in found.items():
        key, allowed_values, default, _ = readers[0][1]
        meanings = {row[3].split(": ", 1)[1] if row[3].split(": ", 1)[0] in DATA_SECTIONS else row[3]: []
                    for _, row in readers}
        for source, row in readers:
            meanings[row[3].split(": ", 1)[1] if row[3].split(": ", 1)[0] in DATA_SECTIONS else row[3]].append(source)
        meaning = "; ".join(f"{', '.join(sources)}: {text}" for text, sources in meanings.items())
        rows.append((key, allowed_values, default, meaning))
    return rows


def markdown() -> str:
    lines = ["| key | allowed | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{k}` | {a} | {d} | {m} |" for k, a, d, m in sections()]
    return "\n".join(lines)


def changed_keys(recipe: Recipe) -> list[tuple[str, object, object]]:
    """(key, value, default) for every recipe key whose value is not the schema's default, in the recipe's
    order; a section that is off by default (null) and was given shows its keys with the default `null`."""
    nested = Recipe().model_dump(mode="json")
    defaults = flat(nested)

    def default_of(key: str):  # a section on by default and switched off (null) shows its defaults
        return get_dotted(nested, key)

    return [(k, v, default_of(k)) for k, v in flat(recipe.model_dump(mode="json")).items()
            if k not in defaults or defaults[k] != v]
