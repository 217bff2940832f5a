"""A real prediction file of a model molstrata did not train, evaluated by molstrata.

    python bench/peer_predictions.py [--epochs 6] [--n-train 10000] [--out DIR]

SchNetPack 2.1.1's own pipeline (`bench/schnetpack_pipeline.py`: its ASE database,
`AtomsDataModule`, SchNet of the study's size (config b), `AtomisticTask`, Lightning) trains
on `n_train` molecules of molstrata's default QM9 training split (`data.split` 0.8/0.1/0.1,
`split_seed` 0: the first of a permutation seeded by 0) and validates on 1,000 of its
validation split. SchNetPack's own predictor then writes `predictions.pt` for every molecule
of the default test split (13,083), stored as SchNetPack's ASE database: the Lightning
`Trainer.predict` with `schnetpack.train.PredictionWriter(write_idx=True)` and the wrapper
module that `spkpredict` (schnetpack/cli.py, `predict`) builds, so the file is the one
spkpredict writes. Last, the command a SchNetPack user runs is timed, as a subprocess:

    molstrata evaluate --predictions predictions.pt --structures test.db \
        --reference energy_U0 --train trained_on.extxyz -o OUT/eval

OUT gets `record.json` (the command, its wall time, the machine, the commit, the training
time and the model's test MAE as SchNetPack computes it) and the evaluation's files but
predictions.csv (13,083 rows; the databases and predictions.pt stay under bench/.cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schnetpack_pipeline as spk_bench  # noqa: E402

from molstrata.data.qm9 import load_qm9  # noqa: E402
from molstrata.data.splits import random_split  # noqa: E402

TARGET = spk_bench.TARGET
N_VAL = 1_000
CONFIG = "b"


def spk_database(path: Path, molecules, atomrefs: dict[int, float]) -> Path:
    """The molecules as SchNetPack's ASE database (U0 in eV under energy_U0, atomrefs in its
    metadata), in their order; built once."""
    if path.is_file():
        return path
    spk = spk_bench.import_schnetpack()
    from ase import Atoms

    refs = np.zeros(spk_bench.Z_MAX)
    for z, value in atomrefs.items():
        refs[z] = value
    partial = path.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    data = spk.data.ASEAtomsData.create(str(partial), distance_unit="Ang",
                                        property_unit_dict={TARGET: "eV"},
                                        atomrefs={TARGET: refs.tolist()})
    atoms = [Atoms(numbers=molecules.atoms_of(i)[0].astype(np.int64),
                   positions=molecules.atoms_of(i)[1]) for i in range(len(molecules))]
    data.add_systems([{TARGET: np.array([v])} for v in molecules.property("U0", "eV")], atoms)
    os.replace(partial, path)
    return path


def write_structures(path: Path, molecules) -> None:
    """The molecules' atoms as extxyz, written in full before it takes its name."""
    import ase.io
    from ase import Atoms

    partial = path.with_name(path.name + ".partial")
    ase.io.write(partial, [Atoms(numbers=molecules.atoms_of(i)[0],
                                 positions=molecules.atoms_of(i)[1])
                           for i in range(len(molecules))], format="extxyz")
    os.replace(partial, path)


def train(train_db: Path, n_train: int, epochs: int, cache: Path):
    """SchNetPack's model trained by SchNetPack's pipeline; (model, seconds)."""
    import pytorch_lightning as pl

    spk = spk_bench.import_schnetpack()
    trn = spk.transform
    config = spk_bench.CONFIGS[CONFIG]
    split_file = cache / "peer_predictions_split.npz"
    rows = np.arange(n_train + N_VAL)
    np.savez(split_file, train_idx=rows[:n_train], val_idx=rows[n_train:], test_idx=rows[:0])
    datamodule = spk.data.AtomsDataModule(
        str(train_db), batch_size=config["batch_size"], num_train=n_train, num_val=N_VAL,
        num_test=0, split_file=str(split_file), load_properties=[TARGET],
        transforms=[trn.RemoveOffsets(TARGET, remove_atomrefs=True),
                    trn.ASENeighborList(cutoff=config["cutoff"]), trn.CastTo32()],
        num_workers=0, property_units={TARGET: "eV"}, distance_unit="Ang")
    datamodule.setup()
    torch.manual_seed(spk_bench.SEED)
    model = spk_bench.build_model(config)
    task = spk_bench.build_task(model)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(cache))
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    return model, time.perf_counter() - started


