"""Which torch device to run on: the one rule that prediction and training share."""

from __future__ import annotations

from segtools.errors import UsageError, require

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None = "auto"):
    """The :class:`torch.device` named by ``device``.

    ``auto`` (or ``None``) → CUDA when present, else Apple MPS, else CPU; ``cpu``, ``cuda``,
    ``cuda:N`` and ``mps`` must exist here.

    Raises
    ------
    UsageError
        An unknown name, or a device torch cannot see.
    """
    torch = require("torch", "models")
    name = str(device or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if not (name in ("cpu", "mps", "cuda") or name.startswith("cuda:") and name[5:].isdigit()):
        raise UsageError(f"device {device!r}: choose one of {', '.join(DEVICES)} (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r}: no CUDA GPU is visible to torch here; use cpu (or auto)")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise UsageError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here")
    if name == "mps" and not mps_ok:
        raise UsageError(f"device {device!r}: Apple MPS is not available here; use cpu (or auto)")
    return torch.device(name)
