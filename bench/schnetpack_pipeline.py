"""SchNetPack 2.1.1's own training and inference pipeline, timed on the peers' QM9 selection.

    python bench/schnetpack_pipeline.py --config b [--epochs 2] [--workers 0 2]

This is the baseline a SchNetPack user gets, measured as ../shared/PEERS.md (PEERS) says:
an ASE database in SchNetPack's format, `AtomsDataModule` with the `ASENeighborList`,
`RemoveOffsets` and `CastTo32` transforms, `NeuralNetworkPotential(SchNet)` with the
`CastTo64` and `AddOffsets` postprocessors, and a Lightning `AtomisticTask` (MSE, Adam 5e-4).

Data: 12,000 QM9 molecules, `numpy.random.default_rng(0).permutation(130831)[:12000]`; the
first 10,000 train, the next 1,000 validate, the last 1,000 test (`peer_split`). The target is
U0 minus per-element reference energies fitted by least squares on the training molecules
(`fit_atomrefs`): they go into the database's `atomrefs` metadata, where SchNetPack's QM9
keeps its single-atom energies, so `RemoveOffsets` / `AddOffsets` remove and restore them the
SchNetPack way. Unlike SchNetPack's QM9 recipe, the per-atom mean is not removed as well:
after fitted references it is about zero, and leaving it keeps the training target exactly
the residual that molstrata trains on.

Timing: training molecules per second over `epochs` full epochs after one warm-up epoch
(Lightning callback at the start and end of each training epoch; no validation inside the
timed epochs); inference molecules per second over the 2,000 validation and test molecules
(eval, no grad, SchNetPack's loader with its neighbour-list transform), after one warm-up
pass. Each is the best over the loader worker counts tried. The database is built once per
selection and cached under bench/.cache/.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molstrata.data.molecules import Molecules

N_QM9 = 130_831
N_TRAIN, N_VAL, N_TEST = 10_000, 1_000, 1_000
SEED = 0
TARGET = "energy_U0"  # SchNetPack's QM9 key for U0
LEARNING_RATE = 5e-4
Z_MAX = 100  # length of SchNetPack's atomref tensors
DB_FORMAT = 1  # bump when the database layout below changes
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
PEERS = Path(__file__).resolve().parents[1] / ".." / "shared" / "PEERS.md"
"""The peers' measurements these benchmarks follow: shared/ beside the repository."""

CONFIGS: dict[str, dict[str, Any]] = {
    # SchNetPack's QM9 default
    "a": {"n_atom_basis": 128, "n_filters": 128, "n_interactions": 6, "n_rbf": 20,
          "cutoff": 5.0, "batch_size": 100},
    # the study's model
    "b": {"n_atom_basis": 38, "n_filters": 38, "n_interactions": 3, "n_rbf": 20,
          "cutoff": 5.0, "batch_size": 128},
    # SchNetPack 2.1.1's PaiNN with its defaults (issue 16), batch as its QM9 recipe
    "painn": {"representation": "painn", "n_atom_basis": 128, "n_interactions": 3,
              "n_rbf": 20, "cutoff": 5.0, "batch_size": 100},
}


# ---- the peers' data -----------------------------------------------------------------


def peer_rows(n_molecules: int = N_QM9) -> np.ndarray:
    """(12,000,) rows of QM9 the peers used: train, then val, then test."""
    return np.random.default_rng(SEED).permutation(n_molecules)[: N_TRAIN + N_VAL + N_TEST]


def peer_split(qm9: Molecules) -> tuple[Molecules, Molecules, Molecules]:
    """(train, val, test) of all of QM9 as the peers split it: 10,000 / 1,000 / 1,000."""
    if len(qm9) != N_QM9:
        raise ValueError(f"peer_split needs all {N_QM9:,} QM9 molecules, got {len(qm9):,}")
    rows = peer_rows()
    return (qm9.subset(rows[:N_TRAIN]), qm9.subset(rows[N_TRAIN : N_TRAIN + N_VAL]),
            qm9.subset(rows[N_TRAIN + N_VAL :]))


