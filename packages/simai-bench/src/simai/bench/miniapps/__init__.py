"""Three example mini-apps of AI-coupled workflows, each a workflow file plus its functions.

===========  ==============================================  =====================
name         pattern                                         functions
===========  ==============================================  =====================
insitu       one simulation -> one trainer (nekRS-ML)        insitu.simulation, insitu.trainer
ensemble     several simulations -> one trainer              ensemble.member, ensemble.trainer
steering     inference -> dynamic docking tasks -> retrain   steering.steer, steering.dock
===========  ==============================================  =====================

``config_path(name)`` is the packaged YAML (filesystem staging + thread pool), the
same file as ``examples/miniapps/<name>.yaml`` in the repository.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MINIAPPS", "config_path"]

MINIAPPS = ("insitu", "ensemble", "steering")


def config_path(name: str) -> Path:
    if name not in MINIAPPS:
        from simai.bench._suggest import unknown_name_message

        raise ValueError(unknown_name_message("mini-app", name, MINIAPPS))
    return Path(__file__).with_name(f"{name}.yaml")
