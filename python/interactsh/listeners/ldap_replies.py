"""Encode the LDAP responses this server sends (RFC 4511 sections 4.1.9 to 4.14).

The replies follow upstream interactsh: every bind, add, modify and delete
succeeds, every compare is true, and every search returns one fixed entry
under the requested base DN.
"""

from __future__ import annotations

from enum import IntEnum

from interactsh.listeners.ber import (
    TAG_ENUMERATED,
    TAG_SEQUENCE,
    TAG_SET,
    encode_constructed,
    encode_integer,
    encode_octet_string,
)
from interactsh.listeners.ldap_ops import (
    OID_NOTICE_OF_DISCONNECTION,
    OID_START_TLS,
    AddRequest,
    BindRequest,
    CompareRequest,
    DeleteRequest,
    ExtendedRequest,
    LdapMessage,
    ModifyDnRequest,
    ModifyRequest,
    SearchRequest,
    UnknownOperation,
)

NOT_IMPLEMENTED = b"Operation not implemented by server"

# Identifier octets of the responses: APPLICATION class, constructed.
BIND_RESPONSE = 0x61
SEARCH_RESULT_ENTRY = 0x64
SEARCH_RESULT_DONE = 0x65
MODIFY_RESPONSE = 0x67
ADD_RESPONSE = 0x69
DELETE_RESPONSE = 0x6B
MODIFY_DN_RESPONSE = 0x6D
COMPARE_RESPONSE = 0x6F
EXTENDED_RESPONSE = 0x78
# Context tag of ExtendedResponse's optional responseName.
_RESPONSE_NAME = 0x8A

# The attributes of the entry every search returns, as upstream sends them.
SEARCH_ENTRY_ATTRIBUTES: tuple[tuple[bytes, tuple[bytes, ...]], ...] = (
    (b"mail", (b"interact@s.h", b"interact@s.h")),
    (b"company", (b"aaa",)),
    (b"department", (b"bbbb",)),
    (b"l", (b"cccc",)),
    (b"mobile", (b"123456789",)),
    (b"telephoneNumber", (b"123456789",)),
    (b"cn", (b"interact",)),
)
SEARCH_ENTRY_PREFIX = b"cn=interactsh, "


class ResultCode(IntEnum):
    """The LDAPResult codes of RFC 4511 section 4.1.9 that this server sends."""

    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    COMPARE_TRUE = 6
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53


def envelope(message_id: int, operation: bytes) -> bytes:
    """Wrap an encoded protocolOp in an LDAPMessage."""
    return encode_constructed(TAG_SEQUENCE, encode_integer(message_id), operation)


def ldap_result(tag: int, code: ResultCode, diagnostic: bytes = b"", *extensions: bytes) -> bytes:
    """Encode an LDAPResult with an empty matchedDN under the response tag ``tag``."""
    return encode_constructed(
        tag,
        encode_integer(code, TAG_ENUMERATED),
        encode_octet_string(b""),
        encode_octet_string(diagnostic),
        *extensions,
    )


def extended_response(message_id: int, code: ResultCode, name: str | None = None, diagnostic: bytes = b"") -> bytes:
    """Encode a complete ExtendedResponse message, with a responseName when ``name`` is given."""
    extensions = () if name is None else (encode_octet_string(name.encode(), _RESPONSE_NAME),)
    return envelope(message_id, ldap_result(EXTENDED_RESPONSE, code, diagnostic, *extensions))


def notice_of_disconnection(diagnostic: str) -> bytes:
    """Encode the unsolicited notice (message ID 0) that precedes closing a broken session."""
    return extended_response(0, ResultCode.PROTOCOL_ERROR, OID_NOTICE_OF_DISCONNECTION, diagnostic.encode())


def start_tls_response(message_id: int, available: bool) -> bytes:
    """Encode the StartTLS reply: success, or ``unavailable`` without a certificate (RFC 4511 section 4.14.2)."""
    if available:
        return extended_response(message_id, ResultCode.SUCCESS, OID_START_TLS)
    diagnostic = b"StartTLS is unavailable: the server has no certificate (-cert and -privkey)"
    return extended_response(message_id, ResultCode.UNAVAILABLE, OID_START_TLS, diagnostic)


def search_entry(message_id: int, base: bytes) -> bytes:
    """Encode the fixed SearchResultEntry named ``cn=interactsh, <base>``."""
    attributes = [
        encode_constructed(
            TAG_SEQUENCE,
            encode_octet_string(name),
            encode_constructed(TAG_SET, *(encode_octet_string(value) for value in values)),
        )
        for name, values in SEARCH_ENTRY_ATTRIBUTES
    ]
    entry = encode_constructed(
        SEARCH_RESULT_ENTRY,
        encode_octet_string(SEARCH_ENTRY_PREFIX + base),
        encode_constructed(TAG_SEQUENCE, *attributes),
    )
    return envelope(message_id, entry)


def replies_for(message: LdapMessage) -> list[bytes]:
    """Return the encoded responses to a request, in order; empty for unbind and abandon.

    StartTLS is not handled here because its reply depends on the certificate
    and is followed by the handshake.
    """
    operation = message.operation
    message_id = message.message_id
    if isinstance(operation, BindRequest):
        return [envelope(message_id, ldap_result(BIND_RESPONSE, ResultCode.SUCCESS))]
    if isinstance(operation, SearchRequest):
        done = envelope(message_id, ldap_result(SEARCH_RESULT_DONE, ResultCode.SUCCESS))
        return [search_entry(message_id, operation.base), done]
    if isinstance(operation, CompareRequest):
        return [envelope(message_id, ldap_result(COMPARE_RESPONSE, ResultCode.COMPARE_TRUE))]
    simple = _SIMPLE_SUCCESS.get(type(operation))
    if simple is not None:
        return [envelope(message_id, ldap_result(simple, ResultCode.SUCCESS))]
    if isinstance(operation, ExtendedRequest):
        return [extended_response(message_id, ResultCode.SUCCESS)]
    if isinstance(operation, ModifyDnRequest):
        response = ldap_result(MODIFY_DN_RESPONSE, ResultCode.UNWILLING_TO_PERFORM, NOT_IMPLEMENTED)
        return [envelope(message_id, response)]
    if isinstance(operation, UnknownOperation):
        # RFC 4511 has no generic response; an ExtendedResponse carries the
        # result for operations it does not define, as for unsolicited notices.
        response = ldap_result(EXTENDED_RESPONSE, ResultCode.UNWILLING_TO_PERFORM, NOT_IMPLEMENTED)
        return [envelope(message_id, response)]
    return []


_SIMPLE_SUCCESS: dict[type, int] = {
    AddRequest: ADD_RESPONSE,
    ModifyRequest: MODIFY_RESPONSE,
    DeleteRequest: DELETE_RESPONSE,
}
