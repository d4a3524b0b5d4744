"""Settings: the YAML file an admin writes, turned into typed, validated values.

This is the one place where configuration is checked. Every error names the key path
(`node.poll_interval_ms`), what was found and what was expected, and nothing starts with
a config that did not load whole. Without a file the embedded defaults (DEFAULT_CONFIG) run
against a local regtest node; a file must name at least the pool's payout address.
"""

from __future__ import annotations

import math
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from pool.accounting import scheme_registry
from pool.alerts.kinds import KINDS
from pool.chain.addresses import NETWORKS, AddressError, address_to_script
from pool.errors import FieldError
from pool.netlists import parse_networks
from pool.units import MAX_MONEY_SAT, percent_to_ppm

T = TypeVar("T")

#: Most a coinbase scriptSig may hold (consensus: 2..100 bytes).
MAX_SCRIPTSIG = 100
#: The largest BIP34 height push: 4 bytes of height plus its push opcode (heights < 2**31).
_HEIGHT_PUSH_MAX = 5


class ConfigError(FieldError):
    """A configuration value that is missing, of the wrong type or out of range."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message, prefix="config: ")

    @property
    def path(self) -> str:
        """The key path of the value (`listeners[0].port`), or the file."""
        return self.where


@dataclass(frozen=True)
class NodeSettings:
    """How to reach the node and how to learn of new blocks."""

    url: str = "http://farmpool:farmpool@127.0.0.1:18443"
    rpc_timeout_s: float = 30.0
    segwit: bool | None = None  # None: ask the node (auto)
    zmq_hashblock: str | None = None
    longpoll: bool = True
    poll_interval_ms: int = 500
    refresh_interval_s: float = 30.0

    @property
    def redacted_url(self) -> str:
        """The URL without its password, for logs and errors."""
        return redact_url(self.url)


@dataclass(frozen=True)
class PayoutOutput:
    """One coinbase reward output: an address and its share of the reward in percent."""

    address: str
    script: bytes
    percent: int


@dataclass(frozen=True)
class CoinbaseSettings:
    """What the pool writes into every coinbase."""

    outputs: tuple[PayoutOutput, ...]
    tag: bytes = b"/farmpool/"
    extranonce1_size: int = 4
    extranonce2_size: int = 4
    tx_version: int = 2


@dataclass(frozen=True)
class VardiffSettings:
    """Per-session difficulty retargeting (see docs/stratum.md for why these defaults)."""

    enabled: bool = True
    target_share_interval_s: float = 5.0
    min_shares: int = 12
    max_window_s: float = 60.0
    tolerance: float = 2.0


@dataclass(frozen=True)
class ListenerSettings:
    """One stratum port: where it listens, which site it serves, its difficulty bounds."""

    name: str
    site: str
    port: int
    bind: str = "0.0.0.0"
    public_host: str | None = None
    start_difficulty: float = 8192.0
    min_difficulty: float = 512.0
    max_difficulty: float = float(2**32)
    vardiff: VardiffSettings = VardiffSettings()
    #: stratum+ssl: the PEM certificate (chain) and private key files; None: plain TCP.
    tls_certificate: str | None = None
    tls_key: str | None = None
    #: The listener sits behind a load balancer that sends a PROXY protocol (v1 or v2)
    #: header first: its source address is the miner's, for limits and bans.
    proxy_protocol: bool = False
    #: Addresses or CIDR blocks of the load balancers whose PROXY header is believed; a
    #: connection from anywhere else to a proxy_protocol listener is refused.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class BanSettings:
    """Closing a session that floods the pool with invalid shares or messages, and banning
    its worker or its address when that keeps happening (pool/stratum/admission.py)."""

    #: A session whose invalid shares and messages reach this (weighted) within window_s is
    #: closed.
    invalid_shares: int = 100
    window_s: float = 60.0
    #: How long a worker (at one address) or an address stays banned.
    ban_s: float = 600.0
    #: What a stale share (unknown job) counts toward invalid_shares.
    stale_weight: float = 0.1
    #: Sessions closed within window_s before the worker (the same one again) or the address
    #: (as many different workers or unauthorized sessions) is banned.
    sessions_per_address: int = 3


@dataclass(frozen=True)
class StratumSettings:
    """Protocol limits and behaviour shared by every listener."""

    version_mask: int = 0x1FFFE000
    max_line_bytes: int = 8192
    subscribe_timeout_s: float = 30.0
    max_connections_per_ip: int = 1000
    difficulty_grace_s: float = 15.0
    ntime_ahead_s: int = 7200
    reconnect_wait_s: int = 5
    #: A session that sends nothing for this long is closed (0: never).
    idle_timeout_s: float = 900.0
    #: A client that does not read what the pool sends: closed once this much waits for it.
    max_send_buffer_bytes: int = 1 << 20
    #: Workers one connection may authorize (proxies authorize several).
    max_workers_per_session: int = 64
    #: Addresses or CIDR blocks that are never banned (a farm site's NAT address, say).
    trusted_networks: tuple[str, ...] = ()
    ban: BanSettings = BanSettings()


@dataclass(frozen=True)
class TenantSettings:
    """A tenant of the farm; miners authorize as `tenant.worker`."""

    name: str
    payout_address: str | None = None
    payout_script: bytes | None = None
    fee_ppm: int | None = None  # overrides payout.fee_percent
    payout_threshold_sat: int | None = None  # overrides payout.threshold_sat
    solo: bool = False  # takes the blocks it finds; its shares count in no one else's split


#: The reward schemes (docs/payouts.md; their properties: pool/accounting/scheme_registry.py).
SCHEMES = scheme_registry.NAMES


@dataclass(frozen=True)
class PayoutSettings:
    """How found blocks become money: the scheme, fee, maturity and the wallet payouts."""

    scheme: str = "pplns"
    #: PPLNS window: the last `pplns_n` x network difficulty of share difficulty.
    pplns_n: Decimal = Decimal(2)
    #: The pool fee in parts per million of the reward (1 % = 10000); tenants may override.
    fee_ppm: int = 10_000
    #: Confirmations after which a block's credits are payable (coinbase maturity).
    maturity: int = 100
    #: Smallest mature balance paid out, in satoshis; tenants may override.
    threshold_sat: int = 1_000_000
    #: Tenants paid by one wallet transaction at most.
    outputs_per_tx: int = 100
    #: The network fee rate of payout transactions, satoshis per virtual byte.
    fee_rate_sat_vb: int = 2
    #: The wallet's JSON-RPC URL (None: the node's); bcoin serves its wallet on another port.
    wallet_url: str | None = None
    #: Which wallet API: auto (asks the node), core (Bitcoin Core / SV), bcoin.
    wallet: str = "auto"
    #: bcoin's wallet id.
    wallet_id: str = "primary"
    #: FPPS: the transaction fees of a block are averaged over this many blocks before it.
    fpps_fee_window: int = 144
    #: How often `serve` runs the block tracker (and PPS crediting), in seconds; 0: never.
    tracker_interval_s: float = 30.0


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API, /metrics and the dashboard (pool/api/)."""

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 8080
    #: The operator's bearer token: the admin endpoints (bans, kick) and, unless
    #: public_read, the read endpoints and the dashboard's data; None: they are off.
    admin_token: str | None = None
    #: Anyone who reaches the API may read the operator's endpoints (every tenant's
    #: workers, balances, addresses): only for a pool on localhost.
    public_read: bool = False
    #: Seconds between the hashrate samples the dashboard draws (a day of them is kept).
    sample_s: float = 60.0


