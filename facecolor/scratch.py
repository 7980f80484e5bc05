"""Work arrays that one thread reuses from one image to the next.

Why: turning one 1024x1280 render back into full-resolution color needs about 50 MB of
float32 temporaries. Fresh arrays of that size are fresh pages from the kernel, and touching
them costs page faults on every image: measured on this project's 2-core CPU, upsampling plus
Lab->sRGB took 36 ms per image with fresh arrays and 16 ms with reused ones, the largest part
of the CPU runtime's write stage.
"""

from __future__ import annotations

import numpy as np

#: Bytes one Scratch keeps at most. The runtime's output step needs about 46 bytes per pixel
#: (a 1024x1280 image: 60 MB), so this covers photos up to about 5 MP; larger ones get fresh
#: arrays as before, and N writer threads never pin more than N x 256 MB.
DEFAULT_MAX_BYTES = 256 << 20


class Scratch:
    """Named arrays handed out again when the next request has the same shape and dtype.

    Not thread-safe: one per thread. An array handed out stays valid until the next request
    for the same name; callers copy (or encode) what they keep. ``Scratch(max_bytes=0)``
    keeps nothing, which is what passing ``scratch=FRESH`` (the default) means.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def kept_bytes(self) -> int:
        return sum(array.nbytes for array in self._arrays.values())

    def array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        kept = self._arrays.pop(name, None)
        if kept is not None and kept.shape == tuple(shape) and kept.dtype == np.dtype(dtype):
            self._arrays[name] = kept
            return kept
        fresh = np.empty(shape, dtype)
        if self.kept_bytes + fresh.nbytes <= self.max_bytes:
            self._arrays[name] = fresh
        return fresh


#: Keeps nothing: every request is a fresh array.
FRESH = Scratch(max_bytes=0)
