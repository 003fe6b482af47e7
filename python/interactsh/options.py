"""The command-line flags: upstream's names and short forms, and this server's own.

Each :class:`Flag` names the :class:`~interactsh.config.ServerConfig` field it
sets, so the command line, the ``-config`` YAML file (keys are the long flag
names) and the help text come from one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FlagKind = Literal["str", "int", "float", "bool", "list"]


@dataclass(frozen=True)
class Flag:
    """One command-line option."""

    names: tuple[str, ...]
    field: str
    kind: FlagKind
    help: str

    @property
    def long_name(self) -> str:
        """Return the longest name without its dash, the key used in YAML files."""
        return max(self.names, key=len).lstrip("-")


FLAGS: tuple[Flag, ...] = (
    # Input.
    Flag(("-d", "-domain"), "domains", "list", "domains served, comma separated; the first is the primary one"),
    Flag(("-i", "-ip"), "ips", "list", "IPv4/IPv6 addresses returned in DNS answers, comma separated"),
    Flag(("-lip", "-listen-ip"), "listen_ip", "str", "address every listener binds"),
    Flag(("-e", "-eviction"), "eviction_days", "float", "days a session lives without activity by its owner"),
    Flag(("-ne", "-no-eviction"), "no_eviction", "bool", "never expire sessions"),
    Flag(
        ("-es", "-eviction-strategy"),
        "eviction_strategy",
        "str",
        "sliding (TTL from the last register or poll) or fixed (TTL from registration)",
    ),
    Flag(("-a", "-auth"), "auth", "bool", "require a token on the API, generating one when -token is absent"),
    Flag(("-t", "-token"), "token", "str", "token the API requires in the Authorization header"),
    Flag(("-acao-url",), "acao_url", "str", "value of the Access-Control-Allow-Origin header"),
    Flag(
        ("-se", "-scan-everywhere"),
        "scan_everywhere",
        "bool",
        "also look for ids in HTTP headers and bodies and in whole DNS messages",
    ),
    Flag(("-cidl", "-correlation-id-length"), "cid_length", "int", "length of correlation ids (characters)"),
    Flag(
        ("-cidn", "-correlation-id-nonce-length"),
        "nonce_length",
        "int",
        "length of the nonce after the correlation id (characters)",
    ),
    Flag(
        ("-oih", "-origin-ip-header"),
        "origin_ip_header",
        "str",
        "HTTP header that holds the client address behind a reverse proxy",
    ),
    # Config.
    Flag(("-cr", "-custom-records"), "custom_records", "str", "YAML file of custom DNS records"),
    Flag(
        ("-dr", "-dynamic-resp"),
        "dynamic_resp",
        "bool",
        "let query parameters shape HTTP responses (status, header, body, b64_body, delay)",
    ),
    Flag(
        ("-hi", "-http-index"),
        "http_index",
        "str",
        "file served at / when the host has no id; {DOMAIN} becomes the domain",
    ),
    Flag(("-hd", "-http-directory"), "http_directory", "str", "directory whose files are served under /s/"),
    Flag(
        ("-dhr", "-default-http-response"),
        "default_http_response",
        "str",
        "file served as the body of every captured HTTP request; {DOMAIN} becomes the domain",
    ),
    Flag(("-csh", "-server-header"), "server_header", "str", "value of the HTTP Server header"),
    Flag(("-dv", "-disable-version"), "disable_version", "bool", "leave out the X-Interactsh-Version header"),
    Flag(
        ("-aes-mode",),
        "aes_mode",
        "str",
        "cipher of polled interactions: ctr (clients since 1.3.0) or cfb (older clients)",
    ),
    Flag(("-store-engine",), "store_engine", "str", "interaction store: rust (default) or python"),
    # Services.
    Flag(("-dns-port",), "dns_port", "int", "DNS port, UDP and TCP (0 picks a free port)"),
    Flag(("-http-port",), "http_port", "int", "HTTP port (0 picks a free port)"),
    Flag(("-https-port",), "https_port", "int", "HTTPS port, served when a certificate is available"),
    Flag(("-smtp-port",), "smtp_port", "int", "SMTP port"),
    Flag(
        ("-smtps-port",), "smtps_port", "int", "SMTP submission port, offering STARTTLS when a certificate is available"
    ),
    Flag(
        ("-smtp-autotls-port",),
        "smtp_autotls_port",
        "int",
        "SMTP port with implicit TLS, served when a certificate is available",
    ),
    Flag(("-ldap-port",), "ldap_port", "int", "LDAP port"),
    Flag(("-ldap",), "ldap", "bool", "record every LDAP operation into the token bucket (turns auth on)"),
    Flag(
        ("-wc", "-wildcard"),
        "wildcard",
        "bool",
        "record every interaction under the domains into tlddata (turns auth on)",
    ),
    Flag(("-ftp",), "ftp", "bool", "start the FTP server, recording into the token bucket (turns auth on)"),
    Flag(("-ftp-port",), "ftp_port", "int", "FTP port"),
    Flag(("-ftps-port",), "ftps_port", "int", "FTPS port (implicit TLS), served when a certificate is available"),
    Flag(("-ftp-dir",), "ftp_dir", "str", "directory the FTP server shows; a fresh empty one when absent"),
    Flag(("-smb",), "smb", "bool", "start the SMB server (impacket), recording into the token bucket (turns auth on)"),
    Flag(("-smb-port",), "smb_port", "int", "SMB port"),
    Flag(("-cert",), "cert", "str", "TLS certificate file (PEM) used instead of ACME"),
    Flag(("-privkey",), "privkey", "str", "TLS private key file (PEM) used instead of ACME"),
    Flag(
        ("-sa", "-skip-acme"),
        "skip_acme",
        "bool",
        "do not request a certificate with ACME (TLS services then need -cert and -privkey)",
    ),
    Flag(
        ("-acme-directory",),
        "acme_directory",
        "str",
        "URL of the ACME server's directory (default: Let's Encrypt production)",
    ),
    Flag(
        ("-acme-ca-bundle",),
        "acme_ca_bundle",
        "str",
        "PEM file of CA certificates to trust for the ACME server instead of the system's",
    ),
    Flag(("-acme-email",), "acme_email", "str", "contact e-mail of the ACME account (default: admin@<first domain>)"),
    Flag(("-acme-dir",), "acme_dir", "str", "directory of the ACME account key and the issued certificate"),
    # Limits.
    Flag(("-max-request-size",), "max_request_size", "int", "bytes of an HTTP request body and head that are recorded"),
    Flag(
        ("-max-session-items",),
        "max_session_items",
        "int",
        "queued interactions a session keeps before dropping the oldest",
    ),
    Flag(
        ("-max-session-bytes",), "max_session_bytes", "int", "queued bytes a session keeps before dropping the oldest"
    ),
    Flag(
        ("-max-shared-bytes",),
        "max_shared_bytes",
        "int",
        "bytes each shared bucket (extra, tlddata) keeps before dropping the oldest",
    ),
    Flag(("-max-poll-items",), "max_poll_items", "int", "interactions one poll returns at most"),
    Flag(("-max-poll-bytes",), "max_poll_bytes", "int", "plaintext bytes one poll returns at most"),
    Flag(("-max-register-body",), "max_register_body", "int", "bytes of a /register request body"),
    Flag(("-max-secret-length",), "max_secret_length", "int", "characters of a client secret sent to /register"),
    Flag(
        ("-http-header-timeout",), "http_header_timeout", "float", "seconds an HTTP client has to send the request head"
    ),
    Flag(("-http-body-timeout",), "http_body_timeout", "float", "seconds an HTTP client has to send the whole body"),
    Flag(
        ("-http-write-timeout",),
        "http_write_timeout",
        "float",
        "seconds a poll reply waits for the client to read more of it; then its interactions stay queued",
    ),
    Flag(
        ("-http-shutdown-timeout",),
        "http_shutdown_timeout",
        "float",
        "seconds open HTTP connections get to finish at shutdown",
    ),
    Flag(
        ("-http-tls-handshake-timeout",),
        "http_tls_handshake_timeout",
        "float",
        "seconds an HTTPS client has to complete the TLS handshake",
    ),
    Flag(
        ("-http-register-rate",),
        "http_register_rate",
        "int",
        "registrations per minute per client address (0 turns the limit off)",
    ),
    Flag(
        ("-http-failure-rate",),
        "http_failure_rate",
        "int",
        "failed polls and deregistrations per minute per client address (0 turns the limit off)",
    ),
    Flag(
        ("-http-max-connections-per-ip",),
        "http_max_connections_per_ip",
        "int",
        "open HTTP connections per client address",
    ),
    Flag(
        ("-max-dynamic-delay",), "max_dynamic_delay", "float", "longest delay=<seconds> a dynamic response may ask for"
    ),
    Flag(
        ("-max-static-file-size",),
        "max_static_file_size",
        "int",
        "bytes of a -http-index or -default-http-response file",
    ),
    Flag(("-dns-tcp-idle-timeout",), "dns_tcp_idle_timeout", "float", "seconds an idle DNS TCP connection stays open"),
    Flag(
        ("-dns-tcp-max-connections-per-ip",),
        "dns_tcp_max_connections_per_ip",
        "int",
        "open DNS TCP connections per client address",
    ),
    Flag(("-dns-tcp-max-connections",), "dns_tcp_max_connections", "int", "open DNS TCP connections in total"),
    Flag(
        ("-dns-udp-payload-limit",),
        "dns_udp_payload_limit",
        "int",
        "largest DNS reply over UDP with EDNS (bytes, 512-4096)",
    ),
    Flag(("-smtp-max-message-size",), "smtp_max_message_size", "int", "bytes of an SMTP message, advertised as SIZE"),
    Flag(("-smtp-max-line-length",), "smtp_max_line_length", "int", "bytes of an SMTP command or text line"),
    Flag(("-smtp-idle-timeout",), "smtp_idle_timeout", "float", "seconds an idle SMTP connection stays open"),
    Flag(("-smtp-max-recipients",), "smtp_max_recipients", "int", "recipients per SMTP transaction"),
    Flag(("-smtp-max-connections",), "smtp_max_connections", "int", "open SMTP connections in total"),
    Flag(
        ("-smtp-max-connections-per-ip",),
        "smtp_max_connections_per_ip",
        "int",
        "open SMTP connections per client address",
    ),
    Flag(
        ("-smtp-max-unknown-commands",),
        "smtp_max_unknown_commands",
        "int",
        "unknown SMTP commands before the connection is closed",
    ),
    Flag(("-ldap-max-message-size",), "ldap_max_message_size", "int", "bytes of one LDAP message"),
    Flag(("-ldap-idle-timeout",), "ldap_idle_timeout", "float", "seconds an idle LDAP connection stays open"),
    Flag(("-ldap-max-connections",), "ldap_max_connections", "int", "open LDAP connections in total"),
    Flag(
        ("-ldap-max-connections-per-ip",),
        "ldap_max_connections_per_ip",
        "int",
        "open LDAP connections per client address",
    ),
    Flag(("-ftp-max-connections",), "ftp_max_connections", "int", "open FTP connections in total"),
    Flag(
        ("-ftp-max-connections-per-ip",), "ftp_max_connections_per_ip", "int", "open FTP connections per client address"
    ),
    Flag(("-ftp-idle-timeout",), "ftp_idle_timeout", "float", "seconds an idle FTP connection stays open"),
    Flag(("-ftp-transfer-timeout",), "ftp_transfer_timeout", "float", "seconds one FTP data transfer may take"),
    Flag(("-ftp-max-line-length",), "ftp_max_line_length", "int", "bytes of an FTP command line"),
    Flag(
        ("-ftp-max-upload-size",),
        "ftp_max_upload_size",
        "int",
        "bytes of an FTP upload that are read before it is cut off",
    ),
    Flag(("-smb-max-connections",), "smb_max_connections", "int", "open SMB connections in total"),
    Flag(("-smb-poll-interval",), "smb_poll_interval", "float", "seconds between reads of the SMB server's log"),
    Flag(("-smb-log-max-bytes",), "smb_log_max_bytes", "int", "bytes the SMB log may grow to before it is rotated"),
    Flag(("-smb-start-timeout",), "smb_start_timeout", "float", "seconds the SMB server has to start"),
    Flag(
        ("-smb-restart-max-delay",),
        "smb_restart_max_delay",
        "float",
        "longest wait in seconds before the SMB server is restarted",
    ),
    Flag(
        ("-acme-renew-before",),
        "acme_renew_before",
        "float",
        "days before expiry at which the ACME certificate is renewed",
    ),
    Flag(
        ("-acme-check-interval",),
        "acme_check_interval",
        "float",
        "seconds between checks whether the ACME certificate is due for renewal",
    ),
    Flag(
        ("-acme-order-timeout",),
        "acme_order_timeout",
        "float",
        "seconds one ACME certificate order may take, validation included",
    ),
    Flag(
        ("-acme-request-timeout",), "acme_request_timeout", "float", "seconds one request to the ACME server may take"
    ),
    # Memory.
    Flag(
        ("-max-memory",),
        "max_memory",
        "int",
        "memory limit of the process in MiB (default 1024, or INTERACTSH_MEMORY_LIMIT); a lower cgroup limit wins; the store gets up to 60 %",
    ),
    Flag(
        ("-disable-memory-optimization",),
        "disable_memory_optimization",
        "bool",
        "turn off slab pools, the memory budget, the pressure monitor and GC tuning",
    ),
    Flag(
        ("-memory-sample-interval",),
        "memory_sample_interval",
        "float",
        "seconds between samples of the resident memory size",
    ),
    Flag(
        ("-memory-idle-seconds",),
        "memory_idle_seconds",
        "float",
        "seconds without a register or poll after which a session's interactions may be evicted under memory pressure",
    ),
    Flag(
        ("-memory-idle-expiry",),
        "memory_idle_expiry",
        "float",
        "seconds without a register or poll after which a session is removed under memory pressure",
    ),
    Flag(
        ("-gc-percent",),
        "gc_percent",
        "int",
        "Python's generation-0 GC threshold in percent of its default of 700 (default 100, or INTERACTSH_GC_PERCENT)",
    ),
    Flag(
        ("-max-request-size-critical",),
        "max_request_size_critical",
        "int",
        "bytes of a request that are recorded while memory pressure is critical",
    ),
    # Debug.
    Flag(("-metrics",), "metrics", "bool", "serve /metrics"),
    Flag(("-debug",), "debug", "bool", "log at debug level, including every interaction"),
)
