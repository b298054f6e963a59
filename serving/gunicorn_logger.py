"""gunicorn's error log without client-sent text: a request line or header may carry a secret.

gunicorn logs what it could not parse ("Invalid request from ip=...: Invalid HTTP method:
'<the method>'") and the request line of a request that crashed a worker. A client that
pastes an API key into the method, a header or the query string would find it there; this
logger keeps the kind of error and drops what the client sent.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

_INVALID = re.compile(r"(Invalid request from ip=\S*: )([^:'\"]*)(.*)", re.DOTALL)


class RedactingLogger(Logger):
    """``logger_class`` for gunicorn (serving/gunicorn.conf.py)."""

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        match = _INVALID.fullmatch(msg) if isinstance(msg, str) else None
        if match and match.group(3):
            msg = f"{match.group(1)}{match.group(2).strip()} (what the client sent is not logged)"
        super().warning(msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith("Error handling request"):
            msg, args = "Error handling request (its request line is not logged)", ()
        super().exception(msg, *args, **kwargs)
