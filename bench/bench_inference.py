"""Benchmark: inference throughput of a deployed model, molstrata vs SchNetPack 2.1.1 and
PyTorch Geometric, and the peak memory of `molstrata predict` on all of QM9.

    python bench/bench_inference.py [--configs a b] [--repeats 5] [--no-schnetpack]
                                    [--no-compile] [--memory-config a] [--qm9-extxyz FILE]
                                    [--pyg-path DIR]

Molecules: the peers' 2,000 QM9 validation and test molecules (`peer_split`), configs (a) and
(b) of the core benchmark (bench/schnetpack_pipeline.py), 2 threads, float32, the config's batch
size. One set of weights per config: a SchNetPack `NeuralNetworkPotential` (SchNet, Atomwise,
AddOffsets with per-element reference energies fitted on the 10,000 training molecules) with
random weights, imported into molstrata with `load_schnetpack_state_dict`, so both sides compute
the same function (the largest difference of their energies is printed). Throughput does not
depend on the weights' values.

Timed, molecules per second from atoms to energies, after a warm-up pass:
- eager: `molstrata.deploy.inference.predict_molecules` on the model file (what `molstrata
  predict` and `evaluate` run), neighbour pairs included;
- exported: the torch.export program (`molstrata export ... -o model.pt2`, loaded with
  `torch.export.load`), batches of (numbers, positions, sizes), neighbour pairs in the graph;
- compiled: the eager path under `torch.compile(dynamic=True)`; the first pass, which
  compiles, is timed separately;
- PyG: PyTorch Geometric 2.8.1's `SchNet` with the same hyper-parameters, where
  torch_geometric imports (it needs no pyg-lib here: its interaction graph is molstrata's
  vectorised neighbour search; `--pyg-path` adds a folder holding it, e.g. made with
  `pip install --no-deps --target DIR torch_geometric==2.8.1 psutil`), else the issue's
  figures are quoted;
- SchNetPack 2.1.1: its own predict path (ASE database, `ASEAtomsData` with `ASENeighborList`
  and `CastTo32`, `AtomsLoader`, `model(batch)`), best of 0 and 2 loader workers.
The CPU's speed drifts on a shared machine, so the first four run one after the other within
each of `--repeats` rounds (after waiting for a quiet CPU), and each figure is the median over
the rounds; the share of the CPU other processes took meanwhile is printed.

Memory: `molstrata predict MODEL qm9.extxyz` on all 130,831 QM9 molecules with the model of
`--memory-config`, in a child process whose peak resident set size (ru_maxrss) is reported with
its wall time. The QM9 extxyz is written once (about 2 minutes) to bench/.cache/ unless given.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from schnetpack_pipeline import (  # bench/ is on sys.path
    CONFIGS,
    DEFAULT_CACHE,
    build_model,
    cpu_model,
    database,
    fit_atomrefs,
    import_schnetpack,
    inference_loader,
    others_load,
    peer_split,
    wait_for_quiet,
)
from schnetpack_pipeline import predict as schnetpack_predict

from molstrata.data.molecules import Molecules
from molstrata.data.qm9 import load_qm9
from molstrata.deploy.inference import compiled, predict_molecules
from molstrata.deploy.modelfile import model_document, model_from_document, save_model_file
from molstrata.deploy.program import save_program
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.models import load_schnetpack_state_dict

PYG_INFERENCE = {"a": 940, "b": 5100}
"""PyTorch Geometric's SchNet inference molecules/s on this machine (the issue's figures)."""


def schnetpack_model(name: str, atomrefs: dict[int, float]) -> torch.nn.Module:
    """SchNetPack's model of config `name`, random weights (seed 0), fitted atomrefs."""
    torch.manual_seed(0)
    model = build_model(CONFIGS[name])
    offsets = model.postprocessors[1]
    for z, value in atomrefs.items():
        offsets.atomref[z] = value
    offsets._atomrefs_initialized = True
    return model.eval()


def model_file_of(spk_model: torch.nn.Module, train: Molecules, cutoff: float, path: Path):
    """The same weights as a molstrata model file (written to `path`) and loaded."""
    model = load_schnetpack_state_dict(spk_model.state_dict())
    document = model_document(model, target="U0", unit="eV", neighbor_cutoff=cutoff,
                              training=TrainingCounts.from_molecules(train),
                              provenance={"source": "bench_inference.py, random weights"})
    save_model_file(path, document)
    return model_from_document(document, path=path)


def rate(seconds: list[float], n: int) -> float:
    return n / statistics.median(seconds)


def timed(function, repeats: int) -> tuple[list[float], float]:
    """(seconds of each of `repeats` calls after a warm-up call, the warm-up's seconds)."""
    start = time.perf_counter()
    function()
    warm_up = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds, warm_up


def program_runner(path: Path, molecules: Molecules, batch_size: int):
    """A function predicting `molecules` with the torch.export program at `path`."""
    program = torch.export.load(path).module()
    numbers = torch.as_tensor(molecules.numbers).long()
    positions = torch.as_tensor(molecules.positions)
    sizes = torch.as_tensor(molecules.sizes)
    offsets = molecules.offsets

    def run() -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(molecules), batch_size):
                stop = min(start + batch_size, len(molecules))
                a, b = offsets[start], offsets[stop]
                out.append(program(numbers[a:b], positions[a:b], sizes[start:stop]))
        return torch.cat(out).numpy()

    return run


