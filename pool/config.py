"""Settings: the YAML file an admin writes, turned into typed, validated values.

This is the one place where configuration is checked. Every error names the key path
(`node.poll_interval_ms`), what was found and what was expected, and nothing starts with
a config that did not load whole. Without a file the embedded defaults (DEFAULT_CONFIG) run
against a local regtest node; a file must name at least the pool's payout address.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from pool.chain.addresses import NETWORKS, AddressError, address_to_script

T = TypeVar("T")

#: Most a coinbase scriptSig may hold (consensus: 2..100 bytes).
MAX_SCRIPTSIG = 100
#: The largest BIP34 height push: 4 bytes of height plus its push opcode (heights < 2**31).
_HEIGHT_PUSH_MAX = 5


class ConfigError(ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"config: {path}: {message}")
        self.path = path
        self.message = message


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
class Settings:
    """The whole configuration."""

    network: str
    node: NodeSettings
    coinbase: CoinbaseSettings
    database_url: str = "sqlite:///farmpool.sqlite3"
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


def _number(lo: float, hi: float) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
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


#: The embedded defaults: a local regtest node, SQLite, a regtest payout address.
DEFAULT_CONFIG: dict[str, Any] = {
    "network": "regtest",
    "node": {},
    "pool": {"payout_address": "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"},
}


def settings_from_mapping(data: Any, source: str = "<mapping>") -> Settings:
    top = _Section(data, "")
    network = top.take("network", "regtest", _choice(*NETWORKS))
    node = _node(top.section("node"))
    coinbase = _coinbase(top.section("pool"), network)
    db_url = top.take("database_url", Settings.database_url, _text)
    log_level = top.take("log_level", "info", _choice("debug", "info", "warning", "error"))
    top.finish()
    return Settings(network, node, coinbase, db_url, log_level, source, top.data)


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
