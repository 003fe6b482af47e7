"""Decode LDAP requests (RFC 4511 section 4) and describe them as upstream's raw-request text.

Each request decodes into a small dataclass that keeps the DNs as the octets
the client sent, so replies can echo them exactly. :func:`describe` renders
the ``Type=...`` lines that upstream records, cut at the capture limit. Parts
that may be large (filters, attribute lists, modifications) are decoded
while they are rendered, so they cost at most the capture limit, and the
part of such a list past the limit is neither rendered nor checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from interactsh.listeners.ber import (
    CLASS_APPLICATION,
    CLASS_CONTEXT,
    CLASS_UNIVERSAL,
    BerError,
    Element,
    read_single,
)
from interactsh.listeners.ldap_filter import (
    CaptureFull,
    CaptureText,
    render_filter_go,
    render_filter_string,
    text_of,
)

OID_START_TLS = "1.3.6.1.4.1.1466.20037"
OID_WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"
OID_NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"

MAX_MESSAGE_ID = 2**31 - 1

# protocolOp tags (RFC 4511 section 4.2 onwards), all of class APPLICATION.
BIND_REQUEST = 0
UNBIND_REQUEST = 2
SEARCH_REQUEST = 3
MODIFY_REQUEST = 6
ADD_REQUEST = 8
DELETE_REQUEST = 10
MODIFY_DN_REQUEST = 12
COMPARE_REQUEST = 14
ABANDON_REQUEST = 16
EXTENDED_REQUEST = 23

OPERATION_NAMES = {
    0: "Bind",
    1: "BindResponse",
    2: "Unbind",
    3: "Search",
    4: "SearchResultEntry",
    5: "SearchResultDone",
    6: "Modify",
    7: "ModifyResponse",
    8: "Add",
    9: "AddResponse",
    10: "Delete",
    11: "DeleteResponse",
    12: "ModifyDN",
    13: "ModifyDNResponse",
    14: "Compare",
    15: "CompareResponse",
    16: "Abandon",
    19: "SearchResultReference",
    23: "Extended",
    24: "ExtendedResponse",
    25: "IntermediateResponse",
}
_MODIFY_OPERATIONS = {0: "Add", 1: "Delete", 2: "Replace"}
_AUTH_SIMPLE = 0
_AUTH_SASL = 3


class LdapDecodeError(BerError):
    """A complete LDAP message whose content is not a valid RFC 4511 request."""


@dataclass(frozen=True)
class BindRequest:
    version: int
    name: bytes
    method: str
    password: bytes
    sasl_mechanism: bytes = b""
    sasl_credentials: bytes | None = None


@dataclass(frozen=True)
class UnbindRequest:
    pass


@dataclass(frozen=True)
class SearchRequest:
    base: bytes
    scope: int
    deref_aliases: int
    size_limit: int
    time_limit: int
    types_only: bool
    filter: Element
    attributes: Element


@dataclass(frozen=True)
class ModifyRequest:
    entry: bytes
    changes: Element


@dataclass(frozen=True)
class AddRequest:
    entry: bytes
    attributes: Element


@dataclass(frozen=True)
class DeleteRequest:
    entry: bytes


@dataclass(frozen=True)
class ModifyDnRequest:
    entry: bytes
    new_rdn: bytes
    delete_old_rdn: bool
    new_superior: bytes | None


@dataclass(frozen=True)
class CompareRequest:
    entry: bytes
    attribute: bytes
    value: bytes


@dataclass(frozen=True)
class AbandonRequest:
    target_id: int


@dataclass(frozen=True)
class ExtendedRequest:
    name: str
    value: bytes | None


@dataclass(frozen=True)
class UnknownOperation:
    """A protocolOp this server does not implement, including responses sent by a client."""

    number: int

    @property
    def name(self) -> str:
        return OPERATION_NAMES.get(self.number, f"Application{self.number}")


Operation = (
    BindRequest
    | UnbindRequest
    | SearchRequest
    | ModifyRequest
    | AddRequest
    | DeleteRequest
    | ModifyDnRequest
    | CompareRequest
    | AbandonRequest
    | ExtendedRequest
    | UnknownOperation
)


@dataclass(frozen=True)
class LdapMessage:
    """One decoded LDAPMessage; the controls are accepted and ignored."""

    message_id: int
    operation: Operation


def decode_message(data: bytes) -> LdapMessage:
    """Decode one complete LDAPMessage; raise :class:`BerError` when it is invalid."""
    message = read_single(data)
    if not message.is_tag(CLASS_UNIVERSAL, 16) or not message.constructed:
        raise LdapDecodeError("an LDAPMessage must be a SEQUENCE")
    children = message.children()
    id_element = next(children, None)
    op_element = next(children, None)
    if id_element is None or op_element is None:
        raise LdapDecodeError("an LDAPMessage must contain a message ID and an operation")
    if not id_element.is_tag(CLASS_UNIVERSAL, 2):
        raise LdapDecodeError("the message ID of an LDAPMessage must be an INTEGER")
    message_id = id_element.as_integer(max_octets=5)
    if not 0 <= message_id <= MAX_MESSAGE_ID:
        raise LdapDecodeError(f"message ID {message_id} is out of range 0..{MAX_MESSAGE_ID}")
    if op_element.tag_class != CLASS_APPLICATION:
        raise LdapDecodeError(f"operation tag class {op_element.tag_class} is not APPLICATION")
    return LdapMessage(message_id, _decode_operation(op_element))


def _decode_operation(element: Element) -> Operation:
    number = element.number
    if number == UNBIND_REQUEST:
        return UnbindRequest()
    if number == DELETE_REQUEST:
        return DeleteRequest(element.as_bytes())
    if number == ABANDON_REQUEST:
        return AbandonRequest(element.as_integer(max_octets=5))
    decoder = _DECODERS.get(number)
    if decoder is None:
        return UnknownOperation(number)
    # No request has more than 8 fields. Elements after them are extensions
    # that RFC 4511 lets a server ignore, so they are not even decoded.
    return decoder(list(islice(element.children(), 8)))


def _need(parts: list[Element], count: int, name: str) -> None:
    if len(parts) < count:
        raise LdapDecodeError(f"a {name} request has only {len(parts)} of its {count} required elements")


def _pair(element: Element, name: str) -> tuple[Element, Element]:
    """Return the two elements of a two-element SEQUENCE without decoding a long list."""
    parts = list(islice(element.children(), 3))
    if len(parts) != 2:
        count = "more than 2" if len(parts) > 2 else str(len(parts))
        raise LdapDecodeError(f"{name} contains {count} elements instead of 2")
    return parts[0], parts[1]


def _decode_bind(parts: list[Element]) -> BindRequest:
    _need(parts, 3, "bind")
    version = parts[0].as_integer()
    name = parts[1].as_bytes()
    auth = parts[2]
    if auth.is_tag(CLASS_CONTEXT, _AUTH_SIMPLE):
        return BindRequest(version, name, "simple", auth.as_bytes())
    if auth.is_tag(CLASS_CONTEXT, _AUTH_SASL):
        sasl = list(islice(auth.children(), 2))
        if not sasl:
            raise LdapDecodeError("SASL credentials of a bind request contain no mechanism")
        credentials = sasl[1].as_bytes() if len(sasl) > 1 else None
        return BindRequest(version, name, "sasl", b"", sasl[0].as_bytes(), credentials)
    return BindRequest(version, name, "", auth.as_bytes() if not auth.constructed else b"")


def _decode_search(parts: list[Element]) -> SearchRequest:
    _need(parts, 8, "search")
    return SearchRequest(
        base=parts[0].as_bytes(),
        scope=parts[1].as_integer(),
        deref_aliases=parts[2].as_integer(),
        size_limit=parts[3].as_integer(),
        time_limit=parts[4].as_integer(),
        types_only=parts[5].as_boolean(),
        filter=parts[6],
        attributes=parts[7],
    )


def _decode_modify(parts: list[Element]) -> ModifyRequest:
    _need(parts, 2, "modify")
    return ModifyRequest(parts[0].as_bytes(), parts[1])


def _decode_add(parts: list[Element]) -> AddRequest:
    _need(parts, 2, "add")
    return AddRequest(parts[0].as_bytes(), parts[1])


def _decode_modify_dn(parts: list[Element]) -> ModifyDnRequest:
    _need(parts, 3, "modify DN")
    new_superior = parts[3].as_bytes() if len(parts) > 3 else None
    return ModifyDnRequest(parts[0].as_bytes(), parts[1].as_bytes(), parts[2].as_boolean(), new_superior)


def _decode_compare(parts: list[Element]) -> CompareRequest:
    _need(parts, 2, "compare")
    attribute, value = _pair(parts[1], "the assertion of a compare request")
    return CompareRequest(parts[0].as_bytes(), attribute.as_bytes(), value.as_bytes())


def _decode_extended(parts: list[Element]) -> ExtendedRequest:
    name: bytes | None = None
    value: bytes | None = None
    for part in parts:
        if part.is_tag(CLASS_CONTEXT, 0):
            name = part.as_bytes()
        elif part.is_tag(CLASS_CONTEXT, 1):
            value = part.as_bytes()
    if name is None:
        raise LdapDecodeError("an extended request has no request name")
    return ExtendedRequest(text_of(name), value)


_DECODERS: dict[int, Callable[[list[Element]], Operation]] = {
    BIND_REQUEST: _decode_bind,
    SEARCH_REQUEST: _decode_search,
    MODIFY_REQUEST: _decode_modify,
    ADD_REQUEST: _decode_add,
    MODIFY_DN_REQUEST: _decode_modify_dn,
    COMPARE_REQUEST: _decode_compare,
    EXTENDED_REQUEST: _decode_extended,
}


def dn_to_scan(operation: Operation) -> bytes | None:
    """Return the DN that may carry a correlation id: the bind DN or the search base DN."""
    if isinstance(operation, BindRequest):
        return operation.name
    if isinstance(operation, SearchRequest):
        return operation.base
    return None


def describe(operation: Operation, limit: int) -> tuple[str, bool]:
    """Render upstream's raw-request text of an operation, cut at ``limit`` characters.

    Returns the text and whether it was cut. Raises :class:`BerError` when a
    filter or list met while rendering is invalid.
    """
    out = CaptureText(limit)
    try:
        _write_description(operation, out)
    except CaptureFull:
        pass
    return out.text(), out.truncated


def _write_description(operation: Operation, out: CaptureText) -> None:
    if isinstance(operation, BindRequest):
        _describe_bind(operation, out)
    elif isinstance(operation, SearchRequest):
        _describe_search(operation, out)
    elif isinstance(operation, ModifyRequest):
        _describe_modify(operation, out)
    elif isinstance(operation, AddRequest):
        _describe_add(operation, out)
    elif isinstance(operation, DeleteRequest):
        out.add(f"Type=Delete\nEntity={text_of(operation.entry)}\n")
    elif isinstance(operation, CompareRequest):
        out.add("Type=Compare\n")
        out.add(f"Attribute name to compare={text_of(operation.attribute)}\n")
        out.add(f"Attribute value expected={text_of(operation.value)}\n")
    elif isinstance(operation, ExtendedRequest):
        _describe_extended(operation, out)
    elif isinstance(operation, AbandonRequest):
        out.add("Type=Abandon\n")
    elif isinstance(operation, ModifyDnRequest):
        _describe_modify_dn(operation, out)
    elif isinstance(operation, UnbindRequest):
        out.add("Type=Unbind\n")
    else:
        out.add(f"Type={operation.name}\n")


def _describe_bind(operation: BindRequest, out: CaptureText) -> None:
    out.add(f"Type=Bind\nAuthenticationChoice={operation.method}\nUser={text_of(operation.name)}\n")
    if operation.method == "sasl":
        # Go prints SASL credentials as a struct; they are often binary (NTLM, GSSAPI), so hex.
        credentials = "<nil>" if operation.sasl_credentials is None else operation.sasl_credentials.hex()
        out.add(f"Pass={{{text_of(operation.sasl_mechanism)} {credentials}}}\n")
    else:
        out.add(f"Pass={text_of(operation.password)}\n")


def _describe_search(operation: SearchRequest, out: CaptureText) -> None:
    out.add(f"Type=Search\nBaseDn={text_of(operation.base)}\nFilter=")
    render_filter_go(operation.filter, out)
    out.add("\nFilterString=")
    render_filter_string(operation.filter, out)
    out.add("\nAttributes=[")
    for index, attribute in enumerate(operation.attributes.children()):
        out.add((" " if index else "") + text_of(attribute.as_bytes()))
    out.add(f"]\nTimeLimit={operation.time_limit}\n")


def _describe_extended(operation: ExtendedRequest, out: CaptureText) -> None:
    if operation.name == OID_WHO_AM_I:
        out.add("Type=WhoAmI\n")
        return
    value = "" if operation.value is None else text_of(operation.value)
    out.add(f"Type=Extended\nName={operation.name}\nValue={value}\n")


def _describe_modify_dn(operation: ModifyDnRequest, out: CaptureText) -> None:
    superior = "" if operation.new_superior is None else text_of(operation.new_superior)
    out.add(f"Type=ModifyDN\nEntity={text_of(operation.entry)}\nNewRDN={text_of(operation.new_rdn)}\n")
    out.add(f"DeleteOldRDN={str(operation.delete_old_rdn).lower()}\nNewSuperior={superior}\n")


def _attribute(element: Element) -> tuple[bytes, Iterator[Element]]:
    """Split one ``SEQUENCE { type, SET OF value }`` into the type and an iterator over its values."""
    attribute_type, values = _pair(element, "an attribute")
    return attribute_type.as_bytes(), values.children()


def _describe_add(operation: AddRequest, out: CaptureText) -> None:
    out.add(f"Type=Add\nEntity={text_of(operation.entry)}\n")
    for attribute in operation.attributes.children():
        name, values = _attribute(attribute)
        out.add("")  # an attribute without values prints nothing but still costs a piece
        for value in values:
            out.add(f"Attribute Name={text_of(name)} Attribute Value={text_of(value.as_bytes())}\n")


def _describe_modify(operation: ModifyRequest, out: CaptureText) -> None:
    out.add(f"Type=Modify\nEntity={text_of(operation.entry)}\n")
    for change in operation.changes.children():
        code, modification = _pair(change, "a modify change")
        name, values = _attribute(modification)
        out.add(f"Operation={_MODIFY_OPERATIONS.get(code.as_integer(), '')} Attribute={text_of(name)} Values=[")
        for index, value in enumerate(values):
            out.add((" - " if index else "") + text_of(value.as_bytes()))
        out.add("]\n")
