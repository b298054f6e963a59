"""A bounded LRU of whole /v1/query answers, one per served model version.

The pipeline is deterministic for a given version (the extractive generator; an LLM generator
at temperature 0 nearly so), so a repeated question is answered from memory. The cache lives
on the ``ServedModel``: a hot swap starts an empty one, which is what keys it by version.
Entries are keyed by the resolved query (``rag_model.query.Query.key``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class AnswerCache:
    """Thread-safe LRU of response bodies with hit and miss counts.

    Example:
        >>> cache = AnswerCache(max_entries=2)
        >>> cache.get("q") is None, cache.misses
        (True, 1)
        >>> cache.put("q", {"answer": "42"}); cache.get("q"), cache.hits
        ({'answer': '42'}, 1)
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> dict[str, Any] | None:
        """The stored body for ``key`` (now the most recently used), or None; counted."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, body: dict[str, Any]) -> None:
        """Store ``body``; the least recently used entry goes when the cache is full."""
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = body
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