def fit_atomrefs(train: Molecules, name: str = "U0") -> dict[int, float]:
    """Per-element reference energies (Z -> eV): least squares of `name` on element counts."""
    coefficients, *_ = np.linalg.lstsq(
        train.composition.astype(np.float64), train.property(name, "eV"), rcond=None
    )
    return {int(z): float(c) for z, c in zip(train.elements, coefficients)}


def residual(molecules: Molecules, atomrefs: dict[int, float], name: str = "U0") -> np.ndarray:
    """(n_molecules,) `name` in eV minus the sum of its atoms' reference energies."""
    table = np.zeros(Z_MAX)
    for z, value in atomrefs.items():
        table[z] = value
    per_molecule = np.bincount(molecules.atom_molecule, weights=table[molecules.numbers],
                               minlength=len(molecules))
    return molecules.property(name, "eV") - per_molecule


# ---- SchNetPack --------------------------------------------------------------------------


def import_schnetpack() -> Any:
    """`schnetpack`, imported under torch 2.13 (which renamed `T_co`), with Lightning quiet."""
    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co"):
        dataloader.T_co = dataloader._T_co
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning")
    warnings.filterwarnings("ignore", message=r".*(num_workers|save_hyperparameters|is an instance"
                            r" of `nn.Module`).*")
    import schnetpack

    return schnetpack


def database(selection: Molecules, atomrefs: dict[int, float], cache_dir: Path) -> Path:
    """The selection as a SchNetPack ASE database (rows in selection order), built once.

    Built in a temporary file and renamed into place, so a cached file is always complete.
    Its split file (train/val/test rows) lies next to it.
    """
    spk = import_schnetpack()
    from ase import Atoms

    key = hashlib.sha256()
    for part in (np.int64(DB_FORMAT), selection.ids, selection.property("U0", "eV"),
                 selection.positions, selection.numbers):
        key.update(np.ascontiguousarray(part).tobytes())
    path = cache_dir / f"spk_qm9_{len(selection)}_{key.hexdigest()[:16]}.db"
    if path.is_file() and split_path(path).is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    refs = np.zeros(Z_MAX)
    for z, value in atomrefs.items():
        refs[z] = value
    u0 = selection.property("U0", "eV")
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        data = spk.data.ASEAtomsData.create(
            os.path.join(tmp, "qm9.db"), distance_unit="Ang",
            property_unit_dict={TARGET: "eV"}, atomrefs={TARGET: refs.tolist()},
        )
        atoms = []
        for i in range(len(selection)):
            numbers, positions = selection.atoms_of(i)
            atoms.append(Atoms(numbers=numbers.astype(np.int64), positions=positions))
        data.add_systems([{TARGET: np.array([value])} for value in u0], atoms)
        rows = np.arange(len(selection))
        np.savez(os.path.join(tmp, "split.npz"), train_idx=rows[:N_TRAIN],
                 val_idx=rows[N_TRAIN : N_TRAIN + N_VAL], test_idx=rows[N_TRAIN + N_VAL :])
        shutil.move(os.path.join(tmp, "split.npz"), split_path(path))
        os.replace(os.path.join(tmp, "qm9.db"), path)
    return path


def split_path(db_path: Path) -> Path:
    """The split file that goes with a cached database."""
    return db_path.with_name(db_path.stem + "_split.npz")


