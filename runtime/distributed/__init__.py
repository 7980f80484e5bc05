"""Scale-out: object-storage IO (``storage``) and the Ray Data job (``ray_job``)."""
