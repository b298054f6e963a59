"""One working copy of a snapshot's Chroma folder per host, shared by every process opening it.

Chroma cannot open a folder read-only: every ``PersistentClient`` open inserts a row into its
sqlite's ``acquire_write`` table (chromadb 1.5.9; measured by hashing every file before and
after open, queries, ``get`` and close: ``chroma.sqlite3`` changes, the HNSW segment files do
not). So the verified snapshot is never opened in place. Until this module, each process copied
the whole folder (712 MB per worker at 100k chunks). Now the first process on a host copies it
once, under an exclusive lock, into ``<root>/<key>/chroma``; every process opening the same
snapshot then holds a shared lock on ``<key>/users.lock`` while it uses that copy, and the last
one to release it deletes it. Copies nobody holds (a crashed worker's) are removed the next time
any snapshot is opened on the host.

Each process opens the shared copy through a symlink in its own small temporary folder: chromadb
caches one client system per path string in the process (``SharedSystemClient``), and a forked
child must not reuse its parent's system, so every ``ChromaIndex`` keeps a path of its own
while the files are the same.

``RAG_CHROMA_SHARED_DIR`` sets the root (default: ``<tmp>/rag-model-chroma-<uid>``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT_ENV = "RAG_CHROMA_SHARED_DIR"
LOCK_NAME = ".lock"
USERS_NAME = "users.lock"
PARTIAL_SUFFIX = ".partial"


def shared_root() -> Path:
    """The folder holding this host's shared working copies."""
    configured = os.environ.get(ROOT_ENV, "").strip()
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"rag-model-chroma-{os.getuid()}"


def copy_key(snapshot_dir: Path, manifest_bytes: bytes) -> str:
    """Names one snapshot's copy: its real path and its manifest (which lists every digest).

    The path is part of the key so a damaged copy of a snapshot elsewhere never maps onto the
    intact one's working copy.
    """
    digest = hashlib.sha256(str(snapshot_dir.resolve()).encode() + b"\0" + manifest_bytes)
    return digest.hexdigest()[:32]


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _unused(copy: Path) -> bool:
    """Whether no process holds ``copy`` (an exclusive lock on its users file succeeds)."""
    try:
        handle = os.open(copy / USERS_NAME, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)
    return True


def _remove_unused(root: Path, keep: str) -> None:
    # the caller holds the root's lock: nobody is creating or taking a copy meanwhile
    for entry in root.iterdir():
        if entry.name == LOCK_NAME or entry.name == keep or not entry.is_dir():
            continue
        if entry.name.endswith(PARTIAL_SUFFIX) or _unused(entry):
            shutil.rmtree(entry, ignore_errors=True)


class SharedCopy:
    """This process's hold on the host's working copy of one snapshot's Chroma folder.

    Example:
        >>> held = SharedCopy.acquire(snapshot / "chroma", key)
        >>> chromadb.PersistentClient(path=str(held.path))
        >>> held.release()
    """

    def __init__(self, root: Path, key: str, handle: int, link_dir: Path, name: str) -> None:
        self.root, self.key = root, key
        self._handle: int | None = handle
        self._link_dir = link_dir
        self._pid = os.getpid()
        self.path = link_dir / name
        self.copied = False  # whether this process made the copy (first on the host)

    @property
    def target(self) -> Path:
        """The shared copy's folder (what ``path`` links to)."""
        return self.root / self.key

    @classmethod
    def acquire(cls, source: Path, key: str, root: Path | None = None) -> SharedCopy:
        """Hold the shared copy of ``source`` named ``key``, copying it first if none exists.

        Raises:
            OSError: the copy could not be made (disk full, permissions); nothing is left.
        """
        root = root or shared_root()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = root / key
        copied = False
        with _exclusive(root / LOCK_NAME):
            _remove_unused(root, keep=key)
            if not (target / USERS_NAME).is_file():  # absent, or not finished by a crashed copier
                shutil.rmtree(target, ignore_errors=True)
                partial = root / (key + PARTIAL_SUFFIX)
                shutil.rmtree(partial, ignore_errors=True)
                try:
                    shutil.copytree(source, partial / source.name)
                    (partial / USERS_NAME).touch()
                    os.rename(partial, target)  # complete copies only ever carry the name
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
                copied = True
            handle = os.open(target / USERS_NAME, os.O_RDWR)
            fcntl.flock(handle, fcntl.LOCK_SH)  # taken under the root's lock: no remover races
        link_dir = Path(tempfile.mkdtemp(prefix="rag-model-chroma-link-"))
        (link_dir / source.name).symlink_to(target / source.name, target_is_directory=True)
        held = cls(root, key, handle, link_dir, source.name)
        held.copied = copied
        return held

    def release(self) -> None:
        """Let go of the copy; the last process holding it deletes it. Idempotent."""
        if self._handle is None:
            return
        if self._pid != os.getpid():  # a forked child's inherited hold: the parent releases
            self._handle = None
            return
        os.close(self._handle)
        self._handle = None
        shutil.rmtree(self._link_dir, ignore_errors=True)
        with _exclusive(self.root / LOCK_NAME):
            if (self.target / USERS_NAME).is_file() and _unused(self.target):
                shutil.rmtree(self.target, ignore_errors=True)
