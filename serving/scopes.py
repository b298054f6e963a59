"""API keys with names and document scopes, read from ``RAG_API_KEYS_FILE`` and reloaded on change.

Two file formats. The scoped one is YAML whose first line (comments aside) is ``keys:``::

    keys:
      - name: team-a                      # shown in the access log and traces, never the key
        sha256: 9f86d081884c7d65...        # printf %s "$KEY" | sha256sum
        scope: {title: Normans}            # a filter (the query grammar), ANDed with every query
      - name: ops
        sha256: 60303ae22b998861...
        scope: all                         # sees every document: must be written out

Any other file is the older format, one plain key per line: those keys, like the keys of
``RAG_API_KEYS``, see every document (named ``key-<first 8 hex of their sha256>``).

A key's scope is ANDed with the request's own filter on every route, so a request can narrow
what it sees but never widen it (``$or``, ``$ne`` or ``$nin`` in the request all sit inside the
AND). The same combined filter reaches Chroma and the BM25 side (``rag_model.retrieval``
restricts BM25 to the ids Chroma's filter allows).

Reloading: every request compares the file's (mtime, size, inode) with the last read (one
``stat``, about a microsecond); a changed file is parsed again. A file that is missing or
malformed at start stops the server (ConfigError); one that becomes malformed while serving
is logged as an error and the last good keys stay in force until the file is fixed, so a
typo cannot lock every team out (or, worse, drop a scope).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import g

from rag_model.errors import ConfigError
from rag_model.filters import FilterError, check_filter
from rag_model.query import CheckedFilter

log = logging.getLogger(__name__)

ALL = "all"  # the scope that sees every document
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
DIGEST = re.compile(r"[0-9a-f]{64}")
ENTRY_FIELDS = {"name", "sha256", "scope"}


@dataclass(frozen=True)
class ApiKey:
    """One key, by its sha256: its name and scope (None: every document)."""

    name: str
    digest: bytes
    scope: CheckedFilter | None


def legacy_key(key: str, prefix: str = "key") -> ApiKey:
    """A plain key (RAG_API_KEYS, or a one-key-per-line file): unscoped."""
    digest = hashlib.sha256(key.encode()).digest()
    return ApiKey(f"{prefix}-{digest.hex()[:8]}", digest, None)


def is_scoped_format(text: str) -> bool:
    """Whether ``text`` is the YAML format (first line that is not blank or a comment: keys:)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("keys:")
    return False


def parse_keys_file(path: Path) -> list[ApiKey]:
    """The keys in ``path`` (either format).

    Raises:
        ConfigError: naming the file, the entry and what is wrong with it.
    """
    where = f"RAG_API_KEYS_FILE {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    if not is_scoped_format(text):
        return [legacy_key(line.strip()) for line in text.splitlines() if line.strip()]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: 'keys' must be a list of {{name, sha256, scope}} entries")
    if set(data) != {"keys"}:
        raise ConfigError(f"{where}: unknown top-level fields {sorted(set(data) - {'keys'})}")
    keys = [_entry(item, f"{where}: keys[{i}]") for i, item in enumerate(entries)]
    for label, values in (
        ("name", [key.name for key in keys]),
        ("sha256", [key.digest.hex() for key in keys]),
    ):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ConfigError(f"{where}: {label} {repeated[0]} appears more than once")
    return keys


def _entry(item: Any, where: str) -> ApiKey:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with name, sha256 and scope")
    missing, extra = ENTRY_FIELDS - set(item), set(item) - ENTRY_FIELDS
    if missing:
        hint = " (write 'scope: all' for a key that sees every document)"
        hint = hint if "scope" in missing else ""
        raise ConfigError(f"{where} lacks {', '.join(sorted(missing))}{hint}")
    if extra:
        raise ConfigError(
            f"{where} has unknown fields {sorted(extra)}; allowed: name, sha256, scope"
        )
    name, digest, scope = item["name"], item["sha256"], item["scope"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}.name must be 1-64 of A-Z a-z 0-9 . _ -, got {name!r}")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest.lower()):
        raise ConfigError(
            f'{where}.sha256 must be 64 hex digits (printf %s "$KEY" | sha256sum), not the key'
        )
    if scope == ALL:
        checked = None
    elif isinstance(scope, dict) and scope:
        try:
            checked = CheckedFilter(check_filter(scope))
        except FilterError as exc:
            raise ConfigError(f"{where}.scope: {exc}") from None
    else:
        raise ConfigError(
            f"{where}.scope must be a non-empty filter such as {{title: Normans}} or 'all', "
            f"got {scope!r}"
        )
    return ApiKey(name, bytes.fromhex(digest.lower()), checked)


class KeyRing:
    """The server's keys: RAG_API_KEYS plus RAG_API_KEYS_FILE, the file re-read when it changes."""

    def __init__(self, env_keys: list[str], path: str = "") -> None:
        self._env = [legacy_key(key, "env") for key in env_keys]
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._file_keys: list[ApiKey] = []
        if self.path is not None:
            self._signature = self._stat()
            self._file_keys = parse_keys_file(self.path)  # ConfigError at start
        self.keys: tuple[ApiKey, ...] = (*self._env, *self._file_keys)

    def _stat(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def refresh(self) -> None:
        """Re-read the file if it changed; keep the last good keys if it is now bad."""
        if self.path is None:
            return
        signature = self._stat()
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:  # another thread reloaded it meanwhile
                return
            self._signature = signature
            try:
                keys = parse_keys_file(self.path)
            except ConfigError as exc:
                log.error("%s; keeping the %d keys read before", exc, len(self._file_keys))
                return
            self._file_keys = keys
            self.keys = (*self._env, *keys)
            log.info("RAG_API_KEYS_FILE %s reloaded: %d keys", self.path, len(keys))

    def __contains__(self, digest: object) -> bool:
        """Whether ``digest`` is the sha256 of one of the keys (request ids that are keys)."""
        return any(key.digest == digest for key in self.keys)

    def match(self, token: str | None) -> ApiKey | None:
        """The key ``token`` is, compared with every key in constant time (timing tells nothing)."""
        digest = hashlib.sha256((token or "").encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest) and token:
                found = key
        return found


def combine(scope: CheckedFilter | None, where: dict[str, Any] | None) -> dict[str, Any] | None:
    """``where`` ANDed with ``scope``: a CheckedFilter (both parts were checked already).

    The top-level ``$and`` lists are flattened, so the combination is at most one level deeper
    than the deeper of the two (Chroma accepts it; the request grammar's depth limit is for
    what clients send).

    Example:
        >>> combine(CheckedFilter({"team": "a"}), {"$or": [{"x": 1}, {"y": 2}]})
        {'$and': [{'team': 'a'}, {'$or': [{'x': 1}, {'y': 2}]}]}
    """
    if scope is None:
        return where
    if not where:
        return scope
    parts = [*_conjuncts(scope), *_conjuncts(where)]
    return CheckedFilter({"$and": parts})


def _conjuncts(clause: dict[str, Any]) -> list[dict[str, Any]]:
    if set(clause) == {"$and"}:
        return list(clause["$and"])
    return [clause]


def scoped(where: dict[str, Any] | None) -> dict[str, Any] | None:
    """This request's filter ANDed with its key's scope (``g.rag_scope``; none without auth)."""
    return combine(g.get("rag_scope"), where)