def build_model(config: dict[str, Any]) -> Any:
    """SchNetPack's `NeuralNetworkPotential(SchNet)` (or PaiNN) for U0, as its QM9 recipe
    builds it."""
    spk = import_schnetpack()
    cutoff = config["cutoff"]
    parts = {"n_atom_basis": config["n_atom_basis"], "n_interactions": config["n_interactions"],
             "radial_basis": spk.nn.GaussianRBF(n_rbf=config["n_rbf"], cutoff=cutoff),
             "cutoff_fn": spk.nn.CosineCutoff(cutoff)}
    if config.get("representation") == "painn":
        representation = spk.representation.PaiNN(**parts)
    else:
        representation = spk.representation.SchNet(**parts, n_filters=config["n_filters"])
    return spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=config["n_atom_basis"], output_key=TARGET)],
        postprocessors=[spk.transform.CastTo64(),
                        spk.transform.AddOffsets(TARGET, add_atomrefs=True)],
    )


def build_task(model: Any) -> Any:
    """SchNetPack's `AtomisticTask`: MSE on U0, MAE metric, Adam at 5e-4."""
    spk = import_schnetpack()
    import torchmetrics

    output = spk.task.ModelOutput(
        name=TARGET, loss_fn=torch.nn.MSELoss(), loss_weight=1.0,
        metrics={"mae": torchmetrics.MeanAbsoluteError()},
    )
    return spk.task.AtomisticTask(model=model, outputs=[output], optimizer_cls=torch.optim.Adam,
                                  optimizer_args={"lr": LEARNING_RATE})


def build_datamodule(db_path: Path, config: dict[str, Any], num_workers: int) -> Any:
    """SchNetPack's `AtomsDataModule` over the cached database and its split, set up."""
    spk = import_schnetpack()
    trn = spk.transform
    datamodule = spk.data.AtomsDataModule(
        str(db_path), batch_size=config["batch_size"], num_train=N_TRAIN, num_val=N_VAL,
        num_test=N_TEST, split_file=str(split_path(db_path)), load_properties=[TARGET],
        transforms=[trn.RemoveOffsets(TARGET, remove_atomrefs=True),
                    trn.ASENeighborList(cutoff=config["cutoff"]), trn.CastTo32()],
        num_workers=num_workers, property_units={TARGET: "eV"}, distance_unit="Ang",
    )
    datamodule.setup()
    return datamodule


def inference_loader(db_path: Path, config: dict[str, Any], num_workers: int) -> Any:
    """A user's loader for prediction: val and test rows, neighbour list, no targets."""
    spk = import_schnetpack()
    trn = spk.transform
    dataset = spk.data.ASEAtomsData(
        str(db_path), load_properties=[], distance_unit="Ang",
        transforms=[trn.ASENeighborList(cutoff=config["cutoff"]), trn.CastTo32()],
        subset_idx=list(range(N_TRAIN, N_TRAIN + N_VAL + N_TEST)),
    )
    return spk.data.AtomsLoader(dataset, batch_size=config["batch_size"],
                                num_workers=num_workers)


# ---- measuring ---------------------------------------------------------------------------


def epoch_timer() -> Any:
    """A Lightning callback whose `seconds` lists each training epoch's wall-clock time
    (data loading included)."""
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """Run in `path`: SchNetPack writes `splitting.lock` into the current directory."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat), 0 if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return 0.0


@contextlib.contextmanager
def others_load(record: dict[str, Any]) -> Iterator[None]:
    """Set record["others_cpu_share"]: the share of the machine's CPU time that processes other
    than this one and its (joined) loader workers used meanwhile. Other sessions' jobs on the
    same cores slow a measurement down; a share above a few per cent taints it."""
    start_busy, start_own, start = busy_cpu_seconds(), sum(os.times()[:4]), time.perf_counter()
    yield
    own = sum(os.times()[:4]) - start_own
    others = max(busy_cpu_seconds() - start_busy - own, 0.0)
    record["others_cpu_share"] = others / ((time.perf_counter() - start) * (os.cpu_count() or 1))


def wait_for_quiet(max_share: float = 0.1, timeout_s: float = 0.0) -> float:
    """Wait (up to `timeout_s`) until other processes use under `max_share` of the CPU, sampled
    over 2 s; returns the seconds waited. With 2 torch threads on 2 cores, one busy core
    elsewhere slows SchNetPack's per-molecule loading several times over."""
    start = time.perf_counter()
    while True:
        record: dict[str, Any] = {}
        with others_load(record):
            time.sleep(2.0)
        waited = time.perf_counter() - start
        if record["others_cpu_share"] < max_share or waited >= timeout_s:
            return waited


