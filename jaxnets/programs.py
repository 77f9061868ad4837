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

A user of many programs under keys that are not one function's arguments (the verification
engine: a subject, an oracle, the leaves' shapes) holds a `ProgramLRU` instead: the same
bounded, explicitly keyed store, counted by `live_programs` as well.

Imports nothing from jaxnets: any package may use it.
"""
import functools
from collections import OrderedDict

#: programs kept per builder
MAX_PROGRAMS = 8
_BUILDERS = []  # every cached builder, for `live_programs` (read by no traced code)


def program_cache(build):
    """`build(*key)` memoised on its (hashable) arguments, the MAX_PROGRAMS most recently used
    kept; `build.cache_info()` / `cache_clear()` as for functools.lru_cache."""
    cached = functools.lru_cache(maxsize=MAX_PROGRAMS)(build)
    _BUILDERS.append(cached)
    return cached


class ProgramLRU:
    """At most `maxsize` programs under explicit hashable keys, the least recently used
    dropped first: `get(key, build)` returns the program kept under `key`, or keeps and returns
    `build()`."""

    def __init__(self, name, maxsize):
        self.__module__, self.__qualname__ = name.rsplit(".", 1)  # how live_programs names it
        self.maxsize = maxsize
        self._kept = OrderedDict()
        _BUILDERS.append(self)

    def get(self, key, build):
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        program = self._kept[key] = build()
        if len(self._kept) > self.maxsize:
            self._kept.popitem(last=False)
        return program

    def __len__(self):
        return len(self._kept)

    def clear(self):
        self._kept.clear()


def live_programs():
    """{builder's qualified name: (programs it keeps now, its bound)}."""
    return {f"{b.__module__}.{b.__qualname__}":
            (len(b), b.maxsize) if isinstance(b, ProgramLRU) else (b.cache_info().currsize, MAX_PROGRAMS)
            for b in _BUILDERS}


__all__ = ["MAX_PROGRAMS", "ProgramLRU", "program_cache", "live_programs"]
