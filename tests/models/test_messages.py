"""Messages over pairs: routes, gathers and sums against a loop over pairs, and the checks
`MessageSums` makes where a batch is built (the compiled convolution's threads rely on them)."""

from __future__ import annotations

import pytest
import torch

from molstrata.data.molecules import Molecules
from molstrata.models import EnergyModel
from molstrata.models.messages import MessageSums, gather, message_routes, scatter
from molstrata.training.batches import DeviceDataset

CPU = torch.device("cpu")


def _batch(molecules: Molecules, rows, geometry: str = "distances", cutoff: float = 5.0):
    dataset = DeviceDataset(molecules, cutoff, CPU, torch.float64, geometry=geometry)
    return dataset, dataset.batch(torch.as_tensor(rows))


@pytest.mark.parametrize("half_pairs", [True, False])
def test_routed_messages_match_a_loop_over_pairs(tiny_molecules, half_pairs):
    _, batch = _batch(tiny_molecules, [3, 9, 0])
    h = torch.randn(len(batch.numbers), 4, dtype=torch.float64)
    expected = torch.zeros_like(h)
    for i, j in zip(batch.idx_i.tolist(), batch.idx_j.tolist()):
        expected[i] += h[j]
        if half_pairs:
            expected[j] += h[i]
    senders, receivers = message_routes(batch.idx_i, batch.idx_j, half_pairs)
    torch.testing.assert_close(scatter(gather(h, senders), receivers, len(h)), expected,
                               rtol=1e-12, atol=1e-12)


def test_message_sums_check_their_indices():
    idx, molecule = torch.tensor([0, 1]), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        MessageSums(idx, torch.tensor([1, 2]), 2)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        MessageSums(torch.tensor([-1, 0]), idx, 3)
    for offsets in ([0, 1], [0, 2, 1, 2]):
        with pytest.raises(ValueError, match="pair_offsets"):
            MessageSums(idx, idx + 1, 3, torch.tensor(offsets), molecule)
    with pytest.raises(ValueError, match="molecule_index"):
        MessageSums(idx, idx + 1, 3, torch.tensor([0, 2]))
    assert MessageSums(idx, idx + 1, 3, torch.tensor([0, 2]), molecule).n_pairs == 2


def test_pairs_that_join_two_molecules_are_refused(tiny_molecules):
    """Threads that take whole molecules are race-free only if each molecule's pairs join
    only its own atoms: a batch whose pairs cross molecules is refused where it is built."""
    molecule, offsets = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2])
    idx_i, idx_j = torch.tensor([0, 2]), torch.tensor([1, 3])
    MessageSums(idx_i, idx_j, 4, offsets, molecule)
    with pytest.raises(ValueError, match="another molecule's atoms"):
        MessageSums(idx_i, torch.tensor([2, 3]), 4, offsets, molecule)
    with pytest.raises(ValueError, match="another molecule's atoms"):  # pairs misattributed
        MessageSums(idx_i, idx_j, 4, torch.tensor([0, 2, 2]), molecule)
    dataset, _ = _batch(tiny_molecules, [0])
    assert dataset.pair_counts[1] > 0
    dataset.batch(torch.tensor([1, 2]))
    # molecule 1's first pair now points past its atoms, into the next molecule of the batch
    dataset.local_j[dataset.pair_offsets[1]] = dataset.atom_counts[1]
    with pytest.raises(ValueError, match="another molecule's atoms"):
        dataset.batch(torch.tensor([1, 2]))


def test_sums_are_refused_for_directed_pairs(tiny_molecules):
    model = EnergyModel(n_atom_basis=8, n_interactions=1, n_rbf=4).double()
    _, batch = _batch(tiny_molecules, [0])
    with pytest.raises(ValueError, match="half pairs"):
        model(batch.numbers, batch.geometry, batch.idx_i, batch.idx_j, batch.molecule_index,
              batch.n_molecules, half_pairs=False, sums=batch.sums)


def test_datasets_asked_not_to_carry_none(tiny_molecules):
    dataset = DeviceDataset(tiny_molecules, 5.0, CPU, torch.float32, message_sums=False)
    assert dataset.batch(torch.arange(3)).sums is None
    assert DeviceDataset(tiny_molecules, 5.0, CPU, torch.float32).batch(
        torch.arange(3)).sums is not None
