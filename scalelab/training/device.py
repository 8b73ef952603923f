"""Device selection: auto picks npu, cuda, mps, cpu in that order; a missing device is a user error."""

from __future__ import annotations

import contextlib
import importlib.util

import torch

from scalelab.errors import UserError

_NPU_CHECKED: bool | None = None


def npu_available() -> bool:
    """True when torch_npu is installed and sees a device (imported only if present)."""
    global _NPU_CHECKED
    if _NPU_CHECKED is None:
        _NPU_CHECKED = False
        if importlib.util.find_spec("torch_npu") is not None:
            try:
                import torch_npu  # noqa: F401

                _NPU_CHECKED = bool(torch.npu.is_available())  # type: ignore[attr-defined]
            except Exception:  # a broken CANN install must not take the CPU path down with it
                _NPU_CHECKED = False
    return _NPU_CHECKED


def resolve_device(name: str) -> torch.device:
    """Turn `auto | cpu | cuda[:i] | npu[:i] | mps` into a device that exists, or raise UserError."""
    kind, _, index = name.partition(":")
    if kind == "auto":
        if npu_available():
            return torch.device("npu:0")
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {name!r} requested but CUDA is not available on this machine (try --set train.device=cpu)"
            )
        i = int(index or 0)
        if i >= torch.cuda.device_count():
            raise UserError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device(f"cuda:{i}")
    if kind == "npu":
        if not npu_available():
            raise UserError(
                f"device {name!r} requested but no Ascend NPU is usable (install scalelab[npu] with CANN)"
            )
        return torch.device(f"npu:{int(index or 0)}")
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"device {name!r} requested but MPS is not available on this machine")
        return torch.device("mps")
    raise UserError(f"unknown device {name!r} (use auto, cpu, cuda[:i], npu[:i] or mps)")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16/fp16 autocast where requested; fp32 runs without autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and dtype == torch.float16:
        raise UserError("fp16 autocast is not supported on CPU; use train.precision=bf16 or fp32")
    return torch.autocast(device.type, dtype=dtype)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated accelerator memory since the last reset; on CPU the process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "npu":
        return int(torch.npu.max_memory_allocated(device))  # type: ignore[attr-defined]
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == "npu":
        torch.npu.reset_peak_memory_stats(device)  # type: ignore[attr-defined]
