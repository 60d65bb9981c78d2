"""Mini-app 2: many-to-one ensemble training.

Several simulations (the in-situ simulation of mini-app 1, each under its own name)
stage fields concurrently; one trainer reads the newest field of every member each
``read_every`` iterations, so its read rate grows with the ensemble. One kill
message ends every member.

Run it: ``simai run examples/miniapps/ensemble.yaml`` (``--backend redis`` to switch).
"""

from __future__ import annotations

from simai.bench.miniapps.insitu import simulation, trainer

__all__ = ["member", "trainer"]

#: An ensemble member is the in-situ simulation under another name.
member = simulation