@dataclass(frozen=True)
class LedgerSettings:
    """The durable share writer."""

    batch_max: int = 5000
    retry_s: float = 2.0


@dataclass(frozen=True)
class WebhookSettings:
    """Where events are POSTed (JSON), and which."""

    url: str
    #: Only these kinds (empty: every kind).
    kinds: tuple[str, ...] = ()
    #: Only events of these tenants (empty: every event, the operator's too).
    tenants: tuple[str, ...] = ()
    #: Signs each body: header X-Farmpool-Signature: sha256=HMAC-SHA256(secret, body) in hex.
    secret: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    """Events and their webhooks (pool/alerts/)."""

    #: A worker that sent no share for this long is down (or for 3 of its usual intervals
    #: between shares, if that is longer).
    worker_down_after_s: float = 600.0
    #: Per tenant: (name, worker_down_after_s).
    tenant_worker_down_after_s: tuple[tuple[str, float], ...] = ()
    #: A tenant's hashrate over the last window below (1 - this) x its baseline: an event.
    hashrate_drop_fraction: float = 0.5
    hashrate_window_s: float = 600.0
    hashrate_baseline_s: float = 3600.0
    #: The Bitcoin node failing this long: node_unreachable.
    node_down_after_s: float = 30.0
    webhooks: tuple[WebhookSettings, ...] = ()
    #: Deliveries waiting at most (more are left in the database for later).
    queue_max: int = 1000
    #: Tries per delivery round (backoff 1, 2, 4 ... s) before the round gives up.
    retries: int = 5

    def down_after(self, tenant: str) -> float:
        return dict(self.tenant_worker_down_after_s).get(tenant, self.worker_down_after_s)


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    network: str
    node: NodeSettings
    coinbase: CoinbaseSettings
    stratum: StratumSettings = StratumSettings()
    sites: tuple[str, ...] = ("main",)
    listeners: tuple[ListenerSettings, ...] = ()
    tenants: tuple[TenantSettings, ...] = ()
    database_url: str = "sqlite:///farmpool.sqlite3"
    data_dir: str = "farmpool-data"
    node_name: str = field(default_factory=socket.gethostname)
    ledger: LedgerSettings = LedgerSettings()
    payout: PayoutSettings = PayoutSettings()
    api: ApiSettings = ApiSettings()
    alerts: AlertSettings = AlertSettings()
    log_level: str = "info"
    source: str = "<embedded defaults>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***; works on malformed ports and IPv6 hosts."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


