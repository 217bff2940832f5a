"""The model file: self-contained, loaded without running code, versioned, refused when foreign."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from molstrata.deploy import modelfile
from molstrata.deploy.export import export
from molstrata.deploy.inference import predict_molecules
from molstrata.deploy.modelfile import FORMAT_VERSION, load_model_file, save_model_file
from molstrata.errors import MolstrataError
from molstrata.evaluation.domain import domain_from_document
from molstrata.evaluation.evaluate import evaluate_run
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.training.config import TrainConfig
from molstrata.training.rundir import RunPaths


def test_export_holds_everything_a_prediction_needs(model_path, trained_run, run_data,
                                                    representation):
    document = torch.load(model_path, map_location="cpu", weights_only=True)
    assert document["format"] == "molstrata-model"
    assert document["format_version"] == FORMAT_VERSION == 2
    assert document["model"]["hyperparameters"]["representation"] == representation
    assert document["target"] == {"name": "U0", "unit": "eV", "aggregation": "sum"}
    assert document["neighbor_cutoff"] == 4.0
    assert document["model"]["hyperparameters"]["cutoff"] == 5.0
    assert document["model"]["dtype"] == "float32"
    run = json.loads((trained_run / "run.json").read_text())
    assert document["standardization"]["reference_energies"] == pytest.approx(
        run["reference_energies"], abs=0, rel=1e-15)
    assert document["standardization"]["per_atom_scale"] == pytest.approx(run["per_atom_scale"])
    train = run_data.molecules.subset(run_data.split.train)
    assert domain_from_document(document["training_domain"]) == TrainingCounts.from_molecules(
        train)
    provenance = document["provenance"]
    assert provenance["training_data_sha256"] == train.fingerprint()
    assert provenance["dataset_fingerprint"] == run_data.molecules.fingerprint()
    split_bytes = (trained_run / "split.json").read_bytes()
    assert provenance["split_sha256"] == hashlib.sha256(split_bytes).hexdigest()
    assert provenance["checkpoint"] == "best" and provenance["epoch"] >= 1
    assert document["molstrata_version"] and document["torch_version"]


def test_a_model_file_reloads_in_a_fresh_process(model_path, test_molecules, tmp_path):
    molecules_path = tmp_path / "molecules.npz"
    np.savez(molecules_path, numbers=test_molecules.numbers, positions=test_molecules.positions,
             offsets=test_molecules.offsets, ids=test_molecules.ids)
    script = (
        "import sys, json, numpy as np\n"
        "from molstrata.data.molecules import Molecules\n"
        "from molstrata.deploy.modelfile import load_model_file\n"
        "from molstrata.deploy.inference import predict_molecules\n"
        "a = np.load(sys.argv[2])\n"
        "m = Molecules(a['numbers'], a['positions'], a['offsets'], a['ids'])\n"
        "print(json.dumps(predict_molecules(load_model_file(sys.argv[1]), m).tolist()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(model_path), str(molecules_path)],
                            capture_output=True, text=True, check=True)
    fresh = np.array(json.loads(result.stdout))
    here = predict_molecules(load_model_file(model_path), test_molecules)
    np.testing.assert_allclose(fresh, here, rtol=0, atol=1e-6)  # threads may differ: float32


def _torch_archive(path, pickle_bytes):
    """A PyTorch zip archive whose data.pkl is `pickle_bytes` (a crafted pickle)."""
    base = path.with_suffix(".base")
    torch.save({"a": 1}, base)
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = pickle_bytes if item.filename.endswith("data.pkl") else src.read(item)
            dst.writestr(item.filename, data)
    return path


def _payload(marker) -> bytes:
    """A protocol-0 pickle that would run `touch marker` through os.system when loaded."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


def _state_dict(path):
    torch.save({"w": torch.zeros(2)}, path)
    return path


