"""Work arrays that one thread reuses from one image to the next.

Why: turning one 1024x1280 render back into full-resolution color needs about 50 MB of
float32 temporaries. Fresh arrays of that size are fresh pages from the kernel, and touching
them costs page faults on every image: measured on this project's 2-core CPU, upsampling plus
Lab->sRGB took 36 ms per image with fresh arrays and 16 ms with reused ones, the largest part
of the CPU runtime's write stage.
"""

from __future__ import annotations

import numpy as np

#: Arrays above this many elements are not kept: one huge photo must not pin gigabytes in
#: every writer thread for the rest of a run (48 M elements = a 16 MP RGB image).
DEFAULT_MAX_ELEMENTS = 48_000_000


class Scratch:
    """Named arrays handed out again when the next request has the same shape and dtype.

    Not thread-safe: one per thread. An array handed out stays valid until the next request
    for the same name; callers copy (or encode) what they keep. ``Scratch(max_elements=0)``
    keeps nothing, which is what passing ``scratch=None`` to the functions that take one means.
    """

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS):
        self.max_elements = max_elements
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        kept = self._arrays.get(name)
        if kept is not None and kept.shape == tuple(shape) and kept.dtype == np.dtype(dtype):
            return kept
        fresh = np.empty(shape, dtype)
        if fresh.size <= self.max_elements:
            self._arrays[name] = fresh
        else:
            self._arrays.pop(name, None)
        return fresh


#: Keeps nothing: every request is a fresh array.
FRESH = Scratch(max_elements=0)
