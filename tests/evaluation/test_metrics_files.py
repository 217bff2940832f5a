"""metrics.json, the stratum CSVs, predictions.csv and the terminal summary."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import fields

import numpy as np
import pytest

from molstrata.errors import MolstrataError
from molstrata.evaluation.files import (
    SCHEMA,
    format_summary,
    load_metrics,
    metrics_json,
    write_metrics,
)
from molstrata.evaluation.metrics import ErrorSummary
from molstrata.evaluation.stratified import (
    ELEMENT,
    SIZE,
    Predictions,
    StratifiedReport,
    StratumMetrics,
    TrainingCounts,
    stratified_metrics,
)

ELEMENTS = ("H", "C", "N", "O", "F")
METRIC_COLUMNS = [
    "mae_meV", "mae_ci95_low_meV", "mae_ci95_high_meV",
    "rmse_meV", "rmse_ci95_low_meV", "rmse_ci95_high_meV",
    "mse_eV2", "mse_ci95_low_eV2", "mse_ci95_high_eV2",
]  # fmt: skip


def make_predictions(unit: str = "eV", target: str = "U0") -> Predictions:
    """60 molecules of sizes 9, 10, 11 (20 each, errors 10, 20, 40 in `unit` / 1000); the
    first 5 hold F, all hold H and C, sizes 10 and 11 hold O."""
    sizes = np.repeat([9, 10, 11], 20)
    presence = np.zeros((60, 5), bool)
    presence[:, :2] = True
    presence[:5, 4] = True
    presence[20:, 3] = True
    sign = np.where(np.arange(60) % 2 == 0, 1.0, -1.0)
    errors = sign * np.repeat([0.010, 0.020, 0.040], 20)
    true = -np.arange(60, dtype=float) - 100.0
    return Predictions(np.arange(500, 560), sizes, presence, ELEMENTS, true, true + errors,
                       unit, target)


TRAIN = TrainingCounts(
    600, {9: 300, 10: 200, 11: 100}, {"H": 600, "C": 600, "O": 300, "F": 30},
    {(9, "H"): 300, (9, "F"): 30},
)


@pytest.fixture
def report_and_predictions() -> tuple[StratifiedReport, Predictions]:
    p = make_predictions()
    return stratified_metrics(p, TRAIN, n_bootstrap=100), p


def read_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


# ---- metrics.json ------------------------------------------------------------------------


def test_write_metrics_writes_the_five_files(tmp_path, report_and_predictions):
    files = write_metrics(*report_and_predictions, tmp_path / "eval")
    assert [f.name for f in files] == [
        "metrics.json", "metrics_by_size.csv", "metrics_by_element.csv",
        "metrics_by_size_element.csv", "predictions.csv",
    ]  # fmt: skip
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(f.name for f in files)


def test_metrics_json_has_the_schema_and_units_in_its_keys(tmp_path, report_and_predictions):
    report, p = report_and_predictions
    write_metrics(report, p, tmp_path)
    text = (tmp_path / "metrics.json").read_text()
    doc = json.loads(text)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == "molstrata-metrics"
    assert doc["schema_version"] == 1
    assert doc["target"] == "U0" and doc["target_unit"] == "eV"
    assert doc["units"] == {"mae": "meV", "rmse": "meV", "mse": "eV2", "train_share": "percent"}
    assert doc["n_molecules"] == 60
    assert doc["settings"]["n_bootstrap"] == 100 and doc["settings"]["min_share_percent"] == 1.0
    g = doc["global"]
    assert set(g) == {"label", "count", "train_count", "train_share_percent", "mae_meV",
                      "mae_ci95_meV", "rmse_meV", "rmse_ci95_meV", "mse_eV2", "mse_ci95_eV2"}
    # MAE (20 * 10 + 20 * 20 + 20 * 40) / 60 meV
    assert g["mae_meV"] == pytest.approx(70 / 3)
    assert g["mse_eV2"] == pytest.approx((0.01**2 + 0.02**2 + 0.04**2) / 3)
    assert len(g["mae_ci95_meV"]) == 2 and g["mae_ci95_meV"][0] <= g["mae_meV"]
    assert [(s["size"], s["mae_meV"]) for s in doc["per_size"]] == [
        (9, pytest.approx(10)), (10, pytest.approx(20)), (11, pytest.approx(40))]
    assert doc["per_size"][2]["train_share_percent"] == pytest.approx(100 / 6)
    assert [s["element"] for s in doc["per_element"]] == ["H", "C", "O", "F"]
    assert {"size", "element"} <= set(doc["per_size_element"][0])
    assert doc["worst"]["size"]["size"] == 11
    assert doc["macro"]["size"] == {"n_strata": 3, "mae_meV": pytest.approx(70 / 3),
                                    "rmse_meV": pytest.approx(70 / 3),
                                    "mse_eV2": pytest.approx(0.0021 / 3)}
    corr = doc["correlation"]["size"]
    assert corr["rho"] == pytest.approx(-1.0) and corr["n_strata"] == 3
    assert corr["holds"] is False  # 3 strata: exact p = 2/6 at best
    assert corr["p_value"] == pytest.approx(1 / 3)
    assert doc["training"]["size_counts"] == [{"size": 9, "count": 300},
                                              {"size": 10, "count": 200},
                                              {"size": 11, "count": 100}]
    assert "NaN" not in text


def test_untestable_correlations_are_null_in_json(tmp_path):
    p = Predictions([1, 2, 3, 4], [5, 5, 6, 6], np.ones((4, 1), bool), ("H",), [0.0] * 4,
                    [0.1, 0.2, 0.3, 0.4], "eV", "U0")
    report = stratified_metrics(p, TrainingCounts(4, {5: 2, 6: 2}, {"H": 4}), n_bootstrap=10)
    write_metrics(report, p, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["correlation"]["element"]["rho"] is None
    assert doc["correlation"]["element"]["p_value"] is None


def test_metrics_json_reads_back_into_the_same_report(tmp_path, report_and_predictions):
    report, p = report_and_predictions
    write_metrics(report, p, tmp_path)
    back = load_metrics(tmp_path / "metrics.json")
    assert_reports_close(back, report)
    assert_json_close(metrics_json(back), metrics_json(report))


def assert_json_close(a, b, where: str = "") -> None:
    """Equal documents, floats to 1e-12 relative (meV <-> eV conversions round)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), where
        for key in b:
            assert_json_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_json_close(x, y, f"{where}[{i}]")
    elif isinstance(b, float) and not isinstance(a, bool):
        assert a == pytest.approx(b, rel=1e-12, nan_ok=True), where
    else:
        assert a == b, where