def pyg_runner(name: str, molecules: Molecules, batch_size: int):
    """A function predicting `molecules` with PyTorch Geometric's SchNet of config `name`
    (random weights), or None where torch_geometric does not import. Its interaction graph is
    molstrata's vectorised neighbour search (directed pairs), the "pure-PyTorch radius graph"
    of PEERS.md, and batches are sliced from packed arrays: no loader, nothing favours
    molstrata."""
    try:
        from torch_geometric.nn.models import SchNet
    except ImportError:
        return None
    from molstrata.models.neighbors import neighbor_pairs

    config = CONFIGS[name]

    def graph(pos: torch.Tensor, batch: torch.Tensor):
        offsets = torch.zeros(int(batch[-1]) + 2, dtype=torch.long)
        torch.cumsum(torch.bincount(batch), 0, out=offsets[1:])
        idx_i, idx_j, distances = neighbor_pairs(pos, offsets, config["cutoff"], half=False)
        return torch.stack([idx_j, idx_i]), distances

    torch.manual_seed(0)
    model = SchNet(hidden_channels=config["n_atom_basis"], num_filters=config["n_filters"],
                   num_interactions=config["n_interactions"], num_gaussians=config["n_rbf"],
                   cutoff=config["cutoff"], interaction_graph=graph).eval()
    numbers = torch.as_tensor(molecules.numbers).long()
    positions = torch.as_tensor(molecules.positions, dtype=torch.float32)
    molecule = torch.as_tensor(molecules.atom_molecule)
    offsets = molecules.offsets

    def run() -> None:
        with torch.no_grad():
            for start in range(0, len(molecules), batch_size):
                stop = min(start + batch_size, len(molecules))
                a, b = offsets[start], offsets[stop]
                model(numbers[a:b], positions[a:b], molecule[a:b] - start)

    return run


def measure(name: str, qm9: Molecules, args, folder: Path) -> dict:
    """Molecules/s of each way to predict, the molstrata ones and PyG's interleaved within
    each repeat (the CPU's speed drifts: compare within a repeat), SchNetPack's after."""
    config = CONFIGS[name]
    train, val, test = peer_split(qm9)
    infer = Molecules.concatenate([val, test])
    atomrefs = fit_atomrefs(train)
    spk = schnetpack_model(name, atomrefs)
    model_file = model_file_of(spk, train, config["cutoff"], folder / f"model_{name}.pt")
    batch = config["batch_size"]
    n = len(infer)
    figures: dict = {"config": name, "batch": batch, "others": {}}
    energies = predict_molecules(model_file, infer, batch_size=batch)

    run_program = program_runner(save_program(model_file, folder / f"model_{name}.pt2"), infer,
                                 batch)
    figures["exported_max_diff_eV"] = float(np.abs(run_program() - energies).max())
    runners = {"eager": lambda: predict_molecules(model_file, infer, batch_size=batch),
               "exported": run_program}
    if not args.no_compile:
        network = compiled(model_file.model)
        start = time.perf_counter()
        again = predict_molecules(model_file, infer, batch_size=batch, model=network)
        figures["compile_s"] = time.perf_counter() - start
        figures["compiled_max_diff_eV"] = float(np.abs(again - energies).max())
        runners["compiled"] = lambda: predict_molecules(model_file, infer, batch_size=batch,
                                                        model=network)
    pyg = pyg_runner(name, infer, batch)
    if pyg is not None:
        runners["pyg"] = pyg
    for run in runners.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {label: [] for label in runners}
    shares = []
    for _ in range(args.repeats):
        wait_for_quiet(timeout_s=args.wait_quiet)
        load: dict = {}
        with others_load(load):
            for label, run in runners.items():
                start = time.perf_counter()
                run()
                seconds[label].append(time.perf_counter() - start)
        shares.append(load["others_cpu_share"])
    for label, values in seconds.items():
        figures[label] = rate(values, n)
    figures["others"]["molstrata and PyG"] = max(shares)

    if not args.no_schnetpack:
        selection = Molecules.concatenate([train, val, test])
        db_path = database(selection, atomrefs, DEFAULT_CACHE.resolve())
        best = 0.0
        for workers in (0, 2):
            loader = inference_loader(db_path, config, workers)
            schnetpack_predict(spk, loader)  # warm-up
            wait_for_quiet(timeout_s=args.wait_quiet)
            load = {}
            with others_load(load):
                spk_seconds, rows, theirs = schnetpack_predict(spk, loader)
            figures["others"][f"SchNetPack, {workers} workers"] = load["others_cpu_share"]
            best = max(best, len(rows) / spk_seconds)
        figures["schnetpack"] = best
        order = np.argsort(rows)
        figures["schnetpack_max_diff_eV"] = float(np.abs(theirs[order] - energies).max())
    return figures


