"""The GPU half of the runtime: nvJPEG decode and encode, fused LAB pre- and postprocessing,
run as overlapping stages by ``facecolor.runtime.pipeline_gpu``. Importing it needs torch, never
a GPU.
"""
