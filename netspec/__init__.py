"""Declarations shared by the JAX networks (`jaxnets.models`) and their NumPy float64 twins
(`reference_numpy`): plain data that imports nothing, so the oracle reads the same network
description without importing the code it checks.

Modules: `stages` (`KINDS`, the table of stage kinds; `Stage`, `stage`) and `networks` (the
stage lists of the networks written as stages).
"""
__all__ = ["stages", "networks"]
