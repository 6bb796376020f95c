"""Run a saved model without its code: TorchScript (``torch.jit.save`` of a scripted or
traced module) or a ``torch.export`` program (``torch.export.save``, ``.pt2``)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segtools.errors import InputError


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:120] if lines else type(exc).__name__


class TorchScriptModel(nn.Module):
    """Wrap a scripted or exported model so ``forward(x)`` returns N×C×H×W logits at input size.

    Dict outputs are unwrapped (``"out"``, else the only value), tuples/lists give their
    first element; logits smaller or larger than the input are resized bilinearly
    (``align_corners=False``) as torchvision's segmentation models do.
    """

    def __init__(self, scripted: nn.Module, exported: bool = False) -> None:
        super().__init__()
        self.scripted = scripted
        self.exported = exported

    def train(self, mode: bool = True) -> TorchScriptModel:
        """Set the mode; an exported program keeps the mode it was exported in."""
        self.training = mode
        if not self.exported:
            self.scripted.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.exported:
            try:
                result = self.scripted(x)
            except (RuntimeError, AssertionError, ValueError) as exc:
                raise InputError(
                    f"the exported model refused a {tuple(x.shape)} input ({_first_line(exc)}); "
                    "export it with dynamic height/width, or run it in tiles of the exported size (tiling)"
                ) from None
        else:
            result = self.scripted(x)
        if isinstance(result, dict):
            if "out" in result:
                result = result["out"]
            elif len(result) == 1:
                result = next(iter(result.values()))
            else:
                raise InputError(
                    f"the TorchScript model returned a dict without 'out' (keys {sorted(result)}); "
                    "export it so that it returns the logits tensor"
                )
        elif isinstance(result, (tuple, list)) and result:
            result = result[0]
        if not isinstance(result, torch.Tensor) or result.ndim != 4:
            is_tensor = isinstance(result, torch.Tensor)
            kind = f"{result.ndim}-d tensor" if is_tensor else type(result).__name__
            raise InputError(f"the TorchScript model returned a {kind}; expected N×C×H×W logits")
        if result.shape[-2:] != x.shape[-2:]:
            result = F.interpolate(result, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return result


def load_torchscript(path: str | Path, device: str | torch.device = "cpu",
                     extra_files: dict[str, str] | None = None) -> TorchScriptModel:
    """Load a TorchScript archive or ``torch.export`` program as a :class:`TorchScriptModel`.

    Parameters
    ----------
    path : str or Path
        A file written by ``torch.jit.save`` or ``torch.export.save`` (zip archives that hold
        the graph and constants; no Python code of the model is needed or run). The kind is
        read off the archive's members; an exported program is checked to hold no pickles
        and no code before torch sees it (:mod:`segtools.weights.exported`).
    device : str or torch.device
        Where to map its tensors.
    extra_files : dict, optional
        Names of extra files stored in a TorchScript archive; filled in place with their
        contents (left as given for a ``torch.export`` program).

    Raises
    ------
    InputError
        When the file is missing, is neither (e.g. a state dict), is corrupt, or would need
        code to load.
    """
    from segtools.weights.archive import TORCH_EXPORT, TORCHSCRIPT, quiet_torch
    from segtools.weights.checkpoint import file_kind

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such TorchScript file")
    kind = file_kind(path)
    if kind == TORCH_EXPORT:
        from segtools.weights.exported import load_exported

        return TorchScriptModel(load_exported(path, device), exported=True).eval()
    if kind != TORCHSCRIPT:
        raise InputError(f"{path}: not a TorchScript archive or torch.export program ({kind}); "
                         "a state dict or checkpoint loads as weights, with its architecture (arch)")
    try:
        with quiet_torch():  # torch >= 2.9 deprecates TorchScript; the files still run
            scripted = torch.jit.load(str(path), map_location=device, _extra_files=extra_files or {})
    except Exception as exc:  # noqa: BLE001 - RuntimeError, ValueError, MemoryError from the C++ reader
        raise InputError(f"{path}: corrupt TorchScript archive ({_first_line(exc)})") from None
    _check_scripted_ops(scripted, path)
    return TorchScriptModel(scripted).eval()


#: TorchScript operators that touch files; a model that calls them is refused
_FILE_OPS = {"aten::from_file", "aten::save", "debugprims::load_tensor"}


def _check_scripted_ops(scripted: torch.jit.ScriptModule, path: Path) -> None:
    """Refuse a TorchScript model whose ``forward`` (inlined) reads or writes files."""
    try:
        graph = scripted.inlined_graph
    except (AttributeError, RuntimeError):
        return  # no forward: nothing will run
    pending = list(graph.nodes())
    while pending:
        node = pending.pop()
        if node.kind() in _FILE_OPS:
            raise InputError(f"{path}: the TorchScript model calls {node.kind()}, which touches files; "
                             "segtools does not run it")
        for block in node.blocks():
            pending.extend(block.nodes())
