"""facecolor: colorize black-and-white portraits with a pix2pix GAN, at scale.

The core package holds what every stage shares: the color convention (``color``), the
models and their preset registry (``models``), metrics (``metrics``) and checkpoints
(``checkpoint``). The stages live in ``facecolor.train``, ``facecolor.export``,
``facecolor.runtime`` and ``facecolor.bench``; dependencies point from them to here only.
"""

__version__ = "0.1.0"
