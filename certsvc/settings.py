"""Settings from `CERTSVC_*` environment variables, with defaults that run on one laptop."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from certsvc.log_config import LogFormat, LogLevel
from common.errors import ServiceFault
from verify.anchors import AnchorsInvalid, parse_fingerprints, read_anchors

ANCHORS_FILE = "trust-anchors.json"

ENV_PREFIX = "CERTSVC_"

SOFTHSM_MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def _default_softhsm_module() -> str:
    for candidate in SOFTHSM_MODULE_PATHS:
        if Path(candidate).exists():
            return candidate
    return SOFTHSM_MODULE_PATHS[0]


class WitnessSetting(BaseModel):
    """A witness the log asks for cosignatures (C2SP tlog-witness): its submission URL prefix
    and its vkey (type 0x04, Ed25519 cosignatures)."""

    url: str
    vkey: str

    @field_validator("url")
    @classmethod
    def _witness_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("url: must be an http(s) URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("url: no credentials, query or fragment")
        return value.rstrip("/")

    @field_validator("vkey")
    @classmethod
    def _witness_vkey(cls, value: str) -> str:
        from audit.witness_protocol import parse_witness_vkey

        parse_witness_vkey(value)  # InvalidNote is a ValueError: it names what is wrong
        return value.strip()


class Settings(BaseSettings):
    """Everything configurable; read once per process through `get_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(default=Path("./var"), description="where the embedded default writes")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default a SQLite file in home"
    )
    pkcs11_module: str = Field(
        default_factory=_default_softhsm_module, description="path of the PKCS#11 module"
    )
    hsm_simulation: bool = Field(
        default=True,
        description="wrap the module in hsm_sim (USBKey behaviour over SoftHSM); off in production",
    )
    hsm_profile: Literal["auto", "softhsm", "generic", "der-signatures", "raw-ec-point", "sm2"] = (
        Field(
            default="auto",
            description="how the module answers (signer.profile): auto detects it per token",
        )
    )
    pin_max_tries: int = Field(default=6, ge=1, le=15, description="wrong PINs before lockout")
    objection_workdays: int = Field(
        default=5,
        ge=1,
        le=30,
        description="working days a 公示 of conclusions takes objections (the notice sets none)",
    )
    hsm_latency_ms: float = Field(default=0.0, ge=0, description="simulated per-operation latency")
    public_base_url: str = "http://127.0.0.1:8000"
    service_pins_path: Path | None = Field(
        default=None, description="JSON file {token label: PIN} for the service's own tokens"
    )
    audit_checkpoint_events: int = Field(
        default=1000, ge=1, description="sign a checkpoint at least every this many events"
    )
    audit_checkpoint_seconds: float = Field(
        default=60, gt=0, description="…and at least this often while events arrive"
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="where the last signed checkpoint is kept outside the database; default "
        "home/audit-anchor (owner-only, never on the database's host or in its backups)",
    )
    audit_witnesses: list[WitnessSetting] = Field(
        default_factory=list,
        description='witnesses that cosign checkpoints, as JSON: [{"url": "https://…", "vkey": '
        '"<name>+<id>+<key>"}, …] (the name is the vkey\'s)',
    )
    audit_witness_quorum: int = Field(
        default=0, ge=0, description="cosignatures a checkpoint needs before it is published"
    )
    audit_tiles_dir: Path | None = Field(
        default=None,
        description="where the audit log is written as C2SP tlog-tiles after each published "
        "checkpoint, and served from under /audit/tiles/; unset: neither",
    )
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="login attempts per client per minute"
    )
    verify_rate_per_minute: int = Field(
        default=120, ge=1, description="public verification requests per client per minute"
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For/-Proto are believed; empty: none, the peer is the client",
    )
    body_contacts: str = Field(
        default="",
        max_length=2000,
        description="the body's own published contacts, separated by semicolons: consultation "
        "phones, addresses of its sites, its public web sites; announcements may carry them "
        "(四(二)), e.g. 0371-69691697; 郑州市金水区花园路88号; www.haedu.gov.cn",
    )
    system_hosts: str = Field(
        default="rdjg.jszg.edu.cn",
        max_length=1000,
        description="comma-separated hosts of the information systems staff log in to: never in "
        "an announcement (三(三)1)",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for rate limits shared by several workers"
    )
    public_database_url: str | None = Field(
        default=None,
        description="the DMZ's public database the register relay pushes into "
        "(`certsvc register relay`); unset: no relay",
    )
    relay_batch: int = Field(default=500, ge=1, le=10000, description="outbox rows per batch")
    relay_interval_seconds: float = Field(
        default=0.5, gt=0, le=60, description="how long the relay waits when the outbox is empty"
    )
    relay_max_backoff_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="longest wait between tries to reach the DMZ"
    )
    public_max_replica_lag_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a public node whose PostgreSQL replica is further behind than this says so "
        "on /healthz (503), so the balancer takes it out: it could still call a revoked "
        "certificate valid",
    )
    relay_keep_relayed: int = Field(
        default=10000,
        ge=0,
        description="relayed outbox rows kept inside (the newest) after the public database "
        "confirmed them; older ones are deleted. Never a row not yet relayed",
    )
    public_static_dir: Path | None = Field(
        default=None,
        description="where the relay writes the trust list, the revocation lists, the audit "
        "checkpoint and tiles as static files for nginx or a CDN; unset: not written",
    )
    relay_lag_alert_seconds: int = Field(
        default=300, ge=1, description="`certsvc status` needs attention past this relay lag"
    )
    log_format: LogFormat = Field(
        default="json", description="server log lines: one JSON object each, or plain text"
    )
    log_level: LogLevel = "info"
    body_code: str = Field(
        default="410000", pattern=r"^[0-9]{6}$", description="certifying body's 6-digit code"
    )
    body_name: str = Field(default="河南省教育厅（演示）", min_length=2, max_length=64)
    trust_anchors: str = Field(
        default="",
        description="SHA-256 fingerprints (hex, comma-separated) of the body's root "
        "certificates; empty: the ones `certsvc init` pinned in home/trust-anchors.json",
    )
    api_token_days: int = Field(default=90, ge=1, le=366)
    request_max_skew_seconds: int = Field(default=300, ge=10, le=3600)
    signing_session_minutes: float = Field(
        default=480, gt=0, le=1440, description="absolute life of a signing session"
    )
    office_hours_start: int = Field(
        default=8, ge=0, le=23, description="custodians' signing before this hour (China time)"
    )
    office_hours_end: int = Field(
        default=18,
        ge=1,
        le=24,
        description="…or from this hour, or on a day the work calendar says is not a working "
        "day, is an alert for the security officer",
    )
    reveal_spike: int = Field(
        default=50, ge=1, description="one person's reveals in a day that make an alert"
    )
    signing_idle_minutes: float = Field(
        default=15, gt=0, le=480, description="a signing session unused this long closes"
    )
    console_idle_minutes: float = Field(
        default=15, gt=0, le=480, description="a console session unused this long ends"
    )
    console_absolute_minutes: float = Field(
        default=480, gt=0, le=1440, description="a console session ends this long after sign-in"
    )
    vault_key_cache_seconds: float = Field(
        default=300, ge=0, description="unwrapped vault data keys are fetched again this often"
    )
    vault_reveal_limit: int = Field(
        default=20, ge=1, le=10000, description="values one person may reveal per window"
    )
    vault_reveal_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    vault_lookup_limit: int = Field(
        default=100,
        ge=1,
        le=100000,
        description="values one person may look up by exact match per window",
    )
    vault_lookup_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    vault_lookup_alert_misses: int = Field(
        default=20,
        ge=1,
        le=100000,
        description="lookup misses by one person in the window that raise a security alert",
    )
    print_reveal_limit: int = Field(
        default=200,
        ge=1,
        le=10000,
        description="holder names one custodian may reveal by printing certificates per window",
    )
    print_reveal_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    vault_rotation_grace_seconds: float = Field(
        default=10, ge=0, description="pause before values move to a new key version"
    )
    password_hash_profile: Literal["production", "test"] = Field(
        default="production",
        description="Argon2id cost: RFC 9106 low-memory; 'test' is cheap, for the test suite only",
    )

    @model_validator(mode="after")
    def _office_hours(self) -> Settings:
        if self.office_hours_start >= self.office_hours_end:
            raise ValueError(
                f"{ENV_PREFIX}OFFICE_HOURS_START must be before {ENV_PREFIX}OFFICE_HOURS_END,"
                " e.g. 8 and 18"
            )
        return self

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Settings:
        if self.audit_witness_quorum > len(self.audit_witnesses):
            raise ValueError(
                f"{ENV_PREFIX}AUDIT_WITNESS_QUORUM: more cosignatures than witnesses in "
                f"{ENV_PREFIX}AUDIT_WITNESSES"
            )
        names = [setting.vkey.partition("+")[0] for setting in self.audit_witnesses]
        if len(set(names)) != len(names):
            raise ValueError(f"{ENV_PREFIX}AUDIT_WITNESSES: two witnesses with the same name")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        """QR codes carry this address: a phone opens it only with its scheme and host."""
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """Each entry an address or network: a typo must not silently trust nobody, or all."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError("must list IP addresses or networks separated by commas") from None
        return ",".join(entries)

    @field_validator("trust_anchors")
    @classmethod
    def _fingerprints(cls, value: str) -> str:
        try:
            return ",".join(sorted(parse_fingerprints(value)))
        except AnchorsInvalid as exc:
            raise ValueError(str(exc)) from None

    @field_validator("system_hosts")
    @classmethod
    def _host_names(cls, value: str) -> str:
        """Host names, not URLs: the checker compares them with the hosts it reads."""
        entries = [entry.strip().lower() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if not re.fullmatch(r"[a-z0-9.-]+(?::[0-9]{1,5})?", entry):
                raise ValueError("must list host names separated by commas, e.g. rdjg.jszg.edu.cn")
        return ",".join(entries)

    @field_validator("redis_url")
    @classmethod
    def _redis_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def contacts(self) -> tuple[str, ...]:
        """`body_contacts` as a list."""
        return tuple(c.strip() for c in self.body_contacts.split(";") if c.strip())

    @property
    def system_host_list(self) -> tuple[str, ...]:
        """`system_hosts` as a list."""
        return tuple(h.strip() for h in self.system_hosts.split(",") if h.strip())

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'certsvc.db'}"

    @property
    def hsm_dir(self) -> Path:
        """SoftHSM config, token directory and the USBKey simulation state."""
        return self.resolved_home / "hsm"

    @property
    def signing_claims_dir(self) -> Path:
        """Which process holds each USBKey's signing session (`signer.claims`)."""
        return self.resolved_home / "signing-sessions"

    @property
    def audit_origin(self) -> str:
        """The audit log's name in its checkpoints (a schema-less URL, C2SP style)."""
        host = urlsplit(self.public_base_url).netloc or "certsvc.invalid"
        return f"{host}/certsvc/{self.body_code}/audit"

    @property
    def audit_anchor_path(self) -> Path:
        """The audit log's anchor (`audit.anchor`): out of the database administrator's reach."""
        return self.audit_anchor_dir or self.resolved_home / "audit-anchor"

    @property
    def service_pins_file(self) -> Path:
        """PINs of the tokens the service itself logs in to, unattended (audit checkpoints,
        vault keys) — never a custodian's. Owner-only; in production, a secret mount, and by
        default beside `CERTSVC_HOME`, not in it: a copy of the home (tokens, database) must
        not carry the PINs that open it. The simulation keeps it in the home, whose demo
        credentials file holds every PIN anyway."""
        if self.service_pins_path is not None:
            return self.service_pins_path.expanduser().resolve()
        if self.hsm_simulation:
            return self.resolved_home / "service-pins.json"
        home = self.resolved_home
        return home.parent / f"{home.name}-secrets" / "service-pins.json"

    @property
    def trust_anchors_file(self) -> Path:
        """The root fingerprints `certsvc init` pinned, outside the database."""
        return self.resolved_home / ANCHORS_FILE

    @property
    def register_watermark_file(self) -> Path:
        """The newest trust and revocation list versions this node has used (`verify.proof`):
        never the database's, so a rolled-back register is refused after a restart too."""
        return self.resolved_home / "register-watermark.json"

    def pinned_anchors(self) -> frozenset[str]:
        """The trust anchors: `trust_anchors` when set, else the pinned file's (empty when
        neither: then no trust list opens, and nothing public verifies — fail closed)."""
        if self.trust_anchors:
            return parse_fingerprints(self.trust_anchors)
        return read_anchors(self.trust_anchors_file)

    @property
    def console_key_file(self) -> Path:
        """The AES key sealing the console's TOTP secrets: beside the service PIN file (a
        secret mount in production), so neither the database nor a copy of the home opens
        them."""
        return self.service_pins_file.parent / "console-totp.key"

    @property
    def credentials_file(self) -> Path:
        """Demo credentials written by `certsvc init`, readable only by its owner."""
        return self.resolved_home / "credentials.json"


class SettingsInvalid(ServiceFault):
    """A `CERTSVC_*` variable holds a value the service cannot use; the message names each
    variable, says what is wrong and shows a good value — never the value given, which may be
    a URL with a password."""

    def __init__(self, error: ValidationError) -> None:
        problems = []
        for item in error.errors(include_url=False, include_input=False):
            message = item["msg"].removeprefix("Value error, ")
            if not item["loc"]:  # a rule across fields names them itself
                problems.append(message)
                continue
            field = str(item["loc"][0])
            variable = ENV_PREFIX + field.upper()
            problems.append(f"{variable}: {message} (e.g. {variable}={_example(field)})")
        super().__init__("; ".join(problems))


def _example(field: str) -> str:
    """A good value for `field`: its default, or one for fields without a plain default."""
    examples = {
        "public_base_url": "https://verify.example.edu.cn",
        "redis_url": "redis://127.0.0.1:6379/0",
        "trusted_proxies": "10.0.0.5,10.1.0.0/24",
        "database_url": "postgresql+psycopg://certsvc@127.0.0.1/certsvc",
        "audit_witnesses": '[{"url": "https://witness.example.cn", "vkey": "<name>+<id>+<key>"}]',
        "trust_anchors": "<64 hex digits: SHA-256 of the root certificate's DER>",
    }
    if field in examples:
        return examples[field]
    default = Settings.model_fields[field].default if field in Settings.model_fields else None
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings from the environment; `SettingsInvalid` names every bad variable."""
    global _settings
    if _settings is None:
        try:
            _settings = Settings()
        except ValidationError as exc:
            raise SettingsInvalid(exc) from None
    return _settings


def reset_settings() -> None:
    """Forget the cached settings; tests change the environment between cases."""
    global _settings
    _settings = None
