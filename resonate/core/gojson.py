"""JSON encoding that is byte-identical to Go's ``encoding/json`` for the values we emit.

Go differs from Python's ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` only in that it
HTML-escapes ``<`` ``>`` ``&``, escapes U+2028/U+2029, writes invalid UTF-8 as U+FFFD and encodes
byte strings as standard base64.  We let the C encoder do the work and patch the output only when
one of those characters occurs, which keeps the common case as fast as plain ``json.dumps``.

Dict keys are written in insertion order: callers that render Go maps sort the keys themselves,
callers that render Go structs insert the fields in struct order.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

__all__ = ["dumps"]

# Lone surrogates can only come from invalid UTF-8 decoded with "surrogateescape" or from JSON
# "\ud800"-style escapes; Go has no such code points and writes U+FFFD instead.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"json: unsupported type: {type(value).__name__}")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,  # Go refuses NaN/Inf ("json: unsupported value") instead of emitting invalid JSON
    default=_encode_default,
)
# What _ENCODER.encode runs, built once instead of per call (JSONEncoder.iterencode makes a new C encoder
# each time): the same C encoder and options. No circular-reference markers: shared between threads, a
# markers dict could report an object two threads encode at once; rendered answers are trees.
_C_ENCODE = (json.encoder.c_make_encoder(None, _encode_default, json.encoder.encode_basestring, None, ":", ",",
                                         False, False, False)
             if json.encoder.c_make_encoder is not None else None)


def _encode(obj: Any) -> str:
    if _C_ENCODE is None:
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODE(obj, 0))


def dumps(obj: Any) -> str:
    """Encode ``obj`` compactly with Go's escaping rules (see module docstring)."""
    text = _encode(obj)
    # "in" and str.replace are C-speed scans; most responses contain none of these characters.
    if "<" in text:
        text = text.replace("<", "\\u003c")
    if ">" in text:
        text = text.replace(">", "\\u003e")
    if "&" in text:
        text = text.replace("&", "\\u0026")
    if not text.isascii():
        if "\u2028" in text:
            text = text.replace("\u2028", "\\u2028")
        if "\u2029" in text:
            text = text.replace("\u2029", "\\u2029")
        text = _SURROGATE.sub("\ufffd", text)
    return text
