"""Scale-out for ``facecolor-batch``: the Ray executor (``ray_job``) and its benchmark.

    from facecolor.runtime.batch import colorize_tree
    from facecolor.runtime.distributed.ray_job import RaySettings
    colorize_tree("s3://archive/scans", "s3://archive/color", ray=RaySettings(address="auto"))

Object storage needs no Ray: IN and OUT of any run are ``runtime.storage`` roots. Ray and
s3fs are optional (``pip install 'facecolor[ray]'``); nothing imports them until a run needs
them.
"""
