r"""Strict JSON parsing (RFC 8259): UTF-8 text, finite numbers, valid Unicode strings.

Python's ``json`` also accepts ``NaN`` and ``Infinity``, turns ``1e400`` into infinity and
decodes ``"\ud800"`` into a lone surrogate. None of these is valid JSON data, and each one
failed later inside Chroma's Rust core or the tokenizer as a 500; here they are a clear error.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(ValueError):
    """The text is not strict JSON; the message says what is wrong and where."""


def loads(data: bytes | str) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as strict JSON.

    Raises:
        InvalidJson: not UTF-8, not JSON, nested too deeply, a non-finite or overlong number,
            or an unpaired surrogate escape.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJson(
                f"not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at position {exc.start}"
            ) from None
    try:
        value = json.loads(
            data, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_integer
        )
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidJson("nested too deeply") from None
    except InvalidJson:
        raise
    _check_strings(value)
    return value


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON value; send a finite number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise InvalidJson(f"the number {text[:40]} is out of range")
    return number


def _integer(text: str) -> int:
    # past Python's limit on digits int() raises a ValueError that json does not report
    limit = sys.get_int_max_str_digits()
    digits = len(text.lstrip("-"))
    if limit and digits > limit:
        raise InvalidJson(f"an integer of {digits} digits is out of range (at most {limit})")
    return int(text)


def _check_strings(value: Any) -> None:
    r"""Refuse lone surrogates (``"\ud800"``) in any string or key: they are not Unicode text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                raise InvalidJson(
                    f"unpaired surrogate \\u{ord(found.group()):04x} in a string; "
                    "send valid Unicode (UTF-8) text"
                )
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
