"""API keys: who may call the service, checked in constant time.

Keys come from a file, one per line (blank lines and lines starting with
``#`` ignored). A client sends ``Authorization: Bearer KEY``; a browser that
signed in on the page sends the key back in an HttpOnly, SameSite=Strict
cookie instead, so ``/docs`` and the page work without a header. Every
stored key is compared with :func:`hmac.compare_digest`, and all of them are
compared on every request, so the time taken says nothing about which key
or how much of it matched.

Health probes stay open; a server bound to anything but a loopback address
must have keys unless it is started with ``--insecure``.
"""

import hmac
import ipaddress
from pathlib import Path

from featpipe.errors import FeatpipeError

KEY_COOKIE = "featpipe_key"
"""Name of the cookie the page's sign-in sets."""

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/login"})
"""Paths answered without a key: health probes and the page's sign-in."""


class KeyFileError(FeatpipeError):
    """An API key file that cannot be used."""


def read_api_keys(path):
    """The keys in ``path``, one per line.

    Raises
    ------
    KeyFileError
        When the file cannot be read or holds no key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read API key file {path}: {getattr(error, 'strerror', None) or error}") from None
    keys = [line.strip() for line in text.splitlines()]
    keys = [key for key in keys if key and not key.startswith("#")]
    if not keys:
        raise KeyFileError(f"API key file {path} holds no key (one key per line)")
    return keys


def is_loopback(host):
    """Whether binding ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host, keys, insecure):
    """Refuse to bind a non-loopback address without keys, unless ``insecure``."""
    if not keys and not insecure and not is_loopback(host):
        raise KeyFileError(
            f"binding {host} exposes the service to the network: give --api-key-file, "
            "or --insecure to serve without keys"
        )


class KeyChecker:
    """Says whether a request carries one of the keys (always yes when there are none)."""

    def __init__(self, keys=()):
        self._keys = [key.encode("utf-8") for key in keys]

    @property
    def enabled(self):
        """Whether keys are required at all."""
        return bool(self._keys)

    def matches(self, candidate):
        """Constant-time check of ``candidate`` against every key."""
        if candidate is None:
            return False
        offered = candidate.encode("utf-8", "surrogateescape")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(key, offered)
        return found

    def allows(self, headers, cookies):
        """Whether a request with these headers and cookies may proceed."""
        if not self.enabled:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        offered = token.strip() if scheme.lower() == "bearer" else cookies.get(KEY_COOKIE)
        return self.matches(offered)
