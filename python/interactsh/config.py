"""Server configuration: one dataclass that every component reads.

The CLI (``interactsh.cli``) fills it from flags, the ``-config`` YAML file
and the environment, then calls :meth:`ServerConfig.problems` once and
reports every invalid option together.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields

from interactsh.store.base import AES_MODES, StoreOptions

DAY_SECONDS = 86400.0
STORE_ENGINES = ("rust", "python")
EVICTION_STRATEGIES = ("sliding", "fixed")
LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
# Numeric fields with these prefixes, other than ports, are limits: each must
# be positive, except those in OPTIONAL_LIMITS, where 0 turns the limit off.
LIMIT_PREFIXES = ("max_", "http_", "dns_", "smtp_", "ldap_", "ftp_", "smb_", "memory_")
OPTIONAL_LIMITS = frozenset({"http_register_rate", "http_failure_rate"})


@dataclass
class ServerConfig:
    """Every option of the server, with the embedded defaults.

    The defaults start a server a user can try without root: loopback
    addresses, the test domain ``oast.test`` and unprivileged ports.
    """

    domains: list[str] = field(default_factory=lambda: ["oast.test"])
    ips: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    listen_ip: str = "127.0.0.1"
    dns_port: int = 8053
    http_port: int = 8080
    https_port: int = 8443
    smtp_port: int = 8025
    smtps_port: int = 8587
    smtp_autotls_port: int = 8465
    ldap_port: int = 8389
    ftp_port: int = 8021
    ftps_port: int = 8990
    smb_port: int = 8445

    eviction_days: float = 30.0
    no_eviction: bool = False
    eviction_strategy: str = "sliding"
    auth: bool = False
    token: str = ""
    acao_url: str = "*"
    cid_length: int = 20
    nonce_length: int = 13
    origin_ip_header: str = ""
    custom_records: str = ""
    metrics: bool = False
    server_header: str = ""
    disable_version: bool = False
    scan_everywhere: bool = False
    dynamic_resp: bool = False
    http_index: str = ""
    http_directory: str = ""
    default_http_response: str = ""
    ldap: bool = False
    wildcard: bool = False
    ftp: bool = False
    ftp_dir: str = ""
    smb: bool = False
    cert: str = ""
    privkey: str = ""
    skip_acme: bool = False
    acme_directory: str = LETSENCRYPT_DIRECTORY
    acme_ca_bundle: str = ""
    # Empty: admin@<first domain>.
    acme_email: str = ""
    acme_dir: str = "~/.local/share/interactsh/acme"
    debug: bool = False

    aes_mode: str = "ctr"
    store_engine: str = "rust"

    # Limits. Sizes are bytes, durations seconds.
    max_request_size: int = 64 * 1024
    max_register_body: int = 16 * 1024
    max_secret_length: int = 256
    max_session_items: int = 10_000
    max_session_bytes: int = 16 * 1024 * 1024
    max_shared_items: int = 10_000
    max_shared_bytes: int = 16 * 1024 * 1024
    max_poll_items: int = 5_000
    max_poll_bytes: int = 8 * 1024 * 1024
    http_header_timeout: float = 10.0
    max_dynamic_delay: float = 10.0
    # Bytes of a -http-index or -default-http-response file, which is held in memory.
    max_static_file_size: int = 1024 * 1024
    http_body_timeout: float = 30.0
    http_write_timeout: float = 30.0
    http_shutdown_timeout: float = 5.0
    http_tls_handshake_timeout: float = 10.0
    # Registrations, and failed polls or deregistrations, per minute per client address; 0 turns the limit off.
    http_register_rate: int = 600
    http_failure_rate: int = 600
    http_max_connections_per_ip: int = 256
    dns_tcp_idle_timeout: float = 10.0
    dns_tcp_max_connections_per_ip: int = 64
    dns_tcp_max_connections: int = 4096
    dns_udp_payload_limit: int = 1232
    smtp_max_message_size: int = 10 * 1024 * 1024
    smtp_max_line_length: int = 4096
    smtp_idle_timeout: float = 300.0
    smtp_max_recipients: int = 100
    smtp_max_connections: int = 1024
    smtp_max_connections_per_ip: int = 64
    smtp_max_unknown_commands: int = 5
    ldap_max_message_size: int = 1024 * 1024
    ldap_idle_timeout: float = 60.0
    ldap_max_connections: int = 1024
    ldap_max_connections_per_ip: int = 64
    ftp_max_connections: int = 256
    ftp_max_connections_per_ip: int = 16
    ftp_idle_timeout: float = 300.0
    ftp_transfer_timeout: float = 60.0
    ftp_max_line_length: int = 4096
    ftp_max_upload_size: int = 16 * 1024 * 1024
    smb_max_connections: int = 64
    smb_poll_interval: float = 1.0
    smb_log_max_bytes: int = 8 * 1024 * 1024
    smb_start_timeout: float = 60.0
    smb_restart_max_delay: float = 60.0
    # ACME timing: renew_before is days, the others seconds.
    acme_renew_before: float = 30.0
    acme_check_interval: float = DAY_SECONDS
    acme_order_timeout: float = 300.0
    acme_request_timeout: float = 30.0

    # Memory. max_memory is MiB; INTERACTSH_MEMORY_LIMIT sets it when the flag is absent, and the
    # cgroup limit caps it. INTERACTSH_GC_PERCENT sets gc_percent when its flag is absent.
    max_memory: int = 1024
    disable_memory_optimization: bool = False
    memory_sample_interval: float = 0.25
    # Seconds without a register or poll by its owner after which a session counts as idle: its
    # interactions may be evicted under memory pressure (idle_seconds), or the whole session
    # removed from medium pressure on (idle_expiry).
    memory_idle_seconds: float = 60.0
    memory_idle_expiry: float = 3600.0
    max_request_size_critical: int = 4 * 1024
    gc_percent: int = 100

    @property
    def ttl_seconds(self) -> float | None:
        """Return the session TTL in seconds, or ``None`` without eviction."""
        return None if self.no_eviction else self.eviction_days * DAY_SECONDS

    @property
    def auth_forced(self) -> bool:
        """Tell whether an option that upstream ties to auth is on."""
        return self.wildcard or self.ldap or self.ftp or self.smb

    @property
    def auth_token(self) -> str | None:
        """Return the token that the API requires, or ``None`` when auth is off."""
        return self.token or None

    def store_options(self) -> StoreOptions:
        """Return the store limits and policies this configuration asks for."""
        return StoreOptions(
            correlation_id_length=self.cid_length,
            aes_mode=self.aes_mode,  # type: ignore[arg-type]  # checked by problems()
            ttl_seconds=self.ttl_seconds,
            eviction_strategy=self.eviction_strategy,  # type: ignore[arg-type]  # checked by problems()
            max_session_items=self.max_session_items,
            max_session_bytes=self.max_session_bytes,
            max_shared_items=self.max_shared_items,
            max_shared_bytes=self.max_shared_bytes,
            max_page_items=self.max_poll_items,
            max_page_bytes=self.max_poll_bytes,
            # The memory manager sets the byte budget once it has read the effective limit.
            pooled=not self.disable_memory_optimization,
            idle_eviction_seconds=self.memory_idle_seconds,
        )

    def problems(self) -> list[str]:
        """Return one message per invalid option, naming the value and the fix."""
        found: list[str] = []
        if not self.domains:
            found.append("-domain is missing: pass the domain delegated to this server, e.g. -domain oast.example")
        for domain in self.domains:
            if not _is_domain_name(domain):
                found.append(f"-domain {domain!r} is not a valid DNS name: use labels of letters, digits and '-'")
        for ip in self.ips:
            if not _is_ip(ip):
                found.append(f"-ip {ip!r} is not an IPv4 or IPv6 address")
        if not _is_ip(self.listen_ip):
            found.append(f"-listen-ip {self.listen_ip!r} is not an IPv4 or IPv6 address")
        ports = (
            ("-dns-port", self.dns_port),
            ("-http-port", self.http_port),
            ("-https-port", self.https_port),
            ("-smtp-port", self.smtp_port),
            ("-smtps-port", self.smtps_port),
            ("-smtp-autotls-port", self.smtp_autotls_port),
            ("-ldap-port", self.ldap_port),
            ("-ftp-port", self.ftp_port),
            ("-ftps-port", self.ftps_port),
            ("-smb-port", self.smb_port),
        )
        for flag, port in ports:
            if not 0 <= port <= 65535:
                found.append(f"{flag} {port} is out of range: use 1-65535, or 0 for a free port")
        if self.eviction_days <= 0 and not self.no_eviction:
            found.append(f"-eviction {self.eviction_days} must be positive: use -no-eviction to keep sessions forever")
        if self.eviction_strategy not in EVICTION_STRATEGIES:
            found.append(f"-eviction-strategy {self.eviction_strategy!r} is invalid: use sliding or fixed")
        if self.cid_length < 3:
            found.append(f"-cidl {self.cid_length} is too small: the minimum is 3")
        if self.nonce_length < 3:
            found.append(f"-cidn {self.nonce_length} is too small: the minimum is 3")
        if self.cid_length + self.nonce_length > 63:
            total = self.cid_length + self.nonce_length
            found.append(
                f"-cidl {self.cid_length} plus -cidn {self.nonce_length} is {total}: a payload label "
                "must fit in one DNS label of 63 characters"
            )
        if self.aes_mode not in AES_MODES:
            found.append(f"-aes-mode {self.aes_mode!r} is invalid: use ctr or cfb")
        if self.store_engine not in STORE_ENGINES:
            found.append(f"-store-engine {self.store_engine!r} is invalid: use rust or python")
        found.extend(self._limit_problems())
        if self.gc_percent <= 0:
            found.append(f"-gc-percent {self.gc_percent} is invalid: use a positive whole number")
        found.extend(self._tls_problems())
        return found

    def _tls_problems(self) -> list[str]:
        found: list[str] = []
        if bool(self.cert) != bool(self.privkey):
            found.append("-cert and -privkey must be given together: pass both PEM files, or neither to use ACME")
        if not self.acme_directory.lower().startswith("https://"):
            found.append(f"-acme-directory {self.acme_directory!r} is invalid: ACME servers are reached over https://")
        if self.acme_email and (self.acme_email.count("@") != 1 or any(c in self.acme_email for c in " ,<>")):
            found.append(f"-acme-email {self.acme_email!r} is not an e-mail address: use the form name@example.com")
        for name in ("acme_renew_before", "acme_check_interval", "acme_order_timeout", "acme_request_timeout"):
            value = getattr(self, name)
            if not value > 0:
                flag = "-" + name.replace("_", "-")
                found.append(f"{flag} {value} is invalid: use a positive number")
        return found

    def _limit_problems(self) -> list[str]:
        found: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not spec.name.startswith(LIMIT_PREFIXES) or spec.name.endswith("_port") or isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)):
                continue
            flag = "-" + spec.name.replace("_", "-")
            if value < 0 or (value == 0 and spec.name not in OPTIONAL_LIMITS):
                allowed = "0 or more (0 turns it off)" if spec.name in OPTIONAL_LIMITS else "a positive number"
                found.append(f"{flag} {value} is invalid: use {allowed}")
        if not 512 <= self.dns_udp_payload_limit <= 4096:
            found.append(f"-dns-udp-payload-limit {self.dns_udp_payload_limit} is out of range: use 512-4096")
        return found


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_domain_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    if not text or len(text) > 253:
        return False
    return all(0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels)
