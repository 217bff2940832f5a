"""How a number of things reads in what molstrata prints: "1 epoch", "3 epochs"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with `noun` agreeing with it, thousands separated: counted(1, "epoch") is
    "1 epoch", counted(12000, "molecule") "12,000 molecules", counted(2, "analysis",
    "analyses") "2 analyses"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
