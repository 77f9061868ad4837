"""Declarations shared by the JAX networks (`jaxnets.models`) and their NumPy float64 twins
(`reference_numpy`): plain data that imports nothing, so the oracle reads the same network
description without importing the code it checks."""
