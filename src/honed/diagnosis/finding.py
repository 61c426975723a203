"""What the doctor says: findings, each with its evidence in the run's own numbers and its advice as
`--set` recipe changes, ranked problem > warning > note and, within a severity, by how strong."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("problem", "warning", "note")


@dataclass
class Finding:
    name: str
    severity: str  # problem | warning | note
    evidence: str  # what the run's numbers show, in a sentence
    advice: list[str] = field(default_factory=list)  # alternatives, most promising first: "--set k=v [--set k=v]"
    hint: str = ""  # advice that no recipe key expresses (e.g. "remove the duplicates from the data file")
    strength: float = 0.0  # ranks findings of one severity (e.g. how far past the threshold)

    def to_json(self) -> dict:
        return asdict(self)


def ranked(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.strength, f.name))


def yaml_scalar(value) -> str:
    """A value as --set reads it back (YAML): 3e-06 needs its dot to be a number in YAML 1.1."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        text = f"{value:.3g}"
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(yaml_scalar(v) for v in value) + "]"
    return str(value)


def change(**changes) -> str:
    """change(**{'optimizer.lr': 0.003}) -> '--set optimizer.lr=0.003': one alternative, as printed."""
    return " ".join(f"--set {key}={yaml_scalar(value)}" for key, value in changes.items())


def overrides(alternative: str) -> list[str]:
    """'--set a=1 --set b=2' -> ['a=1', 'b=2'] (what load_recipe takes)."""
    parts = alternative.split()
    return [parts[i + 1] for i in range(0, len(parts) - 1, 2) if parts[i] == "--set"]
