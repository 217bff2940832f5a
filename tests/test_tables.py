"""Text tables: every column's numbers share one precision, whatever their magnitudes."""

from __future__ import annotations

import math

from molstrata.tables import column_formatter, format_table


def test_a_column_is_written_with_one_precision():
    rows = [["a", 8.1312, (7.704, 8.66), 0.000104, 3, True],
            ["bb", 18.4723, (16.55, 20.4801), 0.00098, 12, False],
            ["c", None, (math.nan, 1.0), math.nan, None, "x"]]
    text = format_table(["run", "MAE meV", "95% CI", "MSE eV2", "n", "ok"], rows, title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[3].split() == ["a", "8.13", "7.70", "-", "8.66", "1.040e-04", "3", "True"]
    assert lines[4].split() == ["bb", "18.47", "16.55", "-", "20.48", "9.800e-04", "12", "False"]
    assert lines[5].split() == ["c", "-", "-", "-", "-", "x"]
    assert lines[3].index("8.13") + 4 == lines[4].index("18.47") + 5  # right-aligned numbers


def test_the_precision_follows_the_largest_and_the_smallest_number():
    assert column_formatter([150.2, 12.34])(12.34) == "12.3"  # 4 digits of the largest
    assert column_formatter([150.2, 0.05])(0.05) == "0.050"  # 2 of the smallest
    assert column_formatter([2e5, 1.0])(1.0) == "1.000e+00"  # too wide: scientific
    assert column_formatter(["text", 3])(2.0) == "2"  # no floats: no decimals
