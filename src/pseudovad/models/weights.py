"""Reading weights files that users supply, without letting a file run code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pseudovad.errors import PseudovadError


def load_state_dict_file(path: Path, what: str) -> dict[str, Tensor]:
    """Tensors from a `.safetensors` file or a `torch.save`d state dict, read without running code.

    `.pt2` archives (torch.export) are refused: loading one unpickles payloads and compiles guard
    code stored in the file, so a crafted file runs its author's code."""
    path = Path(path)
    if not path.is_file():
        raise PseudovadError(f"{what} {path} not found")
    if path.suffix == ".pt2":
        raise PseudovadError(
            f"{path}: torch.export (.pt2) files are refused: loading one can run code stored in it. "
            f"Give the {what} as a state dict (.safetensors, or torch.save(model.state_dict(), PATH))"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # both readers report garbage as many exception types
        raise PseudovadError(f"{path}: cannot read the {what} as a state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PseudovadError(f"{path}: the {what} must be a dict of tensors (a state dict), got {type(state).__name__}")
    return state