def time_loading(loader: Iterable) -> tuple[float, float]:
    """(seconds, neighbour pairs per molecule) of one pass over a loader, no model."""
    start = time.perf_counter()
    pairs = molecules = 0
    for batch in loader:
        pairs += len(batch["_idx_i"])
        molecules += len(batch["_n_atoms"])
    return time.perf_counter() - start, pairs / molecules


def predict(model: Any, loader: Iterable) -> tuple[float, np.ndarray, np.ndarray]:
    """(seconds, database rows (n,), predicted U0 in eV (n,)) of one inference pass."""
    rows, energies = [], []
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            rows.append(batch["_idx"])
            energies.append(model(batch)[TARGET])
    seconds = time.perf_counter() - start
    return seconds, torch.cat(rows).numpy(), torch.cat(energies).double().numpy()


def train_once(db_path: Path, config: dict[str, Any], num_workers: int, epochs: int,
               warmup_epochs: int, u0_eV: np.ndarray, wait_quiet_s: float = 0.0
               ) -> dict[str, Any]:
    """Train a fresh model with `num_workers` loader workers, then time inference with it."""
    import pytorch_lightning as pl

    load: dict[str, Any] = {"waited_for_quiet_s": wait_for_quiet(timeout_s=wait_quiet_s)}
    with others_load(load):
        torch.manual_seed(SEED)
        datamodule = build_datamodule(db_path, config, num_workers)
        load_s, pairs = time_loading(datamodule.train_dataloader())
        model = build_model(config)
        task = build_task(model)
        timer = epoch_timer()
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=warmup_epochs + epochs, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
            default_root_dir=os.getcwd(),
        )
        trainer.fit(task, datamodule=datamodule)
        timed = timer.seconds[warmup_epochs:]
        loader = inference_loader(db_path, config, num_workers)
        predict(model, loader)  # warm-up pass
        infer_s, rows, energies = predict(model, loader)
    errors = np.abs(energies - u0_eV[rows])
    is_val = rows < N_TRAIN + N_VAL
    return {
        "workers": num_workers,
        "train_mol_per_s": N_TRAIN * len(timed) / sum(timed),
        "epoch_s": timer.seconds,
        "infer_mol_per_s": len(rows) / infer_s,
        "val_mae_meV": 1000 * float(errors[is_val].mean()),
        "test_mae_meV": 1000 * float(errors[~is_val].mean()),
        "load_s_per_epoch": load_s,
        "load_share": load_s / (sum(timed) / len(timed)),
        "pairs_per_molecule": pairs,
        **load,
    }


