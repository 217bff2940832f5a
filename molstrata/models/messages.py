"""Message passing over pairs: who sends to whom, the sums of messages per atom, and a batch's
pairs molecule by molecule.

A batch of half pairs (each unordered pair p = (i, j) once) carries 2 n_pairs messages: message
p goes j -> i and message n_pairs + p goes i -> j (`message_routes`). A model gathers each
message's sender features (`gather`) and sums the messages each atom receives (`scatter`), with
PyTorch's index_select and index_add_, on any device. `MessageSums` holds a batch's pairs as
the compiled CPU kernels (kernels.py) read them: split between threads by molecule.
"""

from __future__ import annotations

import torch


class MessageSums:
    """A batch's pairs, checked once, for the compiled kernels (kernels.py).

    idx_i, idx_j: (n_pairs,) pairs over n_atoms atoms. pair_offsets: (n_molecules + 1,), the
    pairs of molecule m being pair_offsets[m] .. pair_offsets[m + 1] - 1 (`DeviceDataset`
    batches), with molecule_index (n_atoms,), the molecule of each atom; or neither. Threads
    that take whole molecules write disjoint atoms' rows only if each molecule's pairs join
    only its own atoms: the constructor checks that, and refuses a batch where they do not.
    """

    def __init__(self, idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int,
                 pair_offsets: torch.Tensor | None = None,
                 molecule_index: torch.Tensor | None = None) -> None:
        n_pairs = len(idx_i)
        if idx_j.shape != idx_i.shape or idx_i.dim() != 1:
            raise ValueError("idx_i and idx_j must be 1-d and of one length")
        if n_pairs and (int(torch.minimum(idx_i.min(), idx_j.min())) < 0
                        or int(torch.maximum(idx_i.max(), idx_j.max())) >= n_atoms):
            raise ValueError(f"pair indices must lie in [0, {n_atoms})")
        if (pair_offsets is None) != (molecule_index is None):
            raise ValueError("give pair_offsets with molecule_index, which checks them")
        if pair_offsets is not None:
            pair_offsets = pair_offsets.to(torch.int64).contiguous()
            counts = pair_offsets[1:] - pair_offsets[:-1]
            if (pair_offsets.dim() != 1 or len(pair_offsets) == 0 or int(pair_offsets[0]) != 0
                    or int(pair_offsets[-1]) != n_pairs or bool((counts < 0).any())
                    or molecule_index.shape != (n_atoms,)):
                raise ValueError("pair_offsets must rise from 0 to the number of pairs, "
                                 "molecule_index give every atom's molecule")
            molecule = torch.repeat_interleave(torch.arange(len(counts), device=counts.device),
                                               counts, output_size=n_pairs)
            if bool((molecule_index[idx_i] != molecule).any()
                    | (molecule_index[idx_j] != molecule).any()):
                raise ValueError("a molecule's pairs join another molecule's atoms: threads "
                                 "taking whole molecules would write one atom's row at once")
        self.idx_i = idx_i.to(torch.int64).contiguous()
        self.idx_j = idx_j.to(torch.int64).contiguous()
        self.n_atoms = n_atoms
        self.pair_offsets = pair_offsets

    @property
    def n_pairs(self) -> int:
        return len(self.idx_i)


def message_routes(
    idx_i: torch.Tensor, idx_j: torch.Tensor, half_pairs: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(senders, receivers) of the messages: j -> i for directed pairs; for half pairs both
    j -> i and i -> j, the reverse messages after the forward ones. Built once per batch and
    shared by every interaction."""
    if not half_pairs:
        return idx_j, idx_i
    return torch.cat([idx_j, idx_i]), torch.cat([idx_i, idx_j])


def gather(h: torch.Tensor, senders: torch.Tensor) -> torch.Tensor:
    """(n_messages, ...) rows of h (n_atoms, ...) of each message's sender."""
    # index_select, not h[idx]: its backward is an index_add, several times faster on CPUs
    # than the accumulating index_put that plain indexing backpropagates through.
    return torch.index_select(h, 0, senders)


def scatter(messages: torch.Tensor, receivers: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """(n_atoms, ...) sums of the messages (n_messages, ...) each atom receives."""
    return messages.new_zeros((n_atoms, *messages.shape[1:])).index_add_(0, receivers, messages)
