"""User-facing errors.

Anything the user can fix (a bad file, a bad config value, a missing device) raises a subclass of
`UserError` with a one-line message that names the file, field or line. The CLI prints that line
and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; its message is shown as one line."""

    exit_code = 2

    def __str__(self) -> str:  # keep the message on one line whatever the caller passed
        return " ".join(super().__str__().split())


class ConfigError(UserError):
    """A configuration file or override is invalid."""


class DataError(UserError):
    """A data file is missing, malformed, or empty after preprocessing."""


class DownloadError(UserError):
    """A dataset could not be downloaded or verified."""


class CheckpointMismatch(UserError):
    """An output directory holds a checkpoint of a different configuration."""


class StorageError(UserError):
    """A results file could not be written (disk full, read-only, permissions)."""


class RunFailed(UserError):
    """A run stopped for a reason that retrying the same config will not fix; one line, exit 1."""

    exit_code = 1


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite; the run is stopped and marked `diverged`."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


class OutOfMemory(RunFailed):
    """The device ran out of memory; the run is stopped and marked `oom`."""

    def __init__(self, epoch: int, step: int, device: str, detail: str) -> None:
        super().__init__(
            f"out of memory on {device} at epoch {epoch}, step {step} ({detail[:200]}); "
            "reduce train.batch_size, data.max_seq_len or the model size"
        )
        self.epoch, self.step = epoch, step


def is_out_of_memory(e: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, NPU), MemoryError, or the CPU allocator's failure."""
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and (
        "can't allocate memory" in str(e) or "out of memory" in str(e).lower()
    )
