"""Numbers of things read as English does: "1 epoch", "2 epochs"."""

from molstrata.wording import counted


def test_a_count_agrees_with_its_noun():
    assert counted(1, "epoch") == "1 epoch"
    assert counted(0, "run") == "0 runs"
    assert counted(12_000, "molecule") == "12,000 molecules"
    assert counted(1, "analysis", "analyses") == "1 analysis"
    assert counted(3, "stratum", "strata") == "3 strata"
