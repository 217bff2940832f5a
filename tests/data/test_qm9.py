"""QM9 from qm9pack: the real data, its units, and the cache's rules."""

import numpy as np
import pytest

import molstrata
from molstrata.data import cache
from molstrata.data import qm9 as qm9_module
from molstrata.data.qm9 import QM9_PROPERTIES, load_qm9


def test_all_molecules_and_every_property(qm9):
    assert len(qm9) == 130_831
    assert set(qm9.properties) == set(QM9_PROPERTIES)
    assert qm9.units["U0"] == "eV" and qm9.units["alpha"] == "Angstrom**3"
    assert qm9.sizes.min() == 3 and qm9.sizes.max() == 29
    assert np.all(np.diff(qm9.ids) > 0)
    for name in qm9.properties:
        assert np.isfinite(qm9.property(name)).all(), name


def test_methane_is_molecule_one_in_ev(qm9):
    assert qm9.ids[0] == 1 and qm9.annotations["smiles"][0] == "C"
    numbers, positions = qm9.atoms_of(0)
    assert numbers.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_allclose(positions[0], [-0.0126981359, 1.0858041578, 0.0080009958])
    assert qm9.property("U0")[0] == pytest.approx(-40.47893 * 27.211386245988, rel=1e-12)
    assert qm9.property("U0", "Hartree")[0] == pytest.approx(-40.47893, rel=1e-12)
    assert qm9.property("homo", "Hartree")[0] == pytest.approx(-0.3877)
    assert qm9.property("alpha", "Bohr**3")[0] == pytest.approx(13.21)


def test_element_shares_match_the_study(qm9):
    share = {s: 100 * qm9.contains(s).mean() for s in "HCNOF"}
    expected = {"H": 99.97, "C": 99.998, "N": 61.06, "O": 85.09, "F": 1.470}
    for symbol, percent in expected.items():
        assert share[symbol] == pytest.approx(percent, abs=0.01), symbol


def test_rows_with_bare_numbers_parse(qm9):
    # Rows 3, 22, 23, 476 and 58239 write bare `0.` / `1.` inside XYZ_Ang.
    for row in (3, 22, 23, 476, 58239):
        numbers, positions = qm9.atoms_of(row)
        assert len(numbers) == qm9.sizes[row] and np.isfinite(positions).all()
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        assert distances[np.triu_indices(len(numbers), 1)].min() > 0.9  # no collapsed atoms


# ---- the cache's rules, on a small stand-in for the CSV parse ---------------------------


@pytest.fixture
def counted_parse(monkeypatch, qm9):
    """Replace the 8-second CSV parse by a slice of the real QM9, counting the calls."""
    part = qm9.subset(slice(0, 50))
    arrays = {"numbers": part.numbers, "positions": part.positions, "offsets": part.offsets,
              "ids": part.ids, "smiles": part.annotations["smiles"]}
    arrays.update({f"property/{k}": v for k, v in part.properties.items()})
    calls = []

    def parse(folder, progress=True):
        calls.append(folder)
        return arrays

    monkeypatch.setattr(qm9_module, "parse_csv", parse)
    return calls


def test_cache_is_written_then_read(tmp_path, counted_parse):
    first = load_qm9(tmp_path, progress=False)
    second = load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 1
    assert second.fingerprint() == first.fingerprint()
    assert not list(tmp_path.glob("*.part"))


def test_cache_of_another_version_is_rebuilt(tmp_path, counted_parse, monkeypatch, capsys):
    load_qm9(tmp_path, progress=False)
    monkeypatch.setattr(molstrata, "__version__", "99.0")
    load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 2
    assert "rebuilding the stale or damaged QM9 cache" in capsys.readouterr().err
    load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 2


def test_cache_from_changed_sources_is_rebuilt(tmp_path, counted_parse, monkeypatch):
    load_qm9(tmp_path, progress=False)
    real_stamp = cache.source_stamp
    monkeypatch.setattr(cache, "source_stamp",
                        lambda paths: [[n, s + 1, t] for n, s, t in real_stamp(paths)])
    load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 2


def _touched(stamp):
    """source_stamp as it reads after the files were touched: new times, same sizes."""
    return lambda paths: [[n, size, t + 10**9] for n, size, t in stamp(paths)]


def test_cache_of_the_same_files_with_new_times_is_kept(tmp_path, counted_parse, monkeypatch):
    load_qm9(tmp_path, progress=False)
    monkeypatch.setattr(cache, "source_stamp", _touched(cache.source_stamp))
    digests = []
    real_digest = cache.source_digest
    monkeypatch.setattr(cache, "source_digest",
                        lambda paths: digests.append(paths) or real_digest(paths))
    kept = load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 1 and len(digests) == 1 and len(kept) == 50


def test_cache_of_files_with_new_times_and_contents_is_rebuilt(tmp_path, counted_parse,
                                                                monkeypatch):
    load_qm9(tmp_path, progress=False)
    monkeypatch.setattr(cache, "source_stamp", _touched(cache.source_stamp))
    monkeypatch.setattr(cache, "source_digest", lambda paths: "0" * 64)
    load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 2


def test_truncated_cache_is_rejected_and_rebuilt(tmp_path, counted_parse):
    load_qm9(tmp_path, progress=False)
    path = qm9_module.cache_path(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert cache.stored_key(path) is None
    rebuilt = load_qm9(tmp_path, progress=False)
    assert len(counted_parse) == 2 and len(rebuilt) == 50
    assert path.stat().st_size == len(data)


def test_corrupted_member_is_rejected(tmp_path):
    path = tmp_path / "c.npz"
    cache.save(path, {"x": np.arange(100_000, dtype=np.int64)}, {"k": 1})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits inside the array's bytes: the CRC check fails
    path.write_bytes(bytes(data))
    assert cache.load(path, {"k": 1}) is None


def test_interrupted_write_leaves_no_cache(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"

    def explode(handle, **arrays):
        handle.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(KeyboardInterrupt):
        cache.save(path, {"x": np.arange(3)}, {"k": 1})
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLSTRATA_CACHE_DIR", str(tmp_path / "env"))
    assert cache.cache_dir(tmp_path / "opt") == tmp_path / "opt"
    assert cache.cache_dir() == tmp_path / "env"
    monkeypatch.delenv("MOLSTRATA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "molstrata"
