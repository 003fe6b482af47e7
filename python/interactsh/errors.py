"""Exception hierarchy shared by both store engines and the listeners.

Each class also subclasses the built-in exception a caller would catch, so
``except ValueError`` keeps working for code that does not know this package.
The Rust extension raises these same classes: ``rust/py`` maps every core
error to one of them in a single place.
"""


class InteractshError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidCorrelationIdError(InteractshError, ValueError):
    """The correlation id is not exactly ``cidl`` characters of ``[a-z0-9]``."""


class InvalidPublicKeyError(InteractshError, ValueError):
    """The registration's public key is not a usable RSA key."""


class InvalidAesModeError(InteractshError, ValueError):
    """The requested AES mode is neither ``ctr`` nor ``cfb``."""


class AlreadyRegisteredError(InteractshError, ValueError):
    """The correlation id is registered with a different secret."""


class SessionNotFoundError(InteractshError, LookupError):
    """The correlation id is unknown, or the secret does not match.

    The two cases share one class on purpose, so that the API cannot be used
    to learn which correlation ids exist.
    """


class StoreFullError(InteractshError, MemoryError):
    """The store cannot accept more data within its memory budget."""


class ConfigurationError(InteractshError, ValueError):
    """A configured file or option cannot be used (a certificate, a records file...)."""


class AcmeError(InteractshError, RuntimeError):
    """A certificate could not be obtained or stored through ACME."""