def report(figures: dict) -> None:
    name, batch = figures["config"], figures["batch"]
    spk, pyg = figures.get("schnetpack"), figures.get("pyg")
    pyg_quoted = PYG_INFERENCE[name]

    def ratios(value: float) -> str:
        parts = [f"{value / spk:.2f}x SchNetPack"] if spk else []
        parts.append(f"{value / pyg:.2f}x PyG measured" if pyg else
                     f"{value / pyg_quoted:.2f}x PyG quoted")
        return ", ".join(parts)

    print(f"config ({name}) {CONFIGS[name]}, batch {batch}")
    print(f"  molstrata eager      {figures['eager']:>7,.0f} mol/s  ({ratios(figures['eager'])})")
    print(f"  molstrata exported   {figures['exported']:>7,.0f} mol/s  "
          f"({ratios(figures['exported'])}); max |E - eager| "
          f"{figures['exported_max_diff_eV']:.1e} eV")
    if "compiled" in figures:
        speedup = figures["compiled"] / figures["eager"]
        verdict = "helps" if speedup > 1.05 else "does not help"
        print(f"  molstrata compiled   {figures['compiled']:>7,.0f} mol/s  "
              f"({ratios(figures['compiled'])}); compiling took {figures['compile_s']:.0f} s; "
              f"max |E - eager| {figures['compiled_max_diff_eV']:.1e} eV: torch.compile "
              f"{verdict} ({speedup:.2f}x eager)")
    if spk:
        print(f"  SchNetPack 2.1.1     {spk:>7,.0f} mol/s  (its database, loader with "
              f"neighbour lists, model(batch); best of 0 and 2 workers); max |E - molstrata| "
              f"{figures['schnetpack_max_diff_eV']:.1e} eV")
    if pyg:
        print(f"  PyG 2.8.1 SchNet     {pyg:>7,.0f} mol/s  (measured here, same weights' shapes, "
              f"molstrata's neighbour search; the issue quotes {pyg_quoted:,})")
    else:
        print(f"  PyG SchNet           {pyg_quoted:>7,} mol/s  (quoted by the issue, not "
              "measured: torch_geometric does not import)")
    shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in figures["others"].items())
    print(f"  other processes' share of the CPU while timing (max): {shares}")


def peak_memory(model_path: Path, structures: Path, folder: Path) -> None:
    """`molstrata predict` on all of QM9 in a child process: peak RSS and wall time."""
    out = folder / "qm9_predictions"
    script = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "seconds = time.perf_counter() - start\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, seconds)\n"
    )
    molstrata = Path(sys.executable).with_name("molstrata")
    command = [str(molstrata), "predict", str(model_path), str(structures), "-o", str(out),
               "-q", "--device", "cpu"]
    result = subprocess.run([sys.executable, "-c", script, *command], capture_output=True,
                            text=True)
    last = result.stdout.strip().splitlines()[-1].split()
    code, kib, seconds = int(last[0]), int(last[1]), float(last[2])
    rows = sum(1 for _ in open(out.with_suffix(".csv"))) - 1 if code == 0 else 0
    print(f"molstrata predict on {structures.name} ({rows:,} structures predicted, exit {code}): "
          f"peak RSS {kib / 1024**2:.2f} GiB, {seconds:.0f} s wall "
          f"({rows / seconds:,.0f} structures/s end to end: ASE reading and writing included)")
    print("  " + "\n  ".join(result.stdout.strip().splitlines()[:-1]))
    if code != 0:
        print(result.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b"], choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-schnetpack", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-config", default="a", choices=list(CONFIGS))
    parser.add_argument("--qm9-extxyz", type=Path, default=DEFAULT_CACHE / "qm9.extxyz",
                        help="all of QM9 as extxyz (written there if missing)")
    parser.add_argument("--wait-quiet", type=float, default=120.0, metavar="S",
                        help="wait up to S seconds for other processes to leave the CPU")
    parser.add_argument("--pyg-path", type=Path, metavar="DIR",
                        help="a folder to import torch_geometric from")
    args = parser.parse_args()
    if args.pyg_path:
        sys.path.insert(0, str(args.pyg_path.resolve()))
    torch.set_num_threads(args.threads)
    if not args.no_schnetpack:
        import_schnetpack()
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"float32; 2,000 QM9 molecules (peers' val + test)", flush=True)
    qm9 = load_qm9(progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in args.configs:
            report(measure(name, qm9, args, folder))
            sys.stdout.flush()
        if not args.no_memory:
            if not args.qm9_extxyz.is_file():
                from molstrata.data.ase_io import write_extxyz

                args.qm9_extxyz.parent.mkdir(parents=True, exist_ok=True)
                write_extxyz(qm9, args.qm9_extxyz)
            model_path = folder / f"model_{args.memory_config}.pt"
            if not model_path.is_file():
                train, _, _ = peer_split(qm9)
                spk = schnetpack_model(args.memory_config, fit_atomrefs(train))
                model_file_of(spk, train, CONFIGS[args.memory_config]["cutoff"], model_path)
            print(f"memory, config ({args.memory_config}) model:")
            peak_memory(model_path, args.qm9_extxyz, folder)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"(this benchmark process: peak RSS {own:.2f} GiB; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
