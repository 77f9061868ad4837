"""Errors raised by the data package.

Every problem with input data surfaces as one `DataError` (a `ValueError`) whose message names
the file (or array) and what is wrong with it, instead of a traceback from deep inside NumPy,
gzip or csv. `DataUnavailableError` is the special case "the data is simply not here": a
missing optional dependency, no network, a dataset that is not installed; its message says how
to get the data.
"""
from __future__ import annotations


class DataError(ValueError):
    """Malformed, inconsistent or missing input data. The message names the file and the problem."""


class DataUnavailableError(DataError):
    """The requested data cannot be reached here; the message says how to install or point at it."""
