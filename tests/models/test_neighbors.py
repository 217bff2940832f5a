"""The device neighbour list equals a brute-force one."""

import numpy as np
import pytest
import torch

from molstrata.models.neighbors import neighbor_pairs, neighbor_pairs_chunked


def brute_force(molecules, cutoff):
    pairs = set()
    for m in range(len(molecules)):
        _, r = molecules.atoms_of(m)
        start = molecules.offsets[m]
        d = np.linalg.norm(r[:, None] - r[None], axis=-1)
        for a, b in zip(*np.nonzero(d < cutoff)):
            if a != b:
                pairs.add((start + a, start + b))
    return pairs


@pytest.mark.parametrize("cutoff", [1.2, 4.0, 5.0, 50.0])
def test_pairs_equal_brute_force(qm9, cutoff):
    molecules = qm9.subset(np.random.default_rng(0).choice(len(qm9), 60, replace=False))
    positions = torch.from_numpy(molecules.positions)
    offsets = torch.from_numpy(molecules.offsets)
    i, j, d = neighbor_pairs(positions, offsets, cutoff, half=False)
    assert set(zip(i.tolist(), j.tolist())) == brute_force(molecules, cutoff)
    np.testing.assert_allclose(d, np.linalg.norm(molecules.positions[i] - molecules.positions[j],
                                                 axis=1))
    hi, hj, hd = neighbor_pairs(positions, offsets, cutoff, half=True)
    assert (hi < hj).all() and 2 * len(hi) == len(i)


def test_chunked_pairs_are_local_and_complete(qm9):
    molecules = qm9.subset(slice(1000, 1300))
    positions = torch.from_numpy(molecules.positions)
    offsets = torch.from_numpy(molecules.offsets)
    li, lj, d, pair_offsets = neighbor_pairs_chunked(positions, offsets, 4.0, chunk=7)
    i, j, d_all = neighbor_pairs(positions, offsets, 4.0, half=True)
    molecule = np.repeat(np.arange(len(molecules)), np.diff(pair_offsets.numpy()))
    np.testing.assert_array_equal(li.long().numpy() + molecules.offsets[molecule], i.numpy())
    np.testing.assert_array_equal(lj.long().numpy() + molecules.offsets[molecule], j.numpy())
    np.testing.assert_allclose(d, d_all)
