"""A tiny sweep file: a tiny SchNet on a 200-molecule QM9 slice, trials of about a second."""

import pytest

BASE = """
[data]
max_molecules = 200
cache_dir = "{cache}"
[model]
n_atom_basis = 8
n_interactions = 1
n_rbf = 8
[training]
epochs = {epochs}
batch_size = 32
scheduler = "none"
[runtime]
threads = 1
"""


@pytest.fixture
def sweep_base() -> str:
    """The base config of the tiny sweeps, to format with cache and epochs."""
    return BASE


@pytest.fixture
def sweep_file(tmp_path, qm9_cache_dir):
    """write(sweep_table, epochs=2) -> path of a sweep file with that [sweep] text."""

    def write(sweep: str, epochs: int = 2, name: str = "tiny") -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(BASE.format(cache=qm9_cache_dir, epochs=epochs) + sweep)
        return str(path)

    return write
