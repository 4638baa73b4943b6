"""One settings object, built once from flags, the environment and a TOML file.

Precedence: flags beat the environment, the environment beats the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from media.storage import StorageOptions
from transcoder.ladder import parse_av1_heights
from transcoder.per_title import parse_mode as parse_ladder_mode
from transcoder.sources import parse_source_reads

ENV_PREFIX = "STREAMFLIX_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _default_database_url() -> str:
    return "postgresql://postgres@127.0.0.1:5432/streamflix"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key starts with this, so two deployments (or two test runs) can share a server.
    redis_prefix: str = "sf:"
    storage_url: str = ""  # resolved in __post_init__ from data_dir
    s3_endpoint_url: str | None = None
    # Storage calls run in the backend's own pool of this many threads (never asyncio's
    # default executor); a call waits at most storage_wait_s for a free one, else 503.
    storage_threads: int = 16
    storage_wait_s: float = 1.0
    # S3 timeouts and attempts per call (botocore's defaults are 60 s, retried); a storage read
    # on any backend is awaited at most s3_read_timeout_s.
    s3_connect_timeout_s: float = 2.0
    s3_read_timeout_s: float = 5.0
    s3_max_attempts: int = 2
    # After storage fails to answer, storage-backed requests answer 503 at once for this long;
    # then one request probes it (docs/origin.md, "When storage stops answering").
    storage_breaker_s: float = 2.0
    # A segment of a version still being encoded (a progressive model) that is not in storage
    # yet: the origin asks for it to be made first and waits this long for it, then answers
    # 503 segment_not_ready (players give up on a first byte after about 10 s).
    segment_wait_s: float = 8.0
    # Password hashing (argon2) runs in its own pool, so logins never queue behind storage.
    password_threads: int = 4
    data_dir: str = "./var"
    secret_key: str = ""  # resolved from the data dir when empty
    previous_secret_keys: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    smtp_url: str | None = None
    # Playback URLs stay valid until the end of the window their expiry is rounded up to.
    playback_window_s: int = 6 * 3600
    # Progressive MP4 downloads (docs/tracks.md): off here, no title offers one; on, each
    # title's own `downloads_enabled` decides.
    downloads: bool = True
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Largest source `ingest` will download from a URL or accept from disk.
    max_source_bytes: int = 20 * 1024**3
    job_max_attempts: int = 3
    job_lease_s: int = 60
    # A job whose storage or database was unreachable is deferred (no attempt spent) for this
    # long, doubling each time up to job_defer_max_s, for as long as the outage lasts.
    job_defer_base_s: int = 10
    job_defer_max_s: int = 120
    transcode_timeout_s: int = 6 * 3600
    segment_duration_s: int = 4
    x264_preset: str = "veryfast"
    # A title's encode is split into tasks of this many segments (all rungs at once), which
    # any worker may claim; see docs/transcode.md for how it trades latency and throughput.
    chunk_segments: int = 8
    # A long title's audio is encoded in parts of about this many segments (rounded to the AAC
    # frame grid), so a viewer's far seek waits for one part, not for the whole timeline's
    # audio; 0: one audio task per rendition, however long the title (docs/transcode.md).
    audio_part_segments: int = 30
    # ffmpeg threads per task (0: ffmpeg's choice, about one per core). 1 with one worker per
    # core (`taskset`) gives the best throughput on a many-core machine.
    encoder_threads: int = 0
    # Seconds between seek thumbnails (docs/tracks.md); 0: 2 s under 10 minutes, 5 s longer.
    thumbnail_interval_s: float = 0.0
    # Rung heights that also get an AV1 copy ("720,1080"; empty: H.264 only), see
    # docs/transcode.md "AV1". A title's `ingest --av1` replaces it.
    av1_rungs: tuple[str, ...] = ()
    # "per-title": a complexity probe of the source chooses each rung's bitrate and drops the
    # rungs not worth a switch; "fixed": every title gets the table's ladder (docs/transcode.md
    # "Per-title ladder").
    ladder: str = "per-title"
    # How workers read a source on S3 before they have a copy: "ranged" (presigned URLs, for
    # S3, MinIO and any server that answers a range without reading the whole object) or
    # "download" (a copy first: for servers such as moto that read it all for every range).
    source_reads: str = "ranged"
    # Rate limits: N requests per `rate_limit_window_s` (60 s: "per min").
    # Per client IP, and per account (the email's uniqueness key) on login, register, reset.
    rate_limit_login_per_min: int = 10
    rate_limit_login_account_per_min: int = 10
    rate_limit_register_per_min: int = 5
    rate_limit_register_account_per_min: int = 3
    rate_limit_reset_per_min: int = 5
    rate_limit_reset_account_per_min: int = 3
    rate_limit_verify_account_per_min: int = 3
    rate_limit_api_per_min: int = 600
    # timed comments a person may post (server/api/comments.py)
    rate_limit_comments_per_min: int = 10
    rate_limit_window_s: int = 60
    # Sender of verification and reset mail (smtp_url: smtp://user:pass@host:port, smtps://).
    mail_from: str = "StreamFlix <no-reply@localhost>"
    max_body_bytes: int = 1024 * 1024
    # The API's bound on Postgres: connecting, waiting for a pooled connection, and each
    # statement. Past it a request answers 503 (database_unavailable) instead of hanging on a
    # database that accepts connections but never answers.
    db_timeout_s: float = 5.0
    # Load balancers / CDNs in front (addresses or CIDR blocks, comma-separated in the
    # environment): from them, the client is read from X-Forwarded-For (server/http/clientip.py).
    trusted_proxies: tuple[str, ...] = ()
    # URLs the server calls for users (webhooks, ingest from a URL) must resolve to public
    # addresses (media/outbound.py); set for receivers on a private network, and in tests.
    outbound_allow_private: bool = False
    # Webhook deliveries: first retry after this (doubling, capped at an hour, for a day), each
    # try bounded by the timeout; every `serve` process sends, polling this often when idle.
    webhook_retry_base_s: float = 30.0
    webhook_timeout_s: float = 10.0
    webhook_poll_s: float = 1.0
    # The real-time socket, /api/v1/ws (docs/realtime.md). Connection limits count per
    # `serve` process. The first message must authenticate within realtime_auth_timeout_s; the
    # session is checked against revocation every realtime_revocation_check_s.
    realtime_auth_timeout_s: float = 5.0
    realtime_revocation_check_s: float = 5.0
    realtime_heartbeat_s: float = 20.0
    realtime_max_msg_bytes: int = 4096
    # Messages waiting for one slow client; past it (or a send stuck this long) it is dropped.
    realtime_send_queue: int = 64
    realtime_send_timeout_s: float = 10.0
    realtime_max_per_user: int = 8
    realtime_max_per_ip: int = 64
    # Inbound messages per connection: a burst of realtime_msg_burst, then this many a second.
    realtime_msgs_per_s: float = 5.0
    realtime_msg_burst: int = 20
    # Malformed messages tolerated (each answered with an error) before the socket is closed.
    realtime_bad_messages: int = 3
    # Watch parties (server/realtime/parties.py): a party nobody is connected to expires after
    # party_idle_s; one whose host's socket closed ends after party_host_grace_s (a reload
    # comes back within it).
    party_idle_s: float = 600.0
    party_host_grace_s: float = 10.0
    # Every `serve` process turns title events into notifications, polling this often when
    # idle (0: this process does not).
    notifications_poll_s: float = 1.0
    debug: bool = False

    def __post_init__(self) -> None:
        data_dir = str(Path(self.data_dir).resolve())
        object.__setattr__(self, "data_dir", data_dir)
        if not self.storage_url:
            object.__setattr__(self, "storage_url", "file://" + str(Path(data_dir) / "media"))
        if not (isinstance(self.db_timeout_s, int | float) and 0 < self.db_timeout_s < float("inf")):
            raise ConfigError(
                f"STREAMFLIX_DB_TIMEOUT_S must be a positive number of seconds, not {self.db_timeout_s!r}"
            )
        for name in ("chunk_segments",):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"STREAMFLIX_{name.upper()} must be a whole number >= 1, not {getattr(self, name)!r}")
        if not (isinstance(self.audio_part_segments, int) and self.audio_part_segments >= 0):
            raise ConfigError(
                f"STREAMFLIX_AUDIO_PART_SEGMENTS must be 0 (no parts) or more, not {self.audio_part_segments!r}"
            )
        if not (isinstance(self.encoder_threads, int) and self.encoder_threads >= 0):
            raise ConfigError(f"STREAMFLIX_ENCODER_THREADS must be 0 (automatic) or more, not {self.encoder_threads!r}")
        try:
            parse_av1_heights(self.av1_rungs)
        except ValueError as exc:
            raise ConfigError(f"STREAMFLIX_AV1_RUNGS: {exc}") from None
        try:
            object.__setattr__(self, "ladder", parse_ladder_mode(str(self.ladder)))
        except ValueError as exc:
            raise ConfigError(f"STREAMFLIX_LADDER: {exc}") from None
        try:
            object.__setattr__(self, "source_reads", parse_source_reads(str(self.source_reads)))
        except ValueError as exc:
            raise ConfigError(f"STREAMFLIX_SOURCE_READS {exc}") from None
        if not (isinstance(self.thumbnail_interval_s, int | float) and 0 <= self.thumbnail_interval_s <= 3600):
            raise ConfigError(
                "STREAMFLIX_THUMBNAIL_INTERVAL_S must be 0 (by the title's length) or a number of seconds up to "
                f"3600, not {self.thumbnail_interval_s!r}"
            )
        if not (isinstance(self.segment_wait_s, int | float) and 0 <= self.segment_wait_s < float("inf")):
            raise ConfigError(
                f"STREAMFLIX_SEGMENT_WAIT_S must be a number of seconds (0 or more), not {self.segment_wait_s!r}"
            )
        for name in (
            "realtime_max_msg_bytes",
            "realtime_send_queue",
            "realtime_max_per_user",
            "realtime_max_per_ip",
            "realtime_msg_burst",
            "realtime_bad_messages",
        ):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"STREAMFLIX_{name.upper()} must be a whole number >= 1, not {getattr(self, name)!r}")
        for name in (
            "realtime_auth_timeout_s",
            "realtime_revocation_check_s",
            "realtime_heartbeat_s",
            "realtime_send_timeout_s",
            "realtime_msgs_per_s",
            "party_idle_s",
            "party_host_grace_s",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < float("inf")):
                raise ConfigError(f"STREAMFLIX_{name.upper()} must be a positive number, not {value!r}")
        try:
            parse_networks(tuple(self.trusted_proxies))
        except ValueError as exc:
            raise ConfigError(f"STREAMFLIX_TRUSTED_PROXIES: {exc}") from None

    @property
    def av1_heights(self) -> tuple[int, ...]:
        return parse_av1_heights(self.av1_rungs)

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        """`trusted_proxies` parsed (validated in __post_init__, cached per value)."""
        return parse_networks(tuple(self.trusted_proxies))

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        config_file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge file < environment < flags (`overrides`, None values ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if config_file:
            values.update(_from_toml(Path(config_file)))
        values.update(_from_env(env))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        settings = cls(**values)
        if "database_url" not in values:
            # scripts/setup.sh leaves a DSN here when the local Postgres needs a password.
            saved = Path(settings.data_dir) / "database_url"
            if saved.is_file():
                settings = dataclasses.replace(settings, database_url=saved.read_text().strip())
        if not settings.secret_key:
            settings = dataclasses.replace(settings, secret_key=_dev_secret(Path(settings.data_dir)))
        return settings

    @property
    def storage_options(self) -> StorageOptions:
        return StorageOptions(
            threads=self.storage_threads,
            wait_s=self.storage_wait_s,
            connect_timeout_s=self.s3_connect_timeout_s,
            read_timeout_s=self.s3_read_timeout_s,
            max_attempts=self.s3_max_attempts,
        )

    @property
    def work_dir(self) -> Path:
        return Path(self.data_dir) / "work"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@lru_cache(maxsize=8)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses and CIDR blocks, parsed; ValueError names the first entry that is neither."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR block: {entry!r}") from None
    return tuple(out)


def _coerce(name: str, raw: Any) -> Any:
    f = _FIELDS[name]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if isinstance(raw, str):
        try:
            if kind == "int":
                return int(raw)
            if kind == "float":
                return float(raw)
        except ValueError:
            what = "a whole number" if kind == "int" else "a number"
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be {what}, not {raw!r}") from None
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind.startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if "None" in kind and raw == "":
            return None
    if kind.startswith("tuple") and isinstance(raw, list):
        return tuple(raw)
    return raw


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        key = ENV_PREFIX + name.upper()
        if key in env:
            out[name] = _coerce(name, env[key])
    return out


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    section = data.get("streamflix", data)
    out: dict[str, Any] = {}
    for key, raw in section.items():
        name = key.lower().removeprefix("streamflix_")
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r} in {path}")
        out[name] = _coerce(name, raw)
    return out


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # first writer wins when two processes start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    print(
        f"warning: STREAMFLIX_SECRET_KEY is not set; using a generated key stored in {path}",
        file=sys.stderr,
    )
    return path.read_text().strip()


class ConfigError(Exception):
    code = "bad_config"
