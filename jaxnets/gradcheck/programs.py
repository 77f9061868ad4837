"""The checker's bounded store of compiled programs, under explicit hashable keys (a subject,
an oracle, the leaves' shapes) that are not one builder's arguments — so checking many rules
in one process keeps a bounded number of programs (and their compiled code) alive."""
from collections import OrderedDict


class ProgramLRU:
    """At most `maxsize` programs under explicit hashable keys, the least recently used
    dropped first: `get(key, build)` returns the program kept under `key`, or keeps and returns
    `build()`."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self._kept = OrderedDict()

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
