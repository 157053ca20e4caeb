"""Conditioning values -> tensors, and generated outputs -> the [0, 1] range rewards read."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmpost.types import DataError


def conditioning_tensors(values: Any, where: str) -> dict[str, torch.Tensor]:
    """{"name": number | nested list | array | tensor} -> {"name": tensor}; integers stay int64, the rest float32.

    `where` (e.g. "sample 7") names the row in errors.
    """
    if not isinstance(values, dict) or not values:
        raise DataError(f"{where}: 'conditioning' must be a non-empty mapping of name -> numbers, got {values!r:.80}")
    tensors = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value
            continue
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            array = None
        if array is None or array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise DataError(f"{where}: conditioning '{name}' must be numbers, got {value!r:.80}")
        if np.issubdtype(array.dtype, np.integer):
            tensors[name] = torch.as_tensor(array, dtype=torch.long)
        else:
            if not np.isfinite(array).all():
                raise DataError(f"{where}: conditioning '{name}' has non-finite values")
            tensors[name] = torch.as_tensor(array, dtype=torch.float32)
    return tensors


def to_unit_range(output: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """A generated output in [low, high] (clamped) -> float32 in [0, 1]."""
    return ((output.detach().float().clamp(low, high) - low) / (high - low))
