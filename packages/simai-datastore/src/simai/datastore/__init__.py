"""simai.datastore: One DataStore API over Redis, DragonHPC, file systems, node-local RAM/flash and DAOS."""

from simai.datastore._version import __version__

__all__ = ["__version__"]
