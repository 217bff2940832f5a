"""Benchmark: forward + backward of molstrata's PaiNN (half pairs) against SchNetPack 2.1.1's.

    python bench/bench_painn_forward.py [--molecules 100] [--threads 2] [--repeats 20]
                                        [--compile]

One batch of real QM9 molecules (`default_rng(0).permutation`, the first `--molecules`), one
PaiNN with SchNetPack's defaults (128 features, 3 interactions, 20 Gaussians, 5 Å) plus an
Atomwise head, random weights, float32. SchNetPack's `NeuralNetworkPotential` gets directed
pairs; molstrata gets the same weights through `load_schnetpack_state_dict` and each unordered
pair once (half_pairs=True), and, for reference, the directed pairs too. Pairs are found before
timing; each timed step computes the pair geometry from the positions, the energies, and the
gradient of their sum with respect to every parameter (a training step on energies). Median
of `--repeats` steps after one warm-up, the three taking turns; the energies of both are
checked to agree first. `--compile` adds a fourth: molstrata's half pairs under
torch.compile(dynamic=True), as `runtime.compile` trains (its compilation is timed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from schnetpack_pipeline import cpu_model, import_schnetpack  # bench/ is on sys.path

from molstrata.data.qm9 import load_qm9
from molstrata.models import load_schnetpack_state_dict, pair_geometry
from molstrata.models.neighbors import neighbor_pairs


def median_ms(steps: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each step; the steps take turns within each repeat, so that a
    drift in the CPU's speed (other processes) touches them all alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def schnetpack_painn(spk, n_atom_basis: int, n_interactions: int) -> torch.nn.Module:
    torch.manual_seed(0)
    representation = spk.representation.PaiNN(
        n_atom_basis=n_atom_basis, n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5.0), cutoff_fn=spk.nn.CosineCutoff(5.0),
    )
    head = spk.atomistic.Atomwise(n_in=n_atom_basis, output_key="energy")
    return spk.model.NeuralNetworkPotential(
        representation=representation, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[head],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--n-atom-basis", type=int, default=128)
    parser.add_argument("--n-interactions", type=int, default=3)
    parser.add_argument("--compile", action="store_true",
                        help="also time molstrata's half pairs under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spk = import_schnetpack()

    qm9 = load_qm9(progress=False)
    molecules = qm9.subset(np.random.default_rng(0).permutation(len(qm9))[: args.molecules])
    numbers = torch.as_tensor(molecules.numbers).long()
    positions = torch.as_tensor(molecules.positions, dtype=torch.float32)
    offsets = torch.as_tensor(molecules.offsets)
    molecule = torch.as_tensor(molecules.atom_molecule)
    n = len(molecules)
    half_i, half_j, _ = neighbor_pairs(positions.double(), offsets, 5.0, half=True)
    dir_i, dir_j, _ = neighbor_pairs(positions.double(), offsets, 5.0, half=False)

    theirs = schnetpack_painn(spk, args.n_atom_basis, args.n_interactions)
    ours = load_schnetpack_state_dict(theirs.state_dict())
    inputs = {
        spk.properties.Z: numbers, spk.properties.R: positions,
        spk.properties.idx_i: dir_i, spk.properties.idx_j: dir_j,
        spk.properties.idx_m: molecule, spk.properties.n_atoms: torch.bincount(molecule),
        spk.properties.offsets: torch.zeros(len(dir_i), 3),
    }

    def schnetpack_step() -> torch.Tensor:
        theirs.zero_grad(set_to_none=True)
        energy = theirs(dict(inputs))["energy"]
        energy.sum().backward()
        return energy

    compiled = torch.compile(ours, dynamic=True)

    def molstrata_step(idx_i, idx_j, half_pairs, model=ours) -> torch.Tensor:
        ours.zero_grad(set_to_none=True)
        geometry = pair_geometry(positions, idx_i, idx_j, ours.geometry)
        energy = model(numbers, geometry, idx_i, idx_j, molecule, n, half_pairs)
        energy.sum().backward()
        return energy

    difference = (molstrata_step(half_i, half_j, True) - schnetpack_step()).abs().max().item()
    assert difference < 1e-3, f"the two models disagree by {difference} eV"
    n_atoms = len(numbers)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} threads, float32; "
          f"PaiNN {args.n_atom_basis}/{args.n_interactions} + Atomwise; {n} QM9 molecules, "
          f"{n_atoms} atoms, {len(half_i)} unordered pairs within 5 Å; max |dE| "
          f"{difference:.1e} eV")
    steps = {
        "schnetpack": schnetpack_step,
        "half": lambda: molstrata_step(half_i, half_j, True),
        "directed": lambda: molstrata_step(dir_i, dir_j, False),
    }
    if args.compile:
        start = time.perf_counter()
        molstrata_step(half_i, half_j, True, compiled)
        print(f"torch.compile: first step (compilation) {time.perf_counter() - start:.1f} s")
        steps["compiled"] = lambda: molstrata_step(half_i, half_j, True, compiled)
    ms = median_ms(steps, args.repeats)
    theirs_ms, half_ms, directed_ms = ms["schnetpack"], ms["half"], ms["directed"]
    print(f"SchNetPack 2.1.1 PaiNN (directed pairs):  {theirs_ms:8.1f} ms per forward+backward")
    print(f"molstrata PaiNN (half pairs):              {half_ms:8.1f} ms   "
          f"{theirs_ms / half_ms:.2f}x SchNetPack's speed")
    print(f"molstrata PaiNN (directed pairs, ref.):    {directed_ms:8.1f} ms   "
          f"{theirs_ms / directed_ms:.2f}x")
    if args.compile:
        print(f"molstrata PaiNN (half pairs, compiled):    {ms['compiled']:8.1f} ms   "
              f"{theirs_ms / ms['compiled']:.2f}x")


if __name__ == "__main__":
    main()