def spkpredict(model, test_db: Path, out_dir: Path) -> Path:
    """predictions.pt as `spkpredict` writes it: its wrapper module's predict_step (the
    model's outputs and each atom's dataset index, idx_m) and SchNetPack's PredictionWriter."""
    import pytorch_lightning as pl

    spk = spk_bench.import_schnetpack()
    props = spk.properties
    config = spk_bench.CONFIGS[CONFIG]
    dataset = spk.data.ASEAtomsData(
        str(test_db), load_properties=[], distance_unit="Ang",
        transforms=[spk.transform.ASENeighborList(cutoff=config["cutoff"]),
                    spk.transform.CastTo32()])
    loader = spk.data.AtomsLoader(dataset, batch_size=config["batch_size"], num_workers=0)

    class WrapperLM(pl.LightningModule):  # schnetpack/cli.py, predict()
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            torch.set_grad_enabled(False)
            results = self(batch)
            results[props.idx_m] = batch[props.idx][batch[props.idx_m]]
            return {k: v.detach().cpu() for k, v in results.items()}

    class Writer(spk.train.PredictionWriter):
        """SchNetPack 2.1.1's writer reads one list of batches per dataloader; Lightning 2
        hands it a flat list for one dataloader, which this nests as the writer expects."""

        def write_on_epoch_end(self, trainer, module, predictions, batch_indices):
            if predictions and isinstance(predictions[0], dict):
                predictions, batch_indices = [predictions], [batch_indices]
            super().write_on_epoch_end(trainer, module, predictions, batch_indices)

    writer = Writer(output_dir=str(out_dir), write_interval="epoch", write_idx=True)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer],
                         enable_progress_bar=False, default_root_dir=str(out_dir))
    trainer.predict(WrapperLM(model), dataloaders=loader, return_predictions=False)
    return out_dir / "predictions.pt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "peer-predictions")
    parser.add_argument("--cache", type=Path, default=spk_bench.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)

    qm9 = load_qm9()
    split = random_split(len(qm9), fractions=[0.8, 0.1, 0.1], seed=0)
    train_rows = np.concatenate([split.train[np.random.default_rng(0).permutation(
        len(split.train))[:args.n_train]], split.val[:N_VAL]])
    train_set, test_set = qm9.subset(train_rows), qm9.subset(split.test)
    atomrefs = spk_bench.fit_atomrefs(qm9.subset(train_rows[:args.n_train]))
    tag = f"{args.n_train}_{len(test_set)}"
    train_db = spk_database(args.cache / f"peer_predictions_train_{tag}.db", train_set, atomrefs)
    trained_on = args.cache / f"peer_predictions_trained_on_{tag}.extxyz"
    if not trained_on.is_file():  # the training molecules alone, for --train
        write_structures(trained_on, train_set.subset(slice(0, args.n_train)))
    test_db = spk_database(args.cache / f"peer_predictions_test_{tag}.db", test_set, atomrefs)

    predicted_dir = args.cache / "peer_predictions"
    predicted_dir.mkdir(exist_ok=True)
    with spk_bench.working_dir(args.cache):  # SchNetPack's splitting.lock goes there
        model, train_s = train(train_db, args.n_train, args.epochs, args.cache)
        started = time.perf_counter()
        predictions = spkpredict(model, test_db, predicted_dir)
        predict_s = time.perf_counter() - started

    evaluation = args.out / "eval"
    command = [sys.executable, "-m", "molstrata", "evaluate", "--predictions", str(predictions),
               "--structures", str(test_db), "--reference", TARGET, "--train", str(trained_on),
               "-o", str(evaluation)]
    shutil.rmtree(evaluation, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"molstrata evaluate failed:\n{done.stderr}")
    (evaluation / "predictions.csv").unlink(missing_ok=True)
    saved = torch.load(predictions, weights_only=True)
    order = np.unique(saved["_idx_m"].numpy(), return_index=True)
    rows = order[0][np.argsort(order[1])]
    spk_mae = float(np.mean(np.abs(saved[TARGET].double().numpy()
                                   - test_set.property("U0", "eV")[rows])))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    record = {
        "command": " ".join(["molstrata", *command[3:]]).replace(str(args.cache), "bench/.cache")
        .replace(str(args.out), str(args.out.relative_to(Path.cwd()))
                 if args.out.is_relative_to(Path.cwd()) else str(args.out)),
        "evaluate_wall_s": round(wall, 2),
        "test_structures": len(test_set),
        "model": f"SchNetPack 2.1.1 SchNet (config {CONFIG}: "
                 f"{json.dumps(spk_bench.CONFIGS[CONFIG])}), trained by SchNetPack's pipeline",
        "n_train": args.n_train, "n_val": N_VAL, "epochs": args.epochs,
        "train_s": round(train_s, 1), "spkpredict_s": round(predict_s, 1),
        "test_mae_meV_by_numpy": round(1000 * spk_mae, 3),
        "machine": f"{spk_bench.cpu_model()}, {os.cpu_count()} cores, torch "
                   f"{torch.__version__}, {torch.get_num_threads()} threads",
        "platform": platform.platform(), "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "evaluate_stdout.txt").write_text(done.stdout)
    print(json.dumps(record, indent=2))
    print(done.stdout)


if __name__ == "__main__":
    main()