def measure_schnetpack(config: str, epochs: int = 2, workers: Sequence[int] = (0, 2),
                       cache_dir: str | os.PathLike = DEFAULT_CACHE, warmup_epochs: int = 1,
                       qm9: Molecules | None = None, wait_quiet_s: float = 300.0
                       ) -> dict[str, Any]:
    """Training and inference molecules per second of SchNetPack's own pipeline.

    Trains a fresh model for `warmup_epochs + epochs` epochs once per worker count in
    `workers`; `train_mol_per_s` and `infer_mol_per_s` are the best over them, and the
    accuracy (`val_mae_meV`, `test_mae_meV`: U0 after all those epochs) is that of the
    fastest training run. `runs` holds every run's figures; `load_share` is the time one
    pass of the loader takes alone (reading the database, building neighbour lists),
    over a timed epoch. Uses 2 torch threads. Before each run it waits up to `wait_quiet_s`
    for other processes to leave the CPU; each run records `others_cpu_share`, the share of
    the CPU they took meanwhile (figures taken with more than a few per cent are slowed).
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; choose from {sorted(CONFIGS)}")
    settings = CONFIGS[config]
    torch.set_num_threads(2)
    if qm9 is None:
        from molstrata.data.qm9 import load_qm9

        qm9 = load_qm9(progress=False)
    train, val, test = peer_split(qm9)
    selection = Molecules.concatenate([train, val, test])
    atomrefs = fit_atomrefs(train)
    db_path = database(selection, atomrefs, Path(cache_dir).resolve())
    u0 = selection.property("U0", "eV")
    runs = []
    with tempfile.TemporaryDirectory() as scratch, working_dir(Path(scratch)):
        for num_workers in workers:
            runs.append(train_once(db_path, settings, num_workers, epochs, warmup_epochs, u0,
                                   wait_quiet_s))
    best = max(runs, key=lambda run: run["train_mol_per_s"])
    return {
        "config": config,
        **settings,
        "train_mol_per_s": best["train_mol_per_s"],
        "infer_mol_per_s": max(run["infer_mol_per_s"] for run in runs),
        "val_mae_meV": best["val_mae_meV"],
        "test_mae_meV": best["test_mae_meV"],
        "epochs": epochs,
        "epochs_trained": warmup_epochs + epochs,
        "workers_used": best["workers"],
        "infer_workers_used": max(runs, key=lambda run: run["infer_mol_per_s"])["workers"],
        "baseline_val_mae_meV": 1000 * float(np.abs(residual(val, atomrefs)).mean()),
        "atoms_per_molecule": float(selection.sizes.mean()),
        "others_cpu_share": max(run["others_cpu_share"] for run in runs),
        "runs": runs,
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "schnetpack": import_schnetpack().__version__,
        "database": str(db_path),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="b",
                        help="; ".join(f"{k}: {v}" for k, v in CONFIGS.items()))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after 1 warm-up)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="loader worker counts to try; the best is reported")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="database cache folder")
    parser.add_argument("--wait-quiet", type=float, default=300.0, metavar="S",
                        help="before each run, wait up to S seconds for other processes to "
                             "leave the CPU")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"Python {platform.python_version()}", flush=True)
    result = measure_schnetpack(args.config, args.epochs, args.workers, args.cache_dir,
                                wait_quiet_s=args.wait_quiet)
    print(f"SchNetPack {result['schnetpack']}, config ({args.config}) {CONFIGS[args.config]}")
    print(f"data: {N_TRAIN:,} train / {N_VAL:,} val / {N_TEST:,} test molecules, "
          f"{result['atoms_per_molecule']:.1f} atoms and "
          f"{result['runs'][0]['pairs_per_molecule']:.1f} neighbour pairs per molecule")
    for run in result["runs"]:
        epochs = ", ".join(f"{s:.1f}" for s in run["epoch_s"])
        print(f"  workers {run['workers']}: train {run['train_mol_per_s']:,.0f} mol/s "
              f"(epochs {epochs} s; first is warm-up), infer {run['infer_mol_per_s']:,.0f} "
              f"mol/s, loader alone {run['load_s_per_epoch']:.1f} s per epoch "
              f"({100 * run['load_share']:.0f} % of a timed epoch), val MAE "
              f"{run['val_mae_meV']:.0f} meV; other processes used "
              f"{100 * run['others_cpu_share']:.0f} % of the CPU meanwhile")
    print(f"training: {result['train_mol_per_s']:,.0f} mol/s (workers "
          f"{result['workers_used']}); inference: {result['infer_mol_per_s']:,.0f} mol/s "
          f"(workers {result['infer_workers_used']})")
    print(f"val MAE after {result['epochs_trained']} epochs: {result['val_mae_meV']:.0f} meV "
          f"(test {result['test_mae_meV']:.0f} meV; per-element baseline "
          f"{result['baseline_val_mae_meV']:.0f} meV)")


if __name__ == "__main__":
    main()
