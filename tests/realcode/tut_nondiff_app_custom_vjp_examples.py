"""Examples for `pytest --gradcheck` / `jaxnets gradcheck` (ours, not the tutorial's): the
function argument (nondiff_argnums=(0,)) and a scalar x."""


def app_example():
    return (lambda x: x ** 2), 4.0
