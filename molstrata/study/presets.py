"""The study plans shipped with molstrata (study/plans/NAME.toml), by name: light, so that
`molstrata --help` lists them without importing numpy or torch."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

PLANS = resources.files("molstrata.study") / "plans"
"""The folder of the shipped plans."""


def plan_presets() -> list[str]:
    """Names of the plans shipped with molstrata (`molstrata study --preset NAME`)."""
    return sorted(p.name.removesuffix(".toml") for p in PLANS.iterdir()
                  if p.name.endswith(".toml"))


def preset_file(name: str) -> Traversable:
    """The plan file of a shipped plan."""
    return PLANS / f"{name}.toml"
