"""facecolor.train: datasets, the three training stages, evaluation, and their CLI.

    facecolor-train gpsagd --data faces/lfw --val faces/ffhq_dev --out runs/gpsagd
    facecolor-train eval runs/gpsagd/gpsagd.safetensors --data faces/ffhq_dev

Modules: ``settings`` (the frozen TrainSettings), ``data`` (decode once, batch on device),
``steps`` (the pix2pix pieces: G pretraining, D step, G step), ``trainer`` (stages, epochs,
resume, outputs), ``distributed`` (torchrun/DDP), ``validate`` and ``evaluate`` (metrics,
Table 2), ``report`` (plots, contact sheet), ``resume`` (the per-epoch state), ``cli``.
The library raises typed errors (``facecolor.train.errors``); only ``cli`` prints.
"""