BAD_FILES = {  # kind -> (make(path, run, good model file) -> the file to load, message)
    "missing": (lambda p, run, m: p, "does not exist"),
    "empty": (lambda p, run, m: _written(p, b""), "is empty"),
    "random": (lambda p, run, m: _written(p, bytes(range(256)) * 4),
               "not a molstrata model file"),
    "text": (lambda p, run, m: _written(p, b"3\n\nH 0 0 0\n"), "not a PyTorch archive"),
    "truncated": (lambda p, run, m: _written(p, m.read_bytes()[:5000]), "truncated or damaged"),
    "checkpoint": (lambda p, run, m: run / "checkpoints" / "best.pt", "training checkpoint"),
    "state dict": (lambda p, run, m: _state_dict(p), "bare weights"),
    "schnetpack": (lambda p, run, m: _torch_archive(
        p, b"\x80\x02cschnetpack.model.base\nNeuralNetworkPotential\nq\x00)\x81q\x01."),
        "is a SchNetPack model"),
    "pickle payload": (lambda p, run, m: _written(p, _payload(p.parent / "ran")),
                       "not a PyTorch archive"),
    "archived payload": (lambda p, run, m: _torch_archive(p, _payload(p.parent / "ran")),
                         "would run code when loaded"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_model_files_are_refused_in_one_line(kind, tmp_path, trained_run, model_path):
    make, message = BAD_FILES[kind]
    path = make(tmp_path / "model.pt", trained_run, model_path)
    with pytest.raises(MolstrataError) as raised:
        load_model_file(path)
    text = str(raised.value)
    assert message in text and str(path) in text and "\n" not in text
    assert not (tmp_path / "ran").exists()  # the payload never ran


def test_payload_in_a_pickle_never_runs_even_through_torch_load(tmp_path):
    path = _torch_archive(tmp_path / "evil.pt", _payload(tmp_path / "ran"))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not (tmp_path / "ran").exists()


def _with_version(model_path, tmp_path, version, **changes):
    document = torch.load(model_path, weights_only=True)
    document.update(format_version=version, **changes)
    return save_model_file(tmp_path / f"v{version}.pt", document)


def test_a_newer_format_version_says_which_and_what_to_do(model_path, tmp_path):
    path = _with_version(model_path, tmp_path, FORMAT_VERSION + 1)
    with pytest.raises(MolstrataError, match=r"format version 3, newer than .* reads \(version "
                                             r"2\); upgrade molstrata"):
        load_model_file(path)


def test_an_old_format_version_migrates_or_says_what_to_do(model_path, tmp_path, monkeypatch,
                                                           test_molecules, representation):
    if representation != "schnet":
        pytest.skip("format 1 held SchNet models only")
    # a fake version 0 that named the neighbour cutoff differently
    document = torch.load(model_path, weights_only=True)
    old = _with_version(model_path, tmp_path, 0, data_cutoff=document.pop("neighbor_cutoff"))
    with pytest.raises(MolstrataError, match="format version 0, which this molstrata .* cannot "
                                             "migrate .* molstrata export RUN"):
        load_model_file(old)

    def v0_to_v1(doc):
        doc["neighbor_cutoff"] = doc.pop("data_cutoff")
        doc["model"]["hyperparameters"].pop("representation")  # version 1 had none
        return {**doc, "format_version": 1}

    monkeypatch.setitem(modelfile.MIGRATIONS, 0, v0_to_v1)
    migrated = load_model_file(old)
    assert migrated.neighbor_cutoff == 4.0
    np.testing.assert_array_equal(predict_molecules(migrated, test_molecules),
                                  predict_molecules(load_model_file(model_path), test_molecules))


def test_a_format_1_file_of_schnet_still_loads_and_predicts_the_same(model_path, tmp_path,
                                                                     test_molecules,
                                                                     representation):
    if representation != "schnet":
        pytest.skip("format 1 held SchNet models only")
    document = torch.load(model_path, weights_only=True)
    document["model"]["hyperparameters"].pop("representation")  # as molstrata 0.1 wrote it
    old = save_model_file(tmp_path / "v1.pt", {**document, "format_version": 1})
    loaded = load_model_file(old)
    assert loaded.model.hyperparameters["representation"] == "schnet"
    np.testing.assert_array_equal(predict_molecules(loaded, test_molecules),
                                  predict_molecules(load_model_file(model_path), test_molecules))


def test_edited_reference_energies_are_caught(model_path, tmp_path):
    document = torch.load(model_path, weights_only=True)
    document["standardization"]["reference_energies"]["C"] += 1.0
    path = save_model_file(tmp_path / "edited.pt", document)
    with pytest.raises(MolstrataError, match="is damaged .*reference energy of C"):
        load_model_file(path)


def test_saving_refuses_what_loading_could_not_read(tmp_path, model_path):
    document = torch.load(model_path, weights_only=True)
    document["provenance"]["when"] = object()
    with pytest.raises(TypeError, match="only tensors and plain values"):
        save_model_file(tmp_path / "bad.pt", document)
    assert not (tmp_path / "bad.pt").exists()


def test_the_model_file_and_the_run_agree_on_the_pair_cutoff(model_path, trained_run):
    config = TrainConfig.from_toml(RunPaths(trained_run).config)
    assert config.pair_cutoff == 4.0  # neighbour pairs within 4 Å under a 5 Å model cutoff
    assert load_model_file(model_path).pair_cutoff == config.pair_cutoff


def test_a_checkpoint_that_builds_no_model_is_one_line_for_export_and_evaluate(
        tmp_path, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    best = run / "checkpoints" / "best.pt"
    payload = torch.load(best, weights_only=True)
    payload["hyperparameters"]["n_atom_basis"] += 1  # the weights no longer fit
    torch.save(payload, best)
    messages = []
    for attempt in (lambda: export(run, tmp_path / "m.pt"),
                    lambda: evaluate_run(run, device="cpu", progress=False, n_bootstrap=10)):
        with pytest.raises(MolstrataError) as raised:
            attempt()
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"checkpoint {best} holds no model this molstrata can build")
    assert "\n" not in messages[0] and not (tmp_path / "m.pt").exists()
