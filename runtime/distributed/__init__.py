"""Scale-out for ``facecolor-batch``: the Ray executor (``ray_job``). Ray and s3fs are
optional (``pip install 'facecolor[ray]'``) and imported only when a run needs them.
"""
