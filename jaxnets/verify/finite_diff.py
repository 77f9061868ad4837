"""Finite differences of the NumPy float64 reference: the independent oracle.

Central differences (`reference_numpy.numerical`), Richardson-extrapolated from steps FD_STEP
and FD_STEP / 2 (error O(h^4), so small gradient entries still meet TOL_FD_F64), on all of a
parameter's coordinates or a seeded random subset (cs231n's grad_check_sparse).
"""
import numpy as np

from jaxnets.verify.tolerances import FD_MAX_COORDS, FD_STEP
from reference_numpy.numerical import numerical_gradient, numerical_gradient_array


def richardson(central):
    """(4 D(h/2) - D(h)) / 3 for the central difference D(h) = central(h): O(h^4) error."""
    return (4.0 * central(FD_STEP / 2) - central(FD_STEP)) / 3.0


def fd_coords(shape, rng, limit=FD_MAX_COORDS):
    """Index arrays of the coordinates finite differences perturb: all, or `limit` at random."""
    size = int(np.prod(shape, dtype=np.int64))
    flat = np.arange(size) if size <= limit else np.sort(rng.choice(size, limit, replace=False))
    return np.unravel_index(flat, shape)


def fd_layer(forward, arrays, k, dout, coords):
    """d sum(forward(*arrays) * dout) / d arrays[k] at `coords` (1-D), by central differences
    of the NumPy forward (reference_numpy.gradcheck.numerical_gradient_array)."""
    work = [np.array(a, dtype=np.float64) for a in arrays]

    def f(v):
        work[k][coords] = v
        return forward(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return richardson(lambda h: numerical_gradient_array(f, v0.copy(), dout, h=h))


def fd_scalar(loss, arrays, k, coords):
    """d loss(*arrays) / d arrays[k] at `coords` (1-D), by central differences
    (reference_numpy.gradcheck.numerical_gradient)."""
    work = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in arrays]

    def f(v):
        work[k][coords] = v
        return loss(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return richardson(lambda h: numerical_gradient(f, v0.copy(), h=h))