# --- a small reader that knows the path of every value --------------------------------------


class _Section:
    """A mapping from the YAML file plus its key path; takes values out one by one."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path or "<top>", f"expected a mapping, got {_kind(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(path or "<top>", f"keys must be text, got {key!r}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, default: T, check: Callable[[str, Any], T]) -> T:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            return default
        return check(self.key(name), self.data[name])

    def section(self, name: str) -> _Section:
        self.used.add(name)
        return _Section(self.data.get(name), self.key(name))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise ConfigError(self.key(unknown[0]), f"unknown key (known here: {known})")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _text(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected text, got {_kind(value)}")
    return value


def _flag(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {_kind(value)}")
    return value


_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number(lo: float, hi: float) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        # PyYAML (YAML 1.1) reads `1e-5` as text: accept text that is plainly a number.
        if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"expected a number from {lo} to {hi}, got {_kind(value)}")
        if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
            raise ConfigError(path, f"expected a number from {lo} to {hi}, got {value}")
        return float(value)

    return check


def _integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                path, f"expected a whole number from {lo} to {hi}, got {_kind(value)}"
            )
        if not lo <= value <= hi:
            raise ConfigError(path, f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    return check


def _choice(*options: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(path, f"expected one of {', '.join(options)}; got {_kind(value)}")
        return str(value)

    return check


def _rpc_url(path: str, value: Any) -> str:
    text = _text(path, value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            path, f"expected http://user:password@host:port, got {redact_url(text)!r}"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(path, f"bad port in {redact_url(text)!r}") from exc
    if port is None:
        raise ConfigError(path, f"the URL needs the node's RPC port: {redact_url(text)!r}")
    if parts.username is None or parts.password is None:
        raise ConfigError(path, "the URL needs the RPC user and password (http://user:pass@...)")
    return text


def _zmq_url(path: str, value: Any) -> str:
    text = _text(path, value)
    match = re.fullmatch(r"tcp://[^\s:]+:(\d{1,5})|ipc://\S+", text)
    if not match or (match.group(1) is not None and not 0 < int(match.group(1)) < 65536):
        raise ConfigError(path, f"expected tcp://HOST:PORT or ipc://PATH, got {text!r}")
    return text


def _segwit(path: str, value: Any) -> bool | None:
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ConfigError(path, f"expected auto, true or false, got {_kind(value)}")


def _tag_limit(extranonce_size: int) -> int:
    """Longest tag that fits the scriptSig beside the height and extranonce pushes."""
    room = MAX_SCRIPTSIG - _HEIGHT_PUSH_MAX - (1 + extranonce_size)
    return room - 1 if room - 1 <= 75 else room - 2  # OP_PUSHDATA1 above 75 bytes


def _tag(extranonce_size: int) -> Callable[[str, Any], bytes]:
    def check(path: str, value: Any) -> bytes:
        raw = _text(path, value).encode()
        limit = _tag_limit(extranonce_size)
        if len(raw) > limit:
            raise ConfigError(
                path,
                f"the pool tag may be at most {limit} bytes with {extranonce_size} bytes of "
                f"extranonce, got {len(raw)}",
            )
        return raw

    return check


# --- sections ----------------------------------------------------------------------------------


def _node(sec: _Section) -> NodeSettings:
    d = NodeSettings()
    node = NodeSettings(
        url=sec.take("url", d.url, _rpc_url),
        rpc_timeout_s=sec.take("rpc_timeout_s", d.rpc_timeout_s, _number(0.5, 600)),
        segwit=sec.take("segwit", d.segwit, _segwit),
        zmq_hashblock=sec.take("zmq_hashblock", d.zmq_hashblock, _zmq_url),
        longpoll=sec.take("longpoll", d.longpoll, _flag),
        poll_interval_ms=sec.take("poll_interval_ms", d.poll_interval_ms, _integer(50, 60_000)),
        refresh_interval_s=sec.take("refresh_interval_s", d.refresh_interval_s, _number(1, 120)),
    )
    sec.finish()
    return node


def _outputs(path: str, value: Any, network: str) -> tuple[PayoutOutput, ...]:
    if isinstance(value, str):
        value = [{"address": value, "percent": 100}]
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"expected an address or a list of outputs, got {_kind(value)}")
    outputs = []
    for i, item in enumerate(value):
        sec = _Section(item, f"{path}[{i}]")
        address = sec.take("address", "", _text)
        if not address:
            raise ConfigError(sec.key("address"), "missing: a payout address is required")
        try:
            script = address_to_script(address, network)
        except AddressError as exc:
            raise ConfigError(sec.key("address"), str(exc)) from exc
        percent = sec.take("percent", 100, _integer(1, 100))
        sec.finish()
        outputs.append(PayoutOutput(address, script, percent))
    total = sum(o.percent for o in outputs)
    if total != 100:
        raise ConfigError(path, f"the outputs' percent values must add up to 100, got {total}")
    return tuple(outputs)


def _coinbase(sec: _Section, network: str) -> CoinbaseSettings:
    if "payout_address" not in sec.data:
        raise ConfigError(
            sec.key("payout_address"),
            f"missing: the pool's {network} address that block rewards are paid to",
        )
    sec.used.add("payout_address")
    outputs = _outputs(sec.key("payout_address"), sec.data["payout_address"], network)
    en1 = sec.take("extranonce1_size", 4, _integer(2, 8))
    en2 = sec.take("extranonce2_size", 4, _integer(2, 8))
    cb = CoinbaseSettings(
        outputs=outputs,
        tag=sec.take("tag", CoinbaseSettings.tag, _tag(en1 + en2)),
        extranonce1_size=en1,
        extranonce2_size=en2,
        tx_version=sec.take("tx_version", 2, _integer(1, 2)),
    )
    sec.finish()
    return cb


#: Names of sites, tenants and listeners: letters, digits, `_` and `-`.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _name(path: str, value: Any) -> str:
    text = _text(path, value)
    if not NAME_PATTERN.fullmatch(text):
        raise ConfigError(path, f"expected 1-64 letters, digits, _ or -, got {text!r}")
    return text


def _node_name(path: str, value: Any) -> str:
    text = _text(path, value)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        raise ConfigError(path, f"expected 1-64 letters, digits, '.', '_' or '-', got {text!r}")
    return text


def _hex_u32(path: str, value: Any) -> int:
    text = _text(path, value)
    if not re.fullmatch(r"[0-9a-fA-F]{8}", text):
        raise ConfigError(path, f"expected 8 hex digits, got {text!r}")
    return int(text, 16)


def _names(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"expected a list of names, got {_kind(value)}")
    names = tuple(_name(f"{path}[{i}]", v) for i, v in enumerate(value))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{path}[{i}]", f"{name!r} is listed twice")
    return names


def _vardiff(sec: _Section) -> VardiffSettings:
    d = VardiffSettings()
    v = VardiffSettings(
        enabled=sec.take("enabled", d.enabled, _flag),
        target_share_interval_s=sec.take(
            "target_share_interval_s", d.target_share_interval_s, _number(0.05, 600)
        ),
        min_shares=sec.take("min_shares", d.min_shares, _integer(1, 10_000)),
        max_window_s=sec.take("max_window_s", d.max_window_s, _number(1, 3600)),
        tolerance=sec.take("tolerance", d.tolerance, _number(1.05, 100)),
    )
    sec.finish()
    return v


def _listener(path: str, item: Any, sites: tuple[str, ...]) -> ListenerSettings:
    sec = _Section(item, path)
    name = sec.take("name", "", _name)
    if not name:
        raise ConfigError(sec.key("name"), "missing: every listener needs a name")
    site = sec.take("site", sites[0], _name)
    if site not in sites:
        raise ConfigError(sec.key("site"), f"unknown site {site!r} (sites: {', '.join(sites)})")
    if "port" not in sec.data:
        raise ConfigError(sec.key("port"), "missing: the TCP port to listen on")
    port = sec.take("port", 0, _integer(0, 65535))
    d = ListenerSettings(name=name, site=site, port=port)
    diff = sec.section("difficulty")
    positive = _number(1e-12, 1e15)
    start = diff.take("start", d.start_difficulty, positive)
    low = diff.take("min", min(d.min_difficulty, start), positive)
    high = diff.take("max", max(d.max_difficulty, start), positive)
    diff.finish()
    if not low <= start <= high:
        raise ConfigError(
            diff.path,
            f"expected min <= start <= max, got min {low:g}, start {start:g}, max {high:g}",
        )
    listener = ListenerSettings(
        name=name,
        site=site,
        port=port,
        bind=sec.take("bind", d.bind, _text),
        public_host=sec.take("public_host", None, _text),
        start_difficulty=start,
        min_difficulty=low,
        max_difficulty=high,
        vardiff=_vardiff(sec.section("vardiff")),
        proxy_protocol=sec.take("proxy_protocol", False, _flag),
        trusted_proxies=sec.take("trusted_proxies", (), _networks),
    )
    if listener.proxy_protocol and not listener.trusted_proxies:
        raise ConfigError(
            sec.key("trusted_proxies"),
            "missing: a proxy_protocol listener believes PROXY headers only from these "
            "addresses or CIDR blocks (its load balancers)",
        )
    if listener.trusted_proxies and not listener.proxy_protocol:
        raise ConfigError(sec.key("trusted_proxies"), "only for a listener with proxy_protocol")
    if "tls" in sec.data:
        certificate, key = _tls(sec.section("tls"))
        listener = replace(listener, tls_certificate=certificate, tls_key=key)
    sec.finish()
    return listener


def _tls(sec: _Section) -> tuple[str, str]:
    """The certificate and key files of a stratum+ssl listener, checked now: readable PEM, and
    a key that belongs to the certificate."""
    certificate = sec.take("certificate", "", _text)
    key = sec.take("key", "", _text)
    sec.finish()
    for name, value in (("certificate", certificate), ("key", key)):
        if not value:
            raise ConfigError(sec.key(name), "missing: the PEM file's path")
        if not Path(value).is_file():
            raise ConfigError(sec.key(name), f"no such file: {value}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            sec.path, f"the certificate and key do not load as a PEM pair ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(sec.path, f"cannot read the certificate or key: {exc}") from None
    return certificate, key


def _listeners(path: str, value: Any, sites: tuple[str, ...]) -> tuple[ListenerSettings, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of listeners, got {_kind(value)}")
    listeners = tuple(_listener(f"{path}[{i}]", item, sites) for i, item in enumerate(value))
    seen: dict[tuple[str, int], int] = {}
    for i, listener in enumerate(listeners):
        if listener.name in [other.name for other in listeners[:i]]:
            raise ConfigError(f"{path}[{i}].name", f"{listener.name!r} is used twice")
        key = (listener.bind, listener.port)
        if listener.port and key in seen:
            raise ConfigError(f"{path}[{i}].port", f"{listener.bind}:{listener.port} is used twice")
        seen[key] = i
    return listeners


def _networks(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of addresses or CIDR blocks, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(
                f"{path}[{i}]", f"expected an address or CIDR block, got {_kind(item)}"
            )
        try:
            parse_networks([item])
        except ValueError as exc:
            raise ConfigError(f"{path}[{i}]", str(exc)) from None
    return tuple(item.strip() for item in value)


def _stratum(sec: _Section) -> StratumSettings:
    d = StratumSettings()
    ban = sec.section("ban")
    bans = BanSettings(
        invalid_shares=ban.take("invalid_shares", d.ban.invalid_shares, _integer(1, 10**6)),
        window_s=ban.take("window_s", d.ban.window_s, _number(1, 86400)),
        ban_s=ban.take("ban_s", d.ban.ban_s, _number(0, 7 * 86400)),
        stale_weight=ban.take("stale_weight", d.ban.stale_weight, _number(0, 1)),
        sessions_per_address=ban.take(
            "sessions_per_address", d.ban.sessions_per_address, _integer(1, 10**6)
        ),
    )
    ban.finish()
    s = StratumSettings(
        version_mask=sec.take("version_mask", d.version_mask, _hex_u32),
        max_line_bytes=sec.take("max_line_bytes", d.max_line_bytes, _integer(512, 1 << 20)),
        subscribe_timeout_s=sec.take(
            "subscribe_timeout_s", d.subscribe_timeout_s, _number(0.1, 3600)
        ),
        max_connections_per_ip=sec.take(
            "max_connections_per_ip", d.max_connections_per_ip, _integer(1, 1_000_000)
        ),
        difficulty_grace_s=sec.take("difficulty_grace_s", d.difficulty_grace_s, _number(0, 600)),
        ntime_ahead_s=sec.take("ntime_ahead_s", d.ntime_ahead_s, _integer(0, 86400)),
        reconnect_wait_s=sec.take("reconnect_wait_s", d.reconnect_wait_s, _integer(0, 3600)),
        idle_timeout_s=sec.take("idle_timeout_s", d.idle_timeout_s, _number(0, 86400)),
        max_send_buffer_bytes=sec.take(
            "max_send_buffer_bytes", d.max_send_buffer_bytes, _integer(4096, 1 << 30)
        ),
        max_workers_per_session=sec.take(
            "max_workers_per_session", d.max_workers_per_session, _integer(1, 100_000)
        ),
        trusted_networks=sec.take("trusted_networks", d.trusted_networks, _networks),
        ban=bans,
    )
    sec.finish()
    return s


def _tenants(path: str, value: Any, network: str) -> tuple[TenantSettings, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of tenants, got {_kind(value)}")
    tenants: list[TenantSettings] = []
    for i, item in enumerate(value):
        sec = _Section(item, f"{path}[{i}]")
        name = sec.take("name", "", _name)
        if not name:
            raise ConfigError(sec.key("name"), "missing: every tenant needs a name")
        if name in [t.name for t in tenants]:
            raise ConfigError(sec.key("name"), f"tenant {name!r} is listed twice")
        address = sec.take("payout_address", None, _text)
        script = None
        if address is not None:
            try:
                script = address_to_script(address, network)
            except AddressError as exc:
                raise ConfigError(sec.key("payout_address"), str(exc)) from exc
        fee_ppm = sec.take("fee_percent", None, _percent_ppm)
        threshold = sec.take("payout_threshold_sat", None, _threshold)
        solo = sec.take("solo", False, _flag)
        sec.finish()
        tenants.append(TenantSettings(name, address, script, fee_ppm, threshold, solo))
    return tuple(tenants)


#: The embedded defaults: a local regtest node, SQLite, a regtest payout address, one site
#: with one stratum port on localhost and one tenant.
DEFAULT_CONFIG: dict[str, Any] = {
    "network": "regtest",
    "node": {},
    "pool": {"payout_address": "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"},
    "sites": ["main"],
    "listeners": [
        {
            "name": "main",
            "site": "main",
            "bind": "127.0.0.1",
            "port": 3333,
            "difficulty": {"start": 1, "min": 0.001, "max": 65536},
        }
    ],
    "tenants": [{"name": "demo"}],
    # A regtest pool on localhost: its dashboard may be read without a token.
    "api": {"bind": "127.0.0.1", "port": 8080, "public_read": True},
}


#: All the bitcoin there will ever be, in satoshis.
#: The smallest payout threshold: a payout output below the dust limit of its script type is
#: refused by wallets and nodes (and with it the whole transaction); 546 sat, P2PKH's limit at
#: the default dust relay fee, is above every standard script type's.
DUST_FLOOR_SAT = 546


def dust_floor_problem(value: int) -> str | None:
    """Why a payout threshold is refused (None: it is fine)."""
    if value < DUST_FLOOR_SAT:
        return (
            f"expected at least {DUST_FLOOR_SAT} satoshis (below it a payout output is dust, "
            f"which wallets and nodes refuse), got {value}"
        )
    if value > MAX_MONEY_SAT:
        return f"expected at most {MAX_MONEY_SAT} satoshis (all bitcoin), got {value}"
    return None


def _threshold(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected a whole number of satoshis, got {_kind(value)}")
    problem = dust_floor_problem(value)
    if problem is not None:
        raise ConfigError(path, problem)
    return value


def _decimal(lo: Decimal, hi: Decimal, places: int) -> Callable[[str, Any], Decimal]:
    """An exact number (YAML's number or text) from lo to hi with at most `places` decimals;
    read from its text, never through a float."""

    def check(path: str, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(path, f"expected a number from {lo} to {hi}, got {_kind(value)}")
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if not _NUMBER_TEXT.fullmatch(text):
            raise ConfigError(path, f"expected a number from {lo} to {hi}, got {_kind(value)}")
        number = Decimal(text)
        if not lo <= number <= hi:
            raise ConfigError(path, f"expected a number from {lo} to {hi}, got {text}")
        if number != number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):
            raise ConfigError(path, f"at most {places} decimal places, got {text}")
        return number

    return check


def _percent_ppm(path: str, value: Any) -> int:
    """A percentage (0 to 100, up to 4 decimals) as parts per million."""
    return percent_to_ppm(_decimal(Decimal(0), Decimal(100), 4)(path, value))


def _payout(sec: _Section) -> PayoutSettings:
    d = PayoutSettings()
    s = PayoutSettings(
        scheme=sec.take("scheme", d.scheme, _choice(*SCHEMES)),
        pplns_n=sec.take("pplns_n", d.pplns_n, _decimal(Decimal("1e-12"), Decimal(10**15), 12)),
        fee_ppm=sec.take("fee_percent", d.fee_ppm, _percent_ppm),
        maturity=sec.take("maturity", d.maturity, _integer(1, 10_000)),
        threshold_sat=sec.take("threshold_sat", d.threshold_sat, _threshold),
        outputs_per_tx=sec.take("outputs_per_tx", d.outputs_per_tx, _integer(1, 2000)),
        fee_rate_sat_vb=sec.take("fee_rate_sat_vb", d.fee_rate_sat_vb, _integer(1, 10_000)),
        wallet_url=sec.take("wallet_url", d.wallet_url, _rpc_url),
        wallet=sec.take("wallet", d.wallet, _choice("auto", "core", "bcoin")),
        wallet_id=sec.take("wallet_id", d.wallet_id, _name),
        fpps_fee_window=sec.take("fpps_fee_window", d.fpps_fee_window, _integer(1, 10_000)),
        tracker_interval_s=sec.take("tracker_interval_s", d.tracker_interval_s, _number(0, 86400)),
    )
    sec.finish()
    return s


def _api(sec: _Section) -> ApiSettings:
    d = ApiSettings()
    token = sec.take("admin_token", None, _text)
    if token is not None and len(token) < 16:
        raise ConfigError(sec.key("admin_token"), "at least 16 characters (a random secret)")
    api = ApiSettings(
        enabled=sec.take("enabled", True, _flag),
        bind=sec.take("bind", d.bind, _text),
        port=sec.take("port", d.port, _integer(0, 65535)),
        admin_token=token,
        public_read=sec.take("public_read", d.public_read, _flag),
        sample_s=sec.take("sample_s", d.sample_s, _number(0.5, 3600)),
    )
    sec.finish()
    return api


def _webhook(path: str, item: Any) -> WebhookSettings:
    sec = _Section(item, path)
    url = sec.take("url", "", _text)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(sec.key("url"), f"expected an http:// or https:// URL, got {url!r}")
    every: tuple[str, ...] = ()
    kinds = sec.take("kinds", every, _names_any)
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ConfigError(
                f"{sec.key('kinds')}[{i}]", f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})"
            )
    hook = WebhookSettings(
        url=url,
        kinds=kinds,
        tenants=sec.take("tenants", every, _names),
        secret=sec.take("secret", None, _text),
        timeout_s=sec.take("timeout_s", WebhookSettings.timeout_s, _number(0.1, 120)),
    )
    sec.finish()
    return hook


def _names_any(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, f"expected a list of names, got {_kind(value)}")
    return tuple(value)


def _alerts(sec: _Section) -> AlertSettings:
    d = AlertSettings()
    tenants = sec.section("tenants")
    overrides = []
    for name in tenants.data:
        one = tenants.section(name)
        overrides.append(
            (name, one.take("worker_down_after_s", d.worker_down_after_s, _number(10, 7 * 86400)))
        )
        one.finish()
    no_hooks: tuple[WebhookSettings, ...] = ()
    hooks = sec.take("webhooks", no_hooks, _webhooks)
    alerts = AlertSettings(
        worker_down_after_s=sec.take(
            "worker_down_after_s", d.worker_down_after_s, _number(1, 7 * 86400)
        ),
        tenant_worker_down_after_s=tuple(overrides),
        hashrate_drop_fraction=sec.take(
            "hashrate_drop_fraction", d.hashrate_drop_fraction, _number(0.01, 0.99)
        ),
        hashrate_window_s=sec.take("hashrate_window_s", d.hashrate_window_s, _number(1, 86400)),
        hashrate_baseline_s=sec.take(
            "hashrate_baseline_s", d.hashrate_baseline_s, _number(2, 7 * 86400)
        ),
        node_down_after_s=sec.take("node_down_after_s", d.node_down_after_s, _number(0, 3600)),
        webhooks=hooks,
        queue_max=sec.take("queue_max", d.queue_max, _integer(1, 1_000_000)),
        retries=sec.take("retries", d.retries, _integer(1, 20)),
    )
    sec.finish()
    if alerts.hashrate_baseline_s <= alerts.hashrate_window_s:
        raise ConfigError(sec.key("hashrate_baseline_s"), "must be longer than hashrate_window_s")
    return alerts


def _webhooks(path: str, value: Any) -> tuple[WebhookSettings, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of webhooks, got {_kind(value)}")
    return tuple(_webhook(f"{path}[{i}]", item) for i, item in enumerate(value))


def settings_from_mapping(data: Any, source: str = "<mapping>") -> Settings:
    top = _Section(data, "")
    network = top.take("network", "regtest", _choice(*NETWORKS))
    node = _node(top.section("node"))
    coinbase = _coinbase(top.section("pool"), network)
    stratum = _stratum(top.section("stratum"))
    default_sites: tuple[str, ...] = ("main",)
    sites = top.take("sites", default_sites, _names)
    no_listeners: tuple[ListenerSettings, ...] = ()
    no_tenants: tuple[TenantSettings, ...] = ()
    listeners = top.take("listeners", no_listeners, lambda p, v: _listeners(p, v, sites))
    tenants = top.take("tenants", no_tenants, lambda p, v: _tenants(p, v, network))
    db_url = top.take("database_url", Settings.database_url, _text)
    data_dir = top.take("data_dir", Settings.data_dir, _text)
    node_name = top.take("node_name", socket.gethostname()[:64] or "farmpool", _node_name)
    ledger_sec = top.section("ledger")
    ledger = LedgerSettings(
        batch_max=ledger_sec.take("batch_max", LedgerSettings.batch_max, _integer(1, 100_000)),
        retry_s=ledger_sec.take("retry_s", LedgerSettings.retry_s, _number(0.1, 600)),
    )
    ledger_sec.finish()
    payout = _payout(top.section("payout"))
    api = _api(top.section("api")) if "api" in top.data else ApiSettings()
    top.used.add("api")
    alerts = _alerts(top.section("alerts"))
    log_level = top.take("log_level", "info", _choice("debug", "info", "warning", "error"))
    top.finish()
    return Settings(
        network=network,
        node=node,
        coinbase=coinbase,
        stratum=stratum,
        sites=sites,
        listeners=listeners,
        tenants=tenants,
        database_url=db_url,
        data_dir=data_dir,
        node_name=node_name,
        ledger=ledger,
        payout=payout,
        api=api,
        alerts=alerts,
        log_level=log_level,
        source=source,
        raw=top.data,
    )


def load_settings(path: str | Path | None) -> Settings:
    """Read and validate a YAML config file; None gives the embedded defaults."""
    if path is None:
        return settings_from_mapping(DEFAULT_CONFIG, "<embedded defaults>")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(file), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), f"cannot read it: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(file), f"not valid YAML{where}: {problem}") from None
    try:
        return settings_from_mapping(data, str(file))
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc.path}", exc.message) from None
