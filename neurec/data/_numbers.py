"""Whole-text number parsing shared by the CSV and NCF readers.

``np.fromstring(text, sep=" ")`` parses a whole column or file in one C call, but it
misreads two things a reader must catch: a lone ``-``/``+`` (read as 0 or glued to the next
number) and integers beyond int64 (saturated to its limits, so two huge ids would merge).
"""
from __future__ import annotations

import re
import warnings
from typing import Optional, Union

import numpy as np

INT64 = np.iinfo(np.int64)
_LONE_SIGN = re.compile(r"(?:^|\s)[+-](?=\s|$)")
_LONE_SIGN_BYTES = re.compile(rb"(?:^|\s)[+-](?=\s|$)")

Text = Union[str, bytes]


def has_lone_sign(text: Text) -> bool:
    """Whether a ``-`` or ``+`` stands alone between blanks (the regex runs only when the
    text has a sign at all: ids rarely do, and it costs 4x the parse)."""
    if isinstance(text, bytes):
        return (b"-" in text or b"+" in text) and _LONE_SIGN_BYTES.search(text) is not None
    return ("-" in text or "+" in text) and _LONE_SIGN.search(text) is not None


def fromstring(text: Text, dtype) -> Optional[np.ndarray]:
    """The blank-separated numbers of ``text`` as a 1-D ``dtype`` array, or None where
    NumPy cannot parse them. Check :func:`has_lone_sign` first."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            return np.fromstring(text, dtype=dtype, sep=" ")
    except (ValueError, DeprecationWarning):
        return None


def at_int64_limits(values: np.ndarray) -> np.ndarray:
    """Where an int64 parse may have saturated: the values equal to int64's limits (their
    text must then be checked with :func:`fits_int64`)."""
    return (values == INT64.max) | (values == INT64.min)


def fits_int64(token: Text) -> bool:
    return INT64.min <= int(token) <= INT64.max
