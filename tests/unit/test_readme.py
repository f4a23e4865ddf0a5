"""The README documents every setting there is (docs that match the code)."""

from pathlib import Path

from pydantic import BaseModel

from binlog_tailer.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _settings(kind, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def _documented(dotted: str) -> bool:
    """Named in full, or by its last part on a line that names its section (`section.x`,
    `y`, `z` in a settings table)."""
    if f"`{dotted}`" in README or f"{dotted} " in README or f"{dotted}=" in README:
        return True
    section, _, leaf = dotted.rpartition(".")
    return bool(section) and any(
        f"`{section}." in line and f"`{leaf}`" in line for line in README.splitlines()
    )


def test_every_setting_is_in_the_readme():
    missing = [s for s in _settings(Settings) if not _documented(s)]
    assert missing == [], f"settings the README does not name: {missing}"
