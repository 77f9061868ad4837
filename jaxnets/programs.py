"""The one cache of compiled programs: bounded, keyed by explicit hashable values.

A function that builds a jitted program for a model (the training chunk, the accuracy count)
is wrapped by `program_cache`: called again with equal arguments it returns the program it
built, whose own jit cache then serves every further call with the same shapes. Keys are
the values themselves — a Model (immutable, compared by identity like a function), a decoder
(`jaxnets.data.PixelDecoder`, compared by value), a mesh, a `Layout`, a tuple of config
fields — held by the cache, never `id()`s. At most MAX_PROGRAMS programs per builder stay
alive: the least recently used one is dropped, and with it its compiled code (JAX keys its
own caches on the jitted function weakly), so training many models in one process keeps
memory bounded.

Imports nothing from jaxnets: any package may use it.
"""
import functools

#: programs kept per builder
MAX_PROGRAMS = 8
_BUILDERS = []  # every cached builder, for `live_programs` (read by no traced code)


def program_cache(build):
    """`build(*key)` memoised on its (hashable) arguments, the MAX_PROGRAMS most recently used
    kept; `build.cache_info()` / `cache_clear()` as for functools.lru_cache."""
    cached = functools.lru_cache(maxsize=MAX_PROGRAMS)(build)
    _BUILDERS.append(cached)
    return cached


def live_programs():
    """{builder's qualified name: (programs it keeps now, its bound)}."""
    return {f"{b.__module__}.{b.__qualname__}": (b.cache_info().currsize, MAX_PROGRAMS) for b in _BUILDERS}


__all__ = ["MAX_PROGRAMS", "program_cache", "live_programs"]
