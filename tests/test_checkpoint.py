import pickle

import pytest
import torch

from pseudovad.checkpoint import load_checkpoint, save_checkpoint
from pseudovad.errors import PseudovadError


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_round_trip_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint({"iteration": 3, "config": {}, "networks": {"w": torch.ones(2)}}, path)
    save_checkpoint({"iteration": 4, "config": {}, "networks": {"w": torch.zeros(2)}}, path)
    state = load_checkpoint(path)
    assert state["iteration"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]


def test_pickled_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        torch.save({"iteration": 1, "extra": Payload()}, handle, pickle_module=pickle)
    with pytest.raises(PseudovadError, match="refused to load"):
        load_checkpoint(path)


def test_missing_and_garbage_checkpoints(tmp_path):
    with pytest.raises(PseudovadError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(PseudovadError, match="garbage.pt"):
        load_checkpoint(garbage)


@pytest.mark.parametrize("content", [torch.ones(3), {"iteration": 1}, {"iteration": "2", "config": {}, "networks": {}}, [1, 2]])
def test_a_file_of_tensors_that_is_no_checkpoint_is_named(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(PseudovadError, match=r"other\.pt: not a pseudovad checkpoint"):
        load_checkpoint(path)
