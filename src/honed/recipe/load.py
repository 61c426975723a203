"""Read a recipe: YAML file -> `key=value` overrides -> validated `Recipe`.

Validation errors become one `UserError` line naming the key, the bad value and
what is allowed, with a "did you mean" for misspelled keys.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import ValidationError

from honed.errors import UserError, did_you_mean
from honed.recipe.keys import allowed_keys, set_dotted
from honed.recipe.schema import DATA_SECTIONS, Recipe


def load_recipe(source: str | Path | Mapping[str, Any] | Recipe, overrides: Iterable[str] = ()) -> Recipe:
    """A validated Recipe from a path, a dict or a Recipe, with overrides applied."""
    if isinstance(source, Recipe):
        raw = source.model_dump(mode="json")
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))  # overrides set nested keys: the caller's dict stays as it was
    else:
        from honed.recipe.bundled import resolve_recipe

        path = resolve_recipe(str(source))  # a file, or the name of a bundled recipe
        raw = read_yaml(path)
        raw.setdefault("name", path.stem)
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
        given_explicitly(raw, key)
    return validate(raw)


def given_explicitly(raw: dict[str, Any], key: str) -> None:
    """A key set by --set or a search's trial wins over the recipe's `regression:` section: it leaves the section."""
    section = raw.get("regression")
    if isinstance(section, dict) and key != "regression":
        section.pop(key, None)


def variant(recipe: Recipe, changes: Mapping[str, Any]) -> Recipe:
    """`recipe` with dotted keys changed, validated like any recipe (every schema rule holds for a variant)."""
    raw = recipe.model_dump(mode="json")
    for key, value in changes.items():
        set_dotted(raw, key, value)
        given_explicitly(raw, key)
    return validate(raw)


MAX_RECIPE_BYTES = 1_000_000  # a recipe is a page of settings; anything larger is not one


class RecipeLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter: no aliases (a few hundred bytes of nested aliases expand to
    billions of nodes) and no key given twice in one mapping (the last would silently win)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a recipe",
                                              event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise UserError(f"recipe {path} is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"recipe {path} is not UTF-8 text (byte {e.start})") from None
    try:
        data = yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        where = f" (line {e.problem_mark.line + 1})" if getattr(e, "problem_mark", None) else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"recipe {path} is not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise UserError(f"recipe {path} nests too deeply to be a recipe") from None
    if data is None:
        raise UserError(f"recipe {path} is empty: give at least one section (see honed recipes --reference)")
    if not isinstance(data, dict):
        raise UserError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """'optimizer.lr=0.1' -> ('optimizer.lr', 0.1); the value is parsed as a YAML scalar."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"override {item!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            pass
    return key, value


def validate(raw: dict[str, Any]) -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise UserError(describe(e.errors()[0])) from None


def describe(err: Mapping[str, Any]) -> str:
    """One line for the first validation error."""
    loc = [str(p) for p in err["loc"]]
    source = None
    if loc[:1] == ["data"] and len(loc) > 1 and loc[1] in DATA_SECTIONS:
        source = loc.pop(1)  # the union's tag: data.tabular.x is the user's data.x
    key = ".".join(loc) or "recipe"
    kind = err["type"]
    if kind == "extra_forbidden" and source and len(loc) == 2:
        return key_not_read(loc[1], source)
    if kind == "extra_forbidden":
        allowed = allowed_keys(loc[:-1], source)
        return f"unknown recipe key {key!r}{did_you_mean(loc[-1], allowed)}; allowed here: {', '.join(allowed)}"
    value = err.get("input")
    if kind == "union_tag_invalid":  # data.source names no source
        value, expected = err.get("ctx", {}).get("tag"), ", ".join(repr(s) for s in DATA_SECTIONS)
        return f"data.source = {value!r} is not allowed{did_you_mean(str(value), list(DATA_SECTIONS))}; allowed: {expected}"
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{key} = {shown} is not allowed{did_you_mean(str(value), _literal_words(expected))}; allowed: {expected}"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(value, dict):  # a rule across several keys: the message names them
        return f"{key}: {msg}"
    return f"{key} = {shown}: {msg}"


def key_not_read(name: str, source: str) -> str:
    """data.NAME given to a source that does not read it: a key of another source, or a typo."""
    from honed.recipe.schema import DataBase

    if any(name in section.model_fields for section in DATA_SECTIONS.values()):
        own = sorted(set(DATA_SECTIONS[source].model_fields) - set(DataBase.model_fields))
        return f"data.{name} is not used by data.source = {source!r}; it reads: {', '.join(own) or 'nothing else'}"
    allowed = allowed_keys(["data"], source)
    return f"unknown recipe key 'data.{name}'{did_you_mean(name, allowed)}; allowed here: {', '.join(allowed)}"


def _literal_words(expected: str) -> list[str]:
    return [w.strip(" '\"") for w in expected.replace(" or ", ",").split(",") if w.strip()]


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (rerunning it repeats the run)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