def assert_reports_close(a: StratifiedReport, b: StratifiedReport) -> None:
    assert (a.target, a.unit, a.n_molecules, a.seed, a.n_bootstrap) == (
        b.target, b.unit, b.n_molecules, b.seed, b.n_bootstrap)
    assert a.training == b.training
    assert a.omitted_sizes == b.omitted_sizes
    for kind in (SIZE, ELEMENT):
        assert a.macro[kind].mae == pytest.approx(b.macro[kind].mae)
        assert a.worst[kind].key == b.worst[kind].key
        assert a.correlations[kind].rho == pytest.approx(b.correlations[kind].rho)
        assert a.correlations[kind].holds == b.correlations[kind].holds
    pairs = [(a.overall, b.overall), *zip(a.sizes, b.sizes), *zip(a.elements, b.elements),
             *zip(a.size_elements, b.size_elements)]
    assert len(pairs) == 1 + len(b.sizes) + len(b.elements) + len(b.size_elements)
    for x, y in pairs:
        assert_strata_close(x, y)


def assert_strata_close(x: StratumMetrics, y: StratumMetrics) -> None:
    assert (x.kind, x.key, x.label, x.train_count) == (y.kind, y.key, y.label, y.train_count)
    assert x.train_share == pytest.approx(y.train_share)
    for f in fields(ErrorSummary):
        assert getattr(x.summary, f.name) == pytest.approx(getattr(y.summary, f.name),
                                                           nan_ok=True), f.name


