"""Conversions between numpy, torch and lists at the package boundary (no torch import unless the
caller uses torch)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """Whether `x` is a torch tensor (without importing torch when the caller never did)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, dtype: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """`x` (numpy array, torch tensor, or nested lists) as a C-contiguous array of `dtype`.

    Integer inputs must hold integers: a float array is refused rather than silently truncated.
    """
    if is_torch(x):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:  # numpy 2 refuses ragged nested lists outright
        a = np.asarray(x, dtype=object)
    if a.dtype == object:
        raise ValueError(f"{name} is ragged or not numeric: pad it to one length (padding=True)")
    if np.issubdtype(np.dtype(dtype), np.integer):
        if a.size and not np.issubdtype(a.dtype, np.integer) and a.dtype != np.bool_:
            raise ValueError(f"{name} must hold integers, not {a.dtype}")
    elif a.size and not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, not {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def from_numpy(a: np.ndarray, as_torch: bool) -> Any:
    """`a` as torch (sharing its memory) when `as_torch`, else as is."""
    if not as_torch:
        return a
    import torch

    return torch.from_numpy(a)
