"""Attributions as colours: red toward the explained output, blue against, as strong as the largest one.
Shared by explain.html and the run's report page."""

from __future__ import annotations


def colour(value: float, largest: float) -> str:
    strength = 0.0 if largest <= 0 else min(1.0, abs(value) / largest)
    rgb = "214,39,40" if value > 0 else "31,119,180"
    return f"rgba({rgb},{0.75 * strength:.3f})"


def shaded(item: dict) -> list[dict]:
    largest = max((abs(v) for v in item["attributions"]), default=0.0)
    return [{"word": w, "value": v, "colour": colour(v, largest), "width": 0 if largest <= 0 else 12 * abs(v) / largest}
            for w, v in zip(item["names"], item["attributions"])]
