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


#: CPU features (``torch.cpu.get_capabilities()`` keys) that run each half precision natively.
NATIVE_HALF = {"bf16": ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"),
               "fp16": ("avx512_fp16", "amx_fp16", "fp16_arith")}


def cpu_capabilities() -> dict:
    """What this CPU can do, as ``torch.cpu.get_capabilities()`` says (``{}`` when this torch
    cannot tell)."""
    torch = require("torch", "models")
    try:
        return dict(torch.cpu.get_capabilities())
    except (AttributeError, RuntimeError):
        return {}


def cpu_runs_natively(precision: str, capabilities: dict | None = None) -> bool:
    """Whether a CPU with ``capabilities`` (default: this one) has native ``precision``
    (``bf16`` or ``fp16``) arithmetic. Without it torch emulates the half type and autocast
    runs several times slower than fp32 (5.5× per frame on an AVX2 CPU)."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    return any(capabilities.get(feature) for feature in NATIVE_HALF[precision])


def cpu_amp_fallback(precision: str, capabilities: dict | None = None) -> str | None:
    """``None`` when autocast in ``precision`` is worth running on this CPU, else the one-line
    reason to run fp32 instead."""
    if cpu_runs_natively(precision, capabilities):
        return None
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    name = capabilities.get("cpu_name") or capabilities.get("architecture") or "this CPU"
    return (f"mixed precision ({precision}) on {name}, which has no native {precision} arithmetic, "
            "runs several times slower than fp32: running in fp32")
