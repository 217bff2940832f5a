"""Reading back the JSON files molstrata writes: one reader, one line per problem, each naming
the file and the fix; and every versioned format (splits, metrics, run summaries, checkpoints)
goes through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import molstrata
from molstrata._files import read_json, read_versioned_json
from molstrata.data.molecules import Molecules
from molstrata.data.splits import load_split, random_split, save_split
from molstrata.errors import MolstrataError
from molstrata.evaluation.files import load_metrics
from molstrata.training.checkpoints import load_checkpoint, save_checkpoint
from molstrata.training.rundir import read_run_summary

FIX = "write it again with `thing make`"


def _read(path):
    return read_versioned_json(path, "molstrata-thing", {1, 2}, what="thing file", fix=FIX)


def _write(path, document) -> None:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)


def _one_line(error: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message.endswith(FIX)
    for part in parts:
        assert part in message, (part, message)
    return message


def test_a_good_document_is_returned_whole(tmp_path):
    document = {"format": "molstrata-thing", "version": 2, "x": [1, 2]}
    _write(tmp_path / "t.json", document)
    assert _read(tmp_path / "t.json") == document


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        (None, ["thing file", "missing.json does not exist"]),
        ('{"format": "molstrata-thing", "version": 1', ["is not valid JSON"]),
        (b"\xff\xfe{}", ["is not valid JSON (not UTF-8 text)"]),
        ("[1, 2]", ["is not a molstrata thing file", "JSON list"]),
        ({"format": "molstrata-other", "version": 1},
         ["is not a molstrata thing file", "format 'molstrata-other', not 'molstrata-thing'"]),
        ({"version": 1}, ["is not a molstrata thing file", "format None"]),
        ({"format": "molstrata-thing", "version": 3},
         ["has format version 3, newer than molstrata", "reads (version 1, 2)",
          "upgrade molstrata"]),
        ({"format": "molstrata-thing", "version": 0},
         ["has format version 0, which molstrata", "does not read (it reads version 1, 2)"]),
        ({"format": "molstrata-thing", "version": "2"}, ["has format version '2'"]),
        ({"format": "molstrata-thing", "version": True}, ["has format version True"]),
        ({"format": "molstrata-thing"}, ["has format version None"]),
    ],
)
def test_each_problem_is_one_line_naming_the_file_and_the_fix(tmp_path, content, parts):
    path = tmp_path / "missing.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        _write(path, content)
    with pytest.raises(MolstrataError) as error:
        _read(path)
    assert str(path) in _one_line(error, *parts)


def test_the_too_new_message_names_this_release(tmp_path):
    _write(tmp_path / "t.json", {"format": "molstrata-thing", "version": 9})
    with pytest.raises(MolstrataError, match=f"molstrata {molstrata.__version__} reads"):
        _read(tmp_path / "t.json")


def test_other_key_names_are_kept(tmp_path):
    """metrics.json names its kind and version `schema` and `schema_version`."""
    _write(tmp_path / "m.json", {"schema": "molstrata-thing", "schema_version": 5})
    with pytest.raises(MolstrataError, match="has schema version 5, newer than"):
        read_versioned_json(tmp_path / "m.json", "molstrata-thing", {1}, what="thing file",
                            fix=FIX, kind_key="schema", version_key="schema_version")


def test_an_unversioned_file_gets_the_same_errors(tmp_path):
    _write(tmp_path / "e.json", {"evaluation_seconds": 1.5})
    assert read_json(tmp_path / "e.json", "evaluation record", FIX) == {"evaluation_seconds": 1.5}
    _write(tmp_path / "bad.json", "{")
    with pytest.raises(MolstrataError) as error:
        read_json(tmp_path / "bad.json", "evaluation record", FIX)
    _one_line(error, "evaluation record", "bad.json is not valid JSON")


# ---- every versioned format reads through it ------------------------------------------------


@pytest.fixture
def split_file(tmp_path):
    molecules = Molecules.from_lists([np.array([1, 1]), np.array([6, 1, 1, 1, 1]),
                                      np.array([8, 1, 1])],
                                     [np.zeros((2, 3)), np.zeros((5, 3)), np.zeros((3, 3))])
    path = tmp_path / "split.json"
    save_split(random_split(3, counts=[1, 1, 1]), path, molecules)
    return path, molecules


def test_splits_metrics_and_run_summaries_refuse_a_newer_version(tmp_path, split_file):
    path, molecules = split_file
    document = json.loads(path.read_text())
    _write(path, {**document, "version": 2})
    with pytest.raises(MolstrataError, match=r"split file .* version 2, newer .* make the split"):
        load_split(path, molecules)
    _write(tmp_path / "metrics.json", {"schema": "molstrata-metrics", "schema_version": 2})
    with pytest.raises(MolstrataError, match=r"metrics file .* schema version 2, newer .* "
                                             r"evaluate the run again"):
        load_metrics(tmp_path / "metrics.json")
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "run.json", {"format": "molstrata-run", "version": 2, "status": "finished"})
    with pytest.raises(MolstrataError, match=r"run summary .* version 2, newer .* resume"):
        read_run_summary(run)


def test_run_summaries_are_empty_before_the_first_epoch_and_refused_when_damaged(tmp_path):
    assert read_run_summary(tmp_path) == {}
    _write(tmp_path / "run.json", '{"format": "molstrata-run", "version": 1, "status": "fin')
    with pytest.raises(MolstrataError, match=r"run summary .*run.json is not valid JSON.*"
                                             r"delete it and resume the run"):
        read_run_summary(tmp_path)
    _write(tmp_path / "run.json", {"format": "molstrata-run", "version": 1, "status": "done"})
    assert read_run_summary(tmp_path)["status"] == "done"


def test_checkpoints_check_their_kind_and_version_the_same_way(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"x": torch.zeros(2)})
    assert load_checkpoint(path)["x"].shape == (2,)
    torch.save({"format": "molstrata-checkpoint", "version": 2}, path)
    with pytest.raises(MolstrataError, match=r"checkpoint .* format version 2, newer than "
                                             r"molstrata .* upgrade molstrata"):
        load_checkpoint(path)
    torch.save({"format": "molstrata-model", "format_version": 1}, path)
    with pytest.raises(MolstrataError, match="is not a molstrata checkpoint"):
        load_checkpoint(path)
