"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not the tutorial's), read as
if appended to tut_point_pytree_custom_jvp.py (so `Point` is the file's own class): one valid
call's structure, a Point of two floats; the checker draws its own values."""


def f_example():
    return (Point(1.0, 2.0),)  # noqa: F821 -- the file's Point
