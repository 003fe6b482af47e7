"""Render LDAP search filters (RFC 4511 section 4.5.1.7) as text.

Two renderings exist because upstream's raw-request carries both: RFC 4515
string form for ``FilterString=``, and the form that Go's ``%s`` verb prints
for upstream's parsed filter structs for ``Filter=``. Both walk the BER
elements directly and write into a :class:`CaptureText`, so a huge filter
costs at most the capture limit in memory and time.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from interactsh.listeners.ber import CLASS_CONTEXT, BerError, Element

# Nesting of and/or/not filters beyond this depth is rejected, so that a
# small message cannot drive the recursive walk into Python's recursion limit.
MAX_FILTER_DEPTH = 100

FILTER_AND = 0
FILTER_OR = 1
FILTER_NOT = 2
FILTER_EQUALITY = 3
FILTER_SUBSTRINGS = 4
FILTER_GREATER_OR_EQUAL = 5
FILTER_LESS_OR_EQUAL = 6
FILTER_PRESENT = 7
FILTER_APPROX = 8
FILTER_EXTENSIBLE = 9

_ASSERTION_OPERATORS = {
    FILTER_EQUALITY: "=",
    FILTER_GREATER_OR_EQUAL: ">=",
    FILTER_LESS_OR_EQUAL: "<=",
    FILTER_APPROX: "~=",
}
_SUBSTRING_INITIAL = 0
_SUBSTRING_ANY = 1
_SUBSTRING_FINAL = 2
# RFC 4515 section 3: these octets are written as a backslash and two hex digits.
_RFC4515_SPECIAL = frozenset(b"*()\\\x00")


class CaptureFull(Exception):
    """Raised by :class:`CaptureText` once its limit is reached, to stop rendering."""


class CaptureText:
    """Text built from pieces, cut at ``limit`` characters or ``limit // 8`` pieces.

    The piece count bounds the time spent on long lists whose items print
    little or nothing, such as added attributes without values.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.max_pieces = max(1, limit // 8)
        self.truncated = False
        self._parts: list[str] = []
        self._size = 0

    def add(self, text: str) -> None:
        """Append ``text``; raise :class:`CaptureFull` once a limit cuts it."""
        if len(self._parts) >= self.max_pieces:
            self.truncated = True
            raise CaptureFull
        room = self.limit - self._size
        if len(text) > room:
            self._parts.append(text[:room])
            self._size = self.limit
            self.truncated = True
            raise CaptureFull
        self._parts.append(text)
        self._size += len(text)

    def text(self) -> str:
        """Return everything added so far."""
        return "".join(self._parts)


class FilterError(BerError):
    """A search filter is not a valid RFC 4511 filter encoding."""


def text_of(value: bytes | memoryview) -> str:
    """Decode an LDAPString, keeping invalid UTF-8 octets as lone surrogates."""
    return bytes(value).decode("utf-8", "surrogateescape")


def escape_assertion_value(value: bytes) -> str:
    """Escape an assertion value as RFC 4515 requires, plus any octet that is not valid UTF-8."""
    text = value.decode("utf-8", "surrogateescape")
    if text.isascii() and not _RFC4515_SPECIAL.intersection(value):
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\{code - 0xDC00:02x}")
        elif code < 0x80 and code in _RFC4515_SPECIAL:
            out.append(f"\\{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def render_filter_string(element: Element, out: CaptureText, depth: int = 0) -> None:
    """Write the RFC 4515 string form of a filter element to ``out``."""
    kind = _filter_kind(element, depth)
    if kind in (FILTER_AND, FILTER_OR):
        out.add("(&" if kind == FILTER_AND else "(|")
        for child in element.children():
            render_filter_string(child, out, depth + 1)
        out.add(")")
    elif kind == FILTER_NOT:
        out.add("(!")
        render_filter_string(_single_child(element), out, depth + 1)
        out.add(")")
    elif kind in _ASSERTION_OPERATORS:
        attribute, value = _assertion(element)
        out.add(f"({text_of(attribute)}{_ASSERTION_OPERATORS[kind]}{escape_assertion_value(value)})")
    elif kind == FILTER_SUBSTRINGS:
        attribute, parts = _substrings(element)
        out.add(f"({text_of(attribute)}=")
        last = _SUBSTRING_INITIAL
        for index, part in enumerate(parts):
            # The pieces are joined by "*", and a missing initial or final piece leaves a "*" at that end.
            out.add("*" if index or part.number != _SUBSTRING_INITIAL else "")
            out.add(escape_assertion_value(part.as_bytes()))
            last = part.number
        out.add(")" if last == _SUBSTRING_FINAL else "*)")
    elif kind == FILTER_PRESENT:
        out.add(f"({text_of(element.as_bytes())}=*)")
    else:
        rule, match_type, match_value, dn_attributes = _extensible(element)
        out.add("(" + (text_of(match_type) if match_type is not None else ""))
        out.add(":dn" if dn_attributes else "")
        out.add(":" + text_of(rule) if rule is not None else "")
        out.add(f":={escape_assertion_value(match_value)})")


def render_filter_go(element: Element, out: CaptureText, depth: int = 0) -> None:
    """Write the filter as Go's ``%s`` prints upstream's parsed filter structs.

    And/or sets print as ``[a b]``, not as ``{a}``, assertions as
    ``{attribute value}``, presence as the bare attribute and substrings as
    ``{attribute [initial any final]}``. For an extensible match Go prints
    pointer addresses; this prints the values instead, ``<nil>`` when absent.
    """
    kind = _filter_kind(element, depth)
    if kind in (FILTER_AND, FILTER_OR):
        out.add("[")
        for index, child in enumerate(element.children()):
            out.add(" " if index else "")
            render_filter_go(child, out, depth + 1)
        out.add("]")
    elif kind == FILTER_NOT:
        out.add("{")
        render_filter_go(_single_child(element), out, depth + 1)
        out.add("}")
    elif kind in _ASSERTION_OPERATORS:
        attribute, value = _assertion(element)
        out.add(f"{{{text_of(attribute)} {text_of(value)}}}")
    elif kind == FILTER_SUBSTRINGS:
        attribute, parts = _substrings(element)
        out.add(f"{{{text_of(attribute)} [")
        for index, part in enumerate(parts):
            out.add((" " if index else "") + text_of(part.as_bytes()))
        out.add("]}")
    elif kind == FILTER_PRESENT:
        out.add(text_of(element.as_bytes()))
    else:
        rule, match_type, match_value, dn_attributes = _extensible(element)
        rule_text = text_of(rule) if rule is not None else "<nil>"
        type_text = text_of(match_type) if match_type is not None else "<nil>"
        out.add(f"{{{rule_text} {type_text} {text_of(match_value)} {str(dn_attributes).lower()}}}")


def _filter_kind(element: Element, depth: int) -> int:
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"filter nests deeper than {MAX_FILTER_DEPTH} levels")
    if element.tag_class != CLASS_CONTEXT or element.number > FILTER_EXTENSIBLE:
        raise FilterError(f"filter choice [{element.tag_class}:{element.number}] is not defined by RFC 4511")
    primitive = element.number == FILTER_PRESENT
    if element.constructed == primitive:
        form = "constructed" if element.constructed else "primitive"
        raise FilterError(f"filter choice {element.number} must not be {form}")
    return element.number


def _single_child(element: Element) -> Element:
    children = list(islice(element.children(), 2))
    if len(children) != 1:
        raise FilterError("a not filter must contain exactly one filter")
    return children[0]


def _assertion(element: Element) -> tuple[bytes, bytes]:
    children = list(islice(element.children(), 3))
    if len(children) != 2:
        raise FilterError("an attribute value assertion must contain exactly an attribute and a value")
    return children[0].as_bytes(), children[1].as_bytes()


def _substrings(element: Element) -> tuple[bytes, Iterator[Element]]:
    """Return the attribute and an iterator over the substring choices, checked for RFC 4511's order."""
    children = list(islice(element.children(), 3))
    if len(children) != 2:
        raise FilterError("a substrings filter must contain an attribute and one sequence of substrings")
    return children[0].as_bytes(), _substring_parts(children[1])


def _substring_parts(sequence: Element) -> Iterator[Element]:
    final_seen = False
    count = 0
    for index, part in enumerate(sequence.children()):
        in_order = part.number == _SUBSTRING_ANY or (part.number == _SUBSTRING_INITIAL and index == 0)
        if final_seen or not (in_order or part.number == _SUBSTRING_FINAL):
            raise FilterError(f"substring choice {part.number} at position {index} is out of order or undefined")
        final_seen = part.number == _SUBSTRING_FINAL
        count += 1
        yield part
    if not count:
        raise FilterError("a substrings filter contains no substrings")


def _extensible(element: Element) -> tuple[bytes | None, bytes | None, bytes, bool]:
    rule: bytes | None = None
    attribute: bytes | None = None
    value: bytes | None = None
    dn_attributes = False
    children = list(islice(element.children(), 5))
    if len(children) > 4:
        raise FilterError("an extensible match filter contains more than the 4 elements RFC 4511 defines")
    for child in children:
        if child.number == 1:
            rule = child.as_bytes()
        elif child.number == 2:
            attribute = child.as_bytes()
        elif child.number == 3:
            value = child.as_bytes()
        elif child.number == 4:
            dn_attributes = child.as_boolean()
        else:
            raise FilterError(f"extensible match element [{child.number}] is not defined by RFC 4511")
    if value is None:
        raise FilterError("an extensible match filter has no match value")
    if rule is None and attribute is None:
        raise FilterError("an extensible match filter names neither a matching rule nor an attribute")
    return rule, attribute, value, dn_attributes
