"""Fixtures shared across the test suite."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from molstrata.data.molecules import Molecules, atomic_number

# The tiny_molecules collection, as (how many, formula): 34 molecules in all.
TINY_FORMULAS = [
    (10, {"C": 1, "H": 4}),  # 5 atoms
    (2, {"C": 1, "H": 3, "F": 1}),  # 5 atoms
    (8, {"C": 2, "H": 6, "O": 1}),  # 9 atoms
    (6, {"C": 3, "H": 9, "N": 1}),  # 13 atoms
    (4, {"H": 2, "O": 1}),  # 3 atoms
    (1, {"C": 5, "H": 10, "N": 2, "O": 1, "F": 2}),  # 20 atoms
    (3, {"N": 1, "H": 3}),  # 4 atoms
]


@pytest.fixture
def tiny_molecules() -> Molecules:
    """34 molecules of sizes 3, 4, 5, 9, 13, 20 with H, C, N, O, F, in shuffled row order,
    random positions and non-contiguous ids (see TINY_FORMULAS)."""
    rng = np.random.default_rng(7)
    numbers = [
        np.repeat([atomic_number(s) for s in formula], list(formula.values()))
        for count, formula in TINY_FORMULAS
        for _ in range(count)
    ]
    order = rng.permutation(len(numbers))
    numbers = [rng.permutation(numbers[i]) for i in order]
    positions = [rng.normal(scale=1.5, size=(len(z), 3)) for z in numbers]
    ids = rng.choice(10_000, size=len(numbers), replace=False)
    energies = rng.normal(size=len(numbers))
    return Molecules.from_lists(
        numbers, positions, properties={"U0": energies}, units={"U0": "eV"}, ids=ids
    )


# ---- the real QM9, parsed once per test session into a private cache --------------------


@pytest.fixture(scope="session")
def qm9_cache_dir(tmp_path_factory):
    """A cache folder holding the parsed QM9 (the user's own cache is never touched)."""
    from molstrata.data.qm9 import load_qm9

    folder = tmp_path_factory.mktemp("qm9-cache")
    load_qm9(folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def qm9(qm9_cache_dir):
    """All 130,831 molecules of QM9, from qm9pack's CSV files."""
    from molstrata.data.qm9 import load_qm9

    return load_qm9(qm9_cache_dir, progress=False)


# ---- a throwaway PostgreSQL server (tests/pgserver.py), one per session -------------------


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server started for this session and stopped after it; the tests that use
    it are skipped, with the package to install, where it cannot start."""
    from pgserver import PostgresServer, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


_DATABASES = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """The URL (psycopg 3, with a password) of a new database of its own for this test."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return postgres_server.create_database(f"t{next(_DATABASES)}_{name}")
