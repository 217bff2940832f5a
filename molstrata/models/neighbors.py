"""Neighbour pairs within a cutoff, for many molecules at once, on any device.

Vectorised over the whole batch: every candidate pair of every molecule is enumerated from
one precomputed table, with no per-molecule Python. Molecules are small (QM9: at most 29
atoms), so testing all pairs inside each molecule is cheaper than any cell list.
"""

from __future__ import annotations

import torch

_TABLES: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _pair_table(n_max: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) atom of every pair a < b, ordered by b then a.

    In this order the first n(n-1)/2 entries are exactly the pairs of an n-atom molecule.
    """
    key = (n_max, str(device))
    if key not in _TABLES:
        n_table = max(n_max, 32)
        rows, cols = torch.tril_indices(n_table, n_table, offset=-1, device=device)
        _TABLES[key] = (cols, rows)
    return _TABLES[key]


def neighbor_pairs(
    positions: torch.Tensor,
    offsets: torch.Tensor,
    cutoff: float,
    half: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs of atoms of the same molecule closer than `cutoff` (Å).

    positions: (n_atoms, 3); offsets: (n_molecules + 1,) start of each molecule's atoms.
    Returns idx_i (n_pairs,), idx_j (n_pairs,) global atom indices and distances (n_pairs,).
    With half=True each unordered pair appears once with idx_i < idx_j; with half=False both
    directions appear (SchNetPack's convention for idx_i / idx_j).
    """
    device = positions.device
    sizes = offsets[1:] - offsets[:-1]
    counts = sizes * (sizes - 1) // 2
    total = int(counts.sum())
    n_max = int(sizes.max()) if len(sizes) else 0
    first, second = _pair_table(n_max, device)
    molecule = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts,
                                       output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=device) - starts[molecule]
    base = offsets[:-1][molecule]
    idx_i = first[local] + base
    idx_j = second[local] + base
    distances = torch.linalg.vector_norm(positions[idx_i] - positions[idx_j], dim=1)
    keep = distances < cutoff
    idx_i, idx_j, distances = idx_i[keep], idx_j[keep], distances[keep]
    if half:
        return idx_i, idx_j, distances
    return torch.cat([idx_i, idx_j]), torch.cat([idx_j, idx_i]), torch.cat([distances, distances])


def neighbor_pairs_chunked(
    positions: torch.Tensor, offsets: torch.Tensor, cutoff: float, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Half pairs of a whole dataset, computed `chunk` molecules at a time to bound memory.

    Returns (local_i, local_j, distances, pair_offsets): indices local to each molecule
    (atom 0 is the molecule's first atom), and (n_molecules + 1,) start of each molecule's pairs.
    """
    parts_i, parts_j, parts_d, counts = [], [], [], []
    n_molecules = len(offsets) - 1
    for start in range(0, n_molecules, chunk):
        stop = min(start + chunk, n_molecules)
        sub = offsets[start : stop + 1]
        a, b = int(sub[0]), int(sub[-1])
        idx_i, idx_j, distances = neighbor_pairs(positions[a:b], sub - a, cutoff, half=True)
        molecule = torch.searchsorted(sub - a, idx_i, right=True) - 1
        base = (sub - a)[molecule]
        parts_i.append((idx_i - base).to(torch.int16))
        parts_j.append((idx_j - base).to(torch.int16))
        parts_d.append(distances)
        counts.append(torch.bincount(molecule, minlength=stop - start))
    count = torch.cat(counts) if counts else torch.zeros(0, dtype=torch.long)
    pair_offsets = torch.zeros(n_molecules + 1, dtype=torch.long, device=positions.device)
    torch.cumsum(count, 0, out=pair_offsets[1:])
    return torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_d), pair_offsets
