"""The one exception type that means "the user asked for something we cannot do".

Everything raised as a `UserError` reaches the command line as a single line on
stderr and exit code 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: recipe, data, paths, run directories."""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown(value, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: an error line names a culprit without quoting a whole file."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 12]}...({len(text):,} chars)"


def listed(values, limit: int = 5) -> str:
    """The first `limit` values, shown short, and how many more: 'a', 'b', 'c' (+12 more)."""
    values = list(values)
    head = ", ".join(shown(v) for v in values[:limit])
    return head + (f" (+{len(values) - limit:,} more)" if len(values) > limit else "")
