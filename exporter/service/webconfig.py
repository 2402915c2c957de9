"""``promdrift exporter --web-config FILE``: TLS and basic authentication, in the web
configuration format every Prometheus exporter reads (the exporter-toolkit's)::

    tls_server_config:
      cert_file: /etc/promdrift/tls/tls.crt     # relative paths: to this file's directory
      key_file: /etc/promdrift/tls/tls.key
      client_ca_file: /etc/promdrift/tls/ca.crt # optional: clients must present a certificate
      client_auth_type: RequireAndVerifyClientCert   # the default with client_ca_file
      min_version: TLS12                        # the default
    basic_auth_users:                           # bcrypt hashes (htpasswd -nbBC 10 USER PASS)
      model-server: $2b$10$...

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "web.yml")
    >>> _ = open(path, "w").write("basic_auth_users:\\n  alice: not-a-hash\\n")
    >>> WebConfig.load(path)
    Traceback (most recent call last):
    ...
    promdrift.exporter.service.webconfig.WebConfigError: web config ...web.yml: basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)

Every file is read, and the certificate and key loaded, when the exporter starts: a bad file
is refused then with a message naming the key. Keys of the format that promdrift does not
implement (``cipher_suites``, ``curve_preferences``, ``client_allowed_sans``, inline ``cert``
/ ``key``, ``http_server_config``) are refused by name rather than ignored, and so are the
client authentication types that would accept a certificate without verifying it
(``RequestClientCert``, ``RequireAnyClientCert``: Python's TLS verifies every client
certificate it asks for). See docs/exporter.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from promdrift.extras import MissingExtra, require

__all__ = ["WebConfig", "WebConfigError", "BasicAuth", "TLS_VERSIONS", "CLIENT_AUTH_TYPES"]

#: ``min_version`` / ``max_version`` values.
TLS_VERSIONS: Dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
#: ``client_auth_type`` values promdrift implements, and what Python's ssl does for them.
CLIENT_AUTH_TYPES: Dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
             "max_version")
_UNSUPPORTED = {
    "tls_server_config": ("cert", "key", "cipher_suites", "curve_preferences",
                          "prefer_server_cipher_suites", "client_allowed_sans"),
    "": ("http_server_config", "rate_limit"),
}
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """A web configuration file that cannot be used, with the key at fault.

        >>> issubclass(WebConfigError, ValueError)
        True
    """


class BasicAuth:
    """``Authorization: Basic`` credentials checked against bcrypt hashes.

        >>> import bcrypt
        >>> auth = BasicAuth({"alice": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))})
        >>> auth.check("Basic " + base64.b64encode(b"alice:s3cret").decode())
        True
        >>> auth.check("basic " + base64.b64encode(b"alice:wrong").decode())
        False

    The scheme name is case-insensitive (RFC 7235). An unknown user costs one bcrypt check
    too, so answer times do not tell which users exist; a correct pair is remembered (by a
    SHA-256 of the password, at most 1,024 pairs), so a client sending the same credentials
    with every request pays bcrypt's cost once per process.
    """

    _CACHE = 1024

    def __init__(self, users: Mapping[str, Any]):
        require("exporter", "bcrypt", "bcrypt")
        import bcrypt
        self._bcrypt = bcrypt
        self.users = {str(u): (h.encode("ascii") if isinstance(h, str) else bytes(h))
                      for u, h in users.items()}
        self._dummy = next(iter(self.users.values()), None) or bcrypt.hashpw(
            b"promdrift", bcrypt.gensalt(4))
        self._known: Dict[bytes, bool] = {}
        self._lock = threading.Lock()

    def check(self, header: str) -> bool:
        """Whether an ``Authorization`` header names a user with its password."""
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(credentials.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        secret = password.encode("utf-8")
        key = hashlib.sha256(user.encode("utf-8") + b"\0" + secret).digest()
        if self._known.get(key):
            return True
        stored = self.users.get(user)
        ok = self._bcrypt.checkpw(secret, stored if stored is not None else self._dummy)
        ok = ok and stored is not None
        if ok:
            with self._lock:
                if len(self._known) >= self._CACHE:
                    self._known.clear()
                self._known[key] = True
        return ok


@dataclass(frozen=True)
class WebConfig:
    """A checked web configuration (:meth:`load` reads one).

        >>> WebConfig().ssl_context() is None, WebConfig().basic_auth() is None
        (True, True)
    """

    path: str = ""
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    client_ca_file: Optional[str] = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    users: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def _error(self, key: str, message: str) -> WebConfigError:
        return WebConfigError(f"web config {self.path}: {key}: {message}")

    @classmethod
    def load(cls, path: str) -> "WebConfig":
        """Read and check ``path`` (YAML): every key known, every file readable, the
        certificate and key a pair, every password hash a bcrypt hash."""
        require("exporter", "yaml", "PyYAML")
        import yaml
        where = cls(path=path)
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except OSError as e:
            raise WebConfigError(f"web config {path}: cannot read: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise WebConfigError(f"web config {path}: not YAML: {e}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise WebConfigError(f"web config {path}: must be a mapping of keys, "
                                 f"got {type(doc).__name__}")
        _check_keys(where, "", doc, ("tls_server_config", "basic_auth_users"))
        base = os.path.dirname(os.path.abspath(path))
        values: Dict[str, Any] = {"path": path}
        tls = doc.get("tls_server_config")
        if tls is not None:
            if not isinstance(tls, dict):
                raise where._error("tls_server_config", "must be a mapping")
            _check_keys(where, "tls_server_config", tls, _TLS_KEYS)
            for key in ("cert_file", "key_file", "client_ca_file"):
                value = tls.get(key)
                if value in (None, ""):
                    if key != "client_ca_file":
                        raise where._error(f"tls_server_config.{key}", "is required")
                    continue
                if not isinstance(value, str):
                    raise where._error(f"tls_server_config.{key}", "must be a file name")
                full = os.path.join(base, value)
                if not os.path.isfile(full) or not os.access(full, os.R_OK):
                    raise where._error(f"tls_server_config.{key}",
                                       f"{value} is not a readable file")
                values[key] = full
            for key, table in (("min_version", TLS_VERSIONS), ("max_version", TLS_VERSIONS)):
                if tls.get(key) not in (None, ""):
                    if tls[key] not in table:
                        raise where._error(f"tls_server_config.{key}",
                                           f"{tls[key]!r} is not one of {', '.join(table)}")
                    values[key] = tls[key]
            auth = tls.get("client_auth_type") or (
                "RequireAndVerifyClientCert" if values.get("client_ca_file") else "NoClientCert")
            if auth in _UNVERIFIED:
                raise where._error("tls_server_config.client_auth_type",
                                   f"{auth} is not supported: Python's TLS verifies every "
                                   "client certificate it asks for; use "
                                   "VerifyClientCertIfGiven or RequireAndVerifyClientCert "
                                   "with client_ca_file")
            if auth not in CLIENT_AUTH_TYPES:
                raise where._error("tls_server_config.client_auth_type",
                                   f"{auth!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
            if auth != "NoClientCert" and not values.get("client_ca_file"):
                raise where._error("tls_server_config.client_ca_file",
                                   f"is required with client_auth_type {auth}")
            if auth == "NoClientCert" and values.get("client_ca_file"):
                raise where._error("tls_server_config.client_auth_type",
                                   "NoClientCert with a client_ca_file: say which clients "
                                   "must present a certificate (RequireAndVerifyClientCert)")
            values["client_auth_type"] = auth
        users = doc.get("basic_auth_users")
        if users is not None:
            if not isinstance(users, dict):
                raise where._error("basic_auth_users", "must be a mapping of user: bcrypt hash")
            for user, hashed in users.items():
                if not isinstance(user, str) or not user or ":" in user:
                    raise where._error(f"basic_auth_users.{user}",
                                       "a user name is a non-empty string without ':'")
                if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
                    raise where._error(f"basic_auth_users.{user}",
                                       "not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)")
            try:
                require("exporter", "bcrypt", "bcrypt")
            except MissingExtra as e:
                raise where._error("basic_auth_users", str(e)) from None
            values["users"] = dict(users)
        config = cls(**values)
        config.ssl_context()  # the certificate, key and CA load now, or the start fails
        return config

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """A server TLS context of this configuration (``None`` without TLS)."""
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.minimum_version = TLS_VERSIONS[self.min_version]
            ctx.maximum_version = TLS_VERSIONS[self.max_version]
        except ValueError as e:
            raise self._error("tls_server_config.min_version", str(e)) from None
        if ctx.minimum_version > ctx.maximum_version:
            raise self._error("tls_server_config.max_version",
                              f"{self.max_version} is below min_version {self.min_version}")
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as e:
            raise self._error("tls_server_config.cert_file, key_file",
                              f"do not load as a PEM certificate and its key: {e.reason}") \
                from None
        ctx.verify_mode = CLIENT_AUTH_TYPES[self.client_auth_type]
        if self.client_ca_file:
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except ssl.SSLError as e:
                raise self._error("tls_server_config.client_ca_file",
                                  f"not a PEM CA certificate: {e.reason}") from None
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def basic_auth(self) -> Optional[BasicAuth]:
        """The checker of ``basic_auth_users`` (``None`` when there are none)."""
        return BasicAuth(self.users) if self.users else None


def _check_keys(config: WebConfig, section: str, doc: Mapping[str, Any], known) -> None:
    for key in doc:
        name = f"{section}.{key}" if section else str(key)
        if key in _UNSUPPORTED.get(section, ()):
            raise config._error(name, "is not supported by promdrift exporter (supported: "
                                f"{', '.join(known)})")
        if key not in known:
            raise config._error(name, f"unknown key (known: {', '.join(known)})")