def test_load_metrics_refuses_other_files(tmp_path, report_and_predictions):
    write_metrics(*report_and_predictions, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    (tmp_path / "v2.json").write_text(json.dumps({**doc, "schema_version": 2}))
    with pytest.raises(MolstrataError, match=r"schema version 2, newer than .* upgrade molstrata"):
        load_metrics(tmp_path / "v2.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(MolstrataError, match="not a molstrata metrics file"):
        load_metrics(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text((tmp_path / "metrics.json").read_text()[:300])
    with pytest.raises(MolstrataError, match="not valid JSON"):
        load_metrics(tmp_path / "cut.json")
    del doc["per_size"]
    (tmp_path / "partial.json").write_text(json.dumps(doc))
    with pytest.raises(MolstrataError, match="damaged or incomplete"):
        load_metrics(tmp_path / "partial.json")
    with pytest.raises(MolstrataError, match="missing.json does not exist; evaluate the run"):
        load_metrics(tmp_path / "missing.json")


def test_schema_is_documented():
    for key in ("molstrata-metrics", "schema_version", "mae_meV", "mse_eV2", "ci95",
                "per_size_element", "macro", "worst", "correlation", "train_share_percent"):
        assert key in SCHEMA


# ---- CSVs --------------------------------------------------------------------------------


def test_stratum_csvs_carry_units_in_their_column_names(tmp_path, report_and_predictions):
    write_metrics(*report_and_predictions, tmp_path)
    header, rows = read_csv(tmp_path / "metrics_by_size.csv")
    assert header == ["stratum", "n_atoms", "count", "train_count", "train_share_percent",
                      *METRIC_COLUMNS]
    assert [(r["stratum"], int(r["n_atoms"]), int(r["count"])) for r in rows] == [
        ("9 atoms", 9, 20), ("10 atoms", 10, 20), ("11 atoms", 11, 20)]
    assert float(rows[2]["mae_meV"]) == pytest.approx(40)
    assert float(rows[2]["mse_eV2"]) == pytest.approx(0.0016)
    assert float(rows[0]["train_share_percent"]) == pytest.approx(50)
    header, rows = read_csv(tmp_path / "metrics_by_element.csv")
    assert header[:2] == ["stratum", "element"] and header[5:] == METRIC_COLUMNS
    assert {r["element"]: int(r["count"]) for r in rows} == {"H": 60, "C": 60, "O": 40, "F": 5}
    header, rows = read_csv(tmp_path / "metrics_by_size_element.csv")
    assert header[:3] == ["stratum", "n_atoms", "element"]
    f_cell = next(r for r in rows if r["n_atoms"] == "9" and r["element"] == "F")
    assert (f_cell["stratum"], f_cell["count"], f_cell["train_count"]) == ("9 atoms with F",
                                                                          "5", "30")


def test_predictions_csv_has_one_row_per_molecule_with_units(tmp_path, report_and_predictions):
    report, p = report_and_predictions
    write_metrics(report, p, tmp_path)
    header, rows = read_csv(tmp_path / "predictions.csv")
    assert header == ["id", "n_atoms", "elements", "true_eV", "predicted_eV", "error_meV"]
    assert len(rows) == 60
    first, last = rows[0], rows[-1]
    assert (first["id"], first["n_atoms"], first["elements"]) == ("500", "9", "CHF")
    assert last["elements"] == "CHO"
    assert float(first["true_eV"]) == -100.0
    assert float(first["predicted_eV"]) == pytest.approx(-99.99)
    assert float(first["error_meV"]) == pytest.approx(10.0)
    assert float(last["error_meV"]) == pytest.approx(-40.0)


def test_another_target_unit_is_kept_and_spelled_in_keys(tmp_path):
    p = make_predictions(unit="Debye", target="mu")
    train = TrainingCounts(600, TRAIN.sizes, TRAIN.elements)
    report = stratified_metrics(p, train, n_bootstrap=20)
    write_metrics(report, p, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["units"]["mae"] == "Debye" and doc["units"]["mse"] == "Debye2"
    assert doc["per_size"][0]["mae_Debye"] == pytest.approx(0.010)
    assert "mse_ci95_Debye2" in doc["global"]
    header, _ = read_csv(tmp_path / "predictions.csv")
    assert header[3:] == ["true_Debye", "predicted_Debye", "error_Debye"]
    assert load_metrics(tmp_path / "metrics.json").sizes[0].summary.mae == pytest.approx(0.010)


def test_nothing_is_written_when_the_predictions_do_not_belong_to_the_report(
    tmp_path, report_and_predictions
):
    report, _ = report_and_predictions
    other = make_predictions(unit="Debye", target="mu")
    with pytest.raises(ValueError, match="do not belong"):
        write_metrics(report, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- terminal summary --------------------------------------------------------------------


def test_summary_shows_every_part_of_the_report(report_and_predictions):
    report, _ = report_and_predictions
    text = format_summary(report)
    for piece in ("U0 [eV]: 60 molecules evaluated", "Overall", "all molecules", "Per size",
                  "11 atoms", "Per element", "with F", "Macro average", "Worst stratum",
                  "MAE meV", "MSE eV2", "95% CI", "Spearman rho", "hypotheses 1"):
        assert piece in text, piece
    worst_line = next(line for line in text.splitlines() if line.startswith("size ")
                      and "11 atoms" in line)
    assert "40" in worst_line and "x1.71" in worst_line  # 40 / (70/3) meV
    assert math.isclose(report.worst[SIZE].summary.mae / report.overall.summary.mae, 12 / 7)


def test_summary_names_the_sizes_left_out():
    sizes = np.repeat([5, 6], [1, 199])
    p = Predictions(np.arange(200), sizes, np.ones((200, 1), bool), ("H",), np.zeros(200),
                    np.full(200, 0.01), "eV", "U0")
    report = stratified_metrics(p, TrainingCounts(10, {6: 10}, {"H": 10}), n_bootstrap=10)
    text = format_summary(report)
    assert "Not reported per size: 1 size (5 atoms) holding 1 molecule;" in text
    assert "evaluate --all-sizes (all_sizes=True in Python) reports them" in text


def test_a_stratum_of_too_few_molecules_has_no_interval_anywhere(tmp_path,
                                                                 report_and_predictions):
    """F: 5 test molecules, under MIN_INTERVAL_COUNT: its figures, and no interval in the
    CSV (empty cells), metrics.json (null) or the summary ("-", and why)."""
    report, p = report_and_predictions
    write_metrics(report, p, tmp_path)
    _, rows = read_csv(tmp_path / "metrics_by_element.csv")
    by_element = {row["element"]: row for row in rows}
    assert by_element["F"]["count"] == "5" and float(by_element["F"]["mae_meV"]) > 0
    assert [by_element["F"][c] for c in METRIC_COLUMNS if "_ci95_" in c] == [""] * 6
    assert all(by_element["H"][c] for c in METRIC_COLUMNS)  # 60 molecules: an interval
    doc = json.loads((tmp_path / "metrics.json").read_text())
    f = next(s for s in doc["per_element"] if s["element"] == "F")
    assert f["mae_ci95_meV"] == [None, None] and doc["settings"]["min_interval_count"] == 10
    text = format_summary(report)
    f_line = next(line for line in text.splitlines() if line.startswith("with F"))
    assert f_line.split().count("-") == 2  # both intervals
    assert "no CI (-) where a stratum holds fewer than 10 molecules" in text
    back = load_metrics(tmp_path / "metrics.json").elements[-1]
    assert back.key == "F" and math.isnan(back.summary.mae_ci_low)
