"""The GPU half of the runtime: nvJPEG decode and encode, fused LAB pre- and postprocessing.

- ``jpeg``: JPEG header facts, EXIF orientation and metadata splicing on plain bytes;
- ``decode``: nvJPEG batches for baseline JPEGs, uploads for what the CPU decoder decodes;
- ``preprocess``: pixels -> full-resolution L* and the network's square render;
- ``postprocess``: ab + L* -> 8/16-bit sRGB in one Triton kernel (torch fallback);
- ``encode``: nvJPEG encoding with the facecolor metadata note;
- ``cuda``: the choke point that names CUDA failures.

``facecolor.runtime.pipeline_gpu`` runs them as overlapping stages. Importing this package
needs torch, never a GPU.
"""
