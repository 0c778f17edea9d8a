"""Data files the page loads with a <script> tag: `window[NAME] = {...};` in compact notation.

Floats keep 4 significant digits (what the page prints) and non-finite ones become null, so a
run at p = 8192 stays a few megabytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _float(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "null"


def _array(values: np.ndarray) -> str:
    flat = values.ravel()
    if flat.dtype.kind == "b":
        flat = flat.astype(np.int64)
    if flat.dtype.kind in "iu":
        return "[" + ",".join(map(str, flat.tolist())) + "]"
    if flat.dtype.kind == "f":
        return "[" + ",".join(map(_float, flat.tolist())) + "]"
    return json.dumps([value if isinstance(value, str) else None for value in flat.tolist()])


def js_value(value: Any) -> str:
    """`value` (dicts, lists, numpy arrays flattened, scalars) as a JavaScript literal."""
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{js_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_value(item) for item in value) + "]"
    if isinstance(value, float | np.floating):
        return _float(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return json.dumps(value)


def write_global(path: Path, name: str, key: str | None, value: Any) -> int:
    """Write `window.NAME = value;` (or `window.NAME[key] = value;` into a shared object) to
    `path`; returns the bytes written."""
    target = f"window.{name}"
    if key is not None:
        target = f"({target} = {target} || {{}})[{json.dumps(key)}]"
    text = f"{target} = {js_value(value)};\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return len(text.encode())
