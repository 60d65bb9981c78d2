"""``node-local`` backend: the filesystem backend on node-local RAM (/dev/shm) or flash.

Files under /dev/shm *are* shared memory: a reader on the same node maps the
published file (``mmap_reads``, on by default here) and builds its array on the
mapping, so a read costs no copy and the array stays writable (copy-on-write).
Published files are never modified in place, which makes the mapping safe.
"""

from __future__ import annotations

import os
import tempfile

from simai.datastore.backends.filesystem import DirectoryServer, FilesystemTransport
from simai.datastore.config import NodeLocalConfig

__all__ = ["NodeLocalServer", "NodeLocalTransport"]


class NodeLocalTransport(FilesystemTransport):
    backend = "node-local"
    Config = NodeLocalConfig


class NodeLocalServer(DirectoryServer):
    def _default_parent(self) -> str:
        return (
            "/dev/shm"
            if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
            else tempfile.gettempdir()
        )


NodeLocalTransport.Server = NodeLocalServer
