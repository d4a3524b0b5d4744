"""pool.config: the YAML file an admin writes, turned into typed, validated Settings.

Every error must be a ConfigError whose text names the key path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pool.chain.coinbase import build_coinbase
from pool.config import (
    DEFAULT_CONFIG,
    CoinbaseSettings,
    ConfigError,
    NodeSettings,
    PayoutOutput,
    load_settings,
    redact_url,
    settings_from_mapping,
)

REGTEST_ADDRESS = "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"
# BIP 173 P2WPKH program of that address, decoded by hand with the bech32 reference algorithm.
REGTEST_SCRIPT = bytes.fromhex("0014377c0b8f5768a0179cd6d94711a4fa8c0f6bd605")
# BIP 173 testnet P2WSH vector and the testnet P2PKH of the genesis pubkey hash.
TESTNET_P2WSH = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
TESTNET_P2WSH_SCRIPT = bytes.fromhex(
    "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"
)
TESTNET_P2PKH = "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt"
TESTNET_P2PKH_SCRIPT = bytes.fromhex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac")

POOL = {"payout_address": REGTEST_ADDRESS}


def config_error(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "farmpool.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults -----------------------------------------------------------------------------


def test_no_file_gives_the_embedded_regtest_defaults() -> None:
    s = load_settings(None)
    assert s.network == "regtest"
    assert s.node == NodeSettings(
        url="http://farmpool:farmpool@127.0.0.1:18443",
        rpc_timeout_s=30.0,
        segwit=None,
        zmq_hashblock=None,
        longpoll=True,
        poll_interval_ms=500,
        refresh_interval_s=30.0,
    )
    assert s.coinbase == CoinbaseSettings(
        outputs=(PayoutOutput(REGTEST_ADDRESS, REGTEST_SCRIPT, 100),),
        tag=b"/farmpool/",
        extranonce1_size=4,
        extranonce2_size=4,
        tx_version=2,
    )
    assert s.database_url == "sqlite:///farmpool.sqlite3"
    assert s.log_level == "info"
    assert s.source == "<embedded defaults>"
    assert s.raw == DEFAULT_CONFIG


# --- a file with every key ------------------------------------------------------------------

FULL_YAML = f"""\
network: test
node:
  url: "https://alice:s3cret@node.example:18332"
  rpc_timeout_s: 12.5
  segwit: false
  zmq_hashblock: "tcp://127.0.0.1:28332"
  longpoll: false
  poll_interval_ms: 250
  refresh_interval_s: 15
pool:
  payout_address:
    - address: {TESTNET_P2WSH}
      percent: 70
    - address: {TESTNET_P2PKH}
      percent: 30
  tag: "/farm-7/"
  extranonce1_size: 3
  extranonce2_size: 6
  tx_version: 1
database_url: "postgresql://pool@db.example/farm"
log_level: debug
"""


def test_file_with_every_key_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_YAML)
    s = load_settings(path)
    assert s.network == "test"
    assert s.node == NodeSettings(
        url="https://alice:s3cret@node.example:18332",
        rpc_timeout_s=12.5,
        segwit=False,
        zmq_hashblock="tcp://127.0.0.1:28332",
        longpoll=False,
        poll_interval_ms=250,
        refresh_interval_s=15.0,
    )
    assert isinstance(s.node.refresh_interval_s, float)
    assert s.coinbase == CoinbaseSettings(
        outputs=(
            PayoutOutput(TESTNET_P2WSH, TESTNET_P2WSH_SCRIPT, 70),
            PayoutOutput(TESTNET_P2PKH, TESTNET_P2PKH_SCRIPT, 30),
        ),
        tag=b"/farm-7/",
        extranonce1_size=3,
        extranonce2_size=6,
        tx_version=1,
    )
    assert s.database_url == "postgresql://pool@db.example/farm"
    assert s.log_level == "debug"
    assert s.source == str(path)
    assert s.raw == yaml.safe_load(FULL_YAML)
    assert s.node.redacted_url == "https://alice:***@node.example:18332"


@pytest.mark.parametrize(("text", "expected"), [("auto", None), (True, True), (False, False)])
def test_segwit_auto_true_false(text: Any, expected: bool | None) -> None:
    s = settings_from_mapping({"node": {"segwit": text}, "pool": POOL})
    assert s.node.segwit is expected


def test_single_address_is_one_output_of_100_percent() -> None:
    s = settings_from_mapping({"network": "test", "pool": {"payout_address": TESTNET_P2PKH}})
    assert s.coinbase.outputs == (PayoutOutput(TESTNET_P2PKH, TESTNET_P2PKH_SCRIPT, 100),)


def test_null_values_take_the_defaults() -> None:
    s = settings_from_mapping({"node": {"poll_interval_ms": None}, "log_level": None, "pool": POOL})
    assert s.node.poll_interval_ms == 500
    assert s.log_level == "info"


def test_utf8_tag_is_encoded() -> None:
    s = settings_from_mapping({"pool": {**POOL, "tag": "/ферма/"}})
    assert s.coinbase.tag == "/ферма/".encode()


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    message = config_error({"pool": POOL, "databse_url": "sqlite://"})
    assert message == (
        "config: databse_url: unknown key "
        "(known here: alerts, api, data_dir, database_url, ledger, listeners, log_level, network, "
        "node, node_name, payout, pool, sites, stratum, tenants)"
    )


def test_unknown_nested_key_names_the_path_and_the_known_keys() -> None:
    message = config_error({"node": {"pol_interval_ms": 100}, "pool": POOL})
    assert message == (
        "config: node.pol_interval_ms: unknown key (known here: longpoll, poll_interval_ms, "
        "refresh_interval_s, rpc_timeout_s, segwit, url, zmq_hashblock)"
    )


def test_unknown_key_inside_an_output() -> None:
    data = {"pool": {"payout_address": [{"address": REGTEST_ADDRESS, "percent": 100, "pct": 1}]}}
    assert config_error(data) == (
        "config: pool.payout_address[0].pct: unknown key (known here: address, percent)"
    )


def test_unknown_key_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"pool:\n  payout_address: {REGTEST_ADDRESS}\n  tags: x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"config: {path}: pool.tags: unknown key (known here: ")
    assert info.value.path == f"{path}: pool.tags"


# --- wrong types and ranges -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"node": {"poll_interval_ms": "500"}},
            "config: node.poll_interval_ms: expected a whole number from 50 to 60000, "
            "got text ('500')",
        ),
        (
            {"node": {"poll_interval_ms": True}},
            "config: node.poll_interval_ms: expected a whole number from 50 to 60000, "
            "got a boolean (True)",
        ),
        (
            {"node": {"poll_interval_ms": 2.5}},
            "config: node.poll_interval_ms: expected a whole number from 50 to 60000, "
            "got a number (2.5)",
        ),
        (
            {"node": {"rpc_timeout_s": "30s"}},
            "config: node.rpc_timeout_s: expected a number from 0.5 to 600, got text ('30s')",
        ),
        (
            {"node": {"rpc_timeout_s": False}},
            "config: node.rpc_timeout_s: expected a number from 0.5 to 600, got a boolean (False)",
        ),
        (
            {"node": {"longpoll": "yes"}},
            "config: node.longpoll: expected true or false, got text ('yes')",
        ),
        (
            {"node": {"longpoll": 1}},
            "config: node.longpoll: expected true or false, got a number (1)",
        ),
        (
            {"node": {"segwit": "yes"}},
            "config: node.segwit: expected auto, true or false, got text ('yes')",
        ),
        (
            {"node": {"url": 18443}},
            "config: node.url: expected text, got a number (18443)",
        ),
        (
            {"pool": {**POOL, "extranonce2_size": True}},
            "config: pool.extranonce2_size: expected a whole number from 2 to 8, "
            "got a boolean (True)",
        ),
        (
            {"pool": {**POOL, "tag": 7}},
            "config: pool.tag: expected text, got a number (7)",
        ),
        (
            {"database_url": ["sqlite://"]},
            "config: database_url: expected text, got a list",
        ),
        (
            {"network": "mainnet"},
            "config: network: expected one of main, test, regtest; got text ('mainnet')",
        ),
        (
            {"log_level": "trace"},
            "config: log_level: expected one of debug, info, warning, error; got text ('trace')",
        ),
        (
            {"node": [1, 2]},
            "config: node: expected a mapping, got a list",
        ),
        (
            {"pool": {"payout_address": [REGTEST_ADDRESS]}},
            f"config: pool.payout_address[0]: expected a mapping, got text ({REGTEST_ADDRESS!r})",
        ),
    ],
)
def test_wrong_types(data: dict[str, Any], expected: str) -> None:
    data.setdefault("pool", POOL)
    assert config_error(data) == expected


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("node", "poll_interval_ms", 49, "expected a whole number from 50 to 60000, got 49"),
        ("node", "poll_interval_ms", 60_001, "expected a whole number from 50 to 60000, got 60001"),
        ("node", "rpc_timeout_s", 0.4, "expected a number from 0.5 to 600, got 0.4"),
        ("node", "rpc_timeout_s", 601, "expected a number from 0.5 to 600, got 601"),
        ("node", "rpc_timeout_s", float("inf"), "expected a number from 0.5 to 600, got inf"),
        ("node", "rpc_timeout_s", float("nan"), "expected a number from 0.5 to 600, got nan"),
        ("node", "refresh_interval_s", 0, "expected a number from 1 to 120, got 0"),
        ("node", "refresh_interval_s", 121, "expected a number from 1 to 120, got 121"),
        ("pool", "extranonce1_size", 1, "expected a whole number from 2 to 8, got 1"),
        ("pool", "extranonce1_size", 9, "expected a whole number from 2 to 8, got 9"),
        ("pool", "extranonce2_size", 9, "expected a whole number from 2 to 8, got 9"),
        ("pool", "tx_version", 3, "expected a whole number from 1 to 2, got 3"),
        ("pool", "tx_version", 0, "expected a whole number from 1 to 2, got 0"),
    ],
)
def test_out_of_range(section: str, key: str, value: Any, expected: str) -> None:
    data: dict[str, Any] = {"pool": dict(POOL)}
    data.setdefault(section, {})[key] = value
    assert config_error(data) == f"config: {section}.{key}: {expected}"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("node", "poll_interval_ms", 50),
        ("node", "poll_interval_ms", 60_000),
        ("node", "rpc_timeout_s", 0.5),
        ("node", "rpc_timeout_s", 600),
        ("node", "refresh_interval_s", 1),
        ("node", "refresh_interval_s", 120),
        ("pool", "extranonce1_size", 2),
        ("pool", "extranonce2_size", 8),
    ],
)
def test_range_bounds_are_inclusive(section: str, key: str, value: Any) -> None:
    data: dict[str, Any] = {"pool": dict(POOL)}
    data.setdefault(section, {})[key] = value
    s = settings_from_mapping(data)
    assert getattr(s.node if section == "node" else s.coinbase, key) == value


@pytest.mark.parametrize("value", [0, 1, 300, 545])
def test_a_payout_threshold_below_dust_is_refused(value: int) -> None:
    # A balance paid below the dust limit of its output makes the wallet refuse the whole
    # payout transaction; 546 sat is dust for no standard output script.
    want = (
        f"expected at least 546 satoshis (below it a payout output is dust, which wallets "
        f"and nodes refuse), got {value}"
    )
    data: dict[str, Any] = {"pool": dict(POOL), "payout": {"threshold_sat": value}}
    assert config_error(data) == f"config: payout.threshold_sat: {want}"
    data = {"pool": dict(POOL), "tenants": [{"name": "acme", "payout_threshold_sat": value}]}
    assert config_error(data) == f"config: tenants[0].payout_threshold_sat: {want}"


def test_a_payout_threshold_of_546_is_the_smallest_accepted() -> None:
    s = settings_from_mapping(
        {
            "pool": dict(POOL),
            "payout": {"threshold_sat": 546},
            "tenants": [{"name": "acme", "payout_threshold_sat": 546}],
        }
    )
    assert s.payout.threshold_sat == 546 and s.tenants[0].payout_threshold_sat == 546


# --- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://alice:s3cret@127.0.0.1",
            "config: node.url: the URL needs the node's RPC port: 'http://alice:***@127.0.0.1'",
        ),
        (
            "http://alice@127.0.0.1:18443",
            "config: node.url: the URL needs the RPC user and password (http://user:pass@...)",
        ),
        (
            "http://127.0.0.1:18443",
            "config: node.url: the URL needs the RPC user and password (http://user:pass@...)",
        ),
        (
            "ftp://alice:s3cret@127.0.0.1:18443",
            "config: node.url: expected http://user:password@host:port, "
            "got 'ftp://alice:***@127.0.0.1:18443'",
        ),
        (
            "127.0.0.1:18443",
            "config: node.url: expected http://user:password@host:port, got '127.0.0.1:18443'",
        ),
        (
            "http://alice@127.0.0.1:port",
            "config: node.url: bad port in 'http://alice@127.0.0.1:port'",
        ),
    ],
)
def test_bad_rpc_url(url: str, expected: str) -> None:
    message = config_error({"node": {"url": url}, "pool": POOL})
    assert message == expected
    assert "s3cret" not in message


@pytest.mark.parametrize("url", ["http://alice:s3cret@127.0.0.1:99999", "http://a:b@h:port"])
def test_bad_rpc_port_with_password_is_a_config_error(url: str) -> None:
    message = config_error({"node": {"url": url}, "pool": POOL})
    assert message.startswith("config: node.url: bad port in ")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "url", ["http://u:p@node:18443", "https://u:p@node.example:443/", "http://u:p@[::1]:18443"]
)
def test_good_rpc_urls(url: str) -> None:
    assert settings_from_mapping({"node": {"url": url}, "pool": POOL}).node.url == url


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:28332", "tcp://127.0.0.1", "tcp://127.0.0.1:port", "tcp://:28332", "ipc://"],
)
def test_bad_zmq_url(url: str) -> None:
    assert config_error({"node": {"zmq_hashblock": url}, "pool": POOL}) == (
        f"config: node.zmq_hashblock: expected tcp://HOST:PORT or ipc://PATH, got {url!r}"
    )


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:28332", "tcp://node.example:1", "ipc:///tmp/z"])
def test_good_zmq_urls(url: str) -> None:
    s = settings_from_mapping({"node": {"zmq_hashblock": url}, "pool": POOL})
    assert s.node.zmq_hashblock == url


def test_zmq_port_out_of_range() -> None:
    message = config_error({"node": {"zmq_hashblock": "tcp://127.0.0.1:99999"}, "pool": POOL})
    assert message.startswith("config: node.zmq_hashblock: ")


# --- payout addresses -----------------------------------------------------------------------


def test_bad_payout_address_names_the_key_and_the_address() -> None:
    bad = REGTEST_ADDRESS[:-1] + "q"  # one character changed: the checksum fails
    message = config_error({"pool": {"payout_address": bad}})
    assert message == (
        f"config: pool.payout_address[0].address: invalid address {bad!r}: "
        "bad bech32/bech32m checksum"
    )


def test_payout_address_of_another_network() -> None:
    message = config_error({"network": "main", "pool": {"payout_address": REGTEST_ADDRESS}})
    assert message.startswith(
        f"config: pool.payout_address[0].address: invalid address {REGTEST_ADDRESS!r}: "
        "unknown bech32 prefix 'bcrt' for network main (it belongs to network regtest)"
    )


def test_testnet_base58_address_on_main() -> None:
    message = config_error({"network": "main", "pool": {"payout_address": TESTNET_P2PKH}})
    assert message.startswith(
        f"config: pool.payout_address[0].address: invalid address {TESTNET_P2PKH!r}: "
    )
    assert "unknown base58 prefix 0x6f for network main" in message


def test_second_output_address_error_names_its_index() -> None:
    data = {
        "pool": {
            "payout_address": [
                {"address": REGTEST_ADDRESS, "percent": 50},
                {"address": TESTNET_P2WSH, "percent": 50},
            ]
        }
    }
    message = config_error(data)
    assert message.startswith(
        f"config: pool.payout_address[1].address: invalid address {TESTNET_P2WSH!r}: "
    )


def test_missing_payout_address() -> None:
    assert config_error({"pool": {"tag": "x"}}) == (
        "config: pool.payout_address: missing: the pool's regtest address that block rewards "
        "are paid to"
    )
    assert config_error({"network": "test"}) == (
        "config: pool.payout_address: missing: the pool's test address that block rewards "
        "are paid to"
    )


def test_output_without_address() -> None:
    data = {"pool": {"payout_address": [{"percent": 100}]}}
    assert config_error(data) == (
        "config: pool.payout_address[0].address: missing: a payout address is required"
    )


@pytest.mark.parametrize(("percents", "total"), [((50, 40), 90), ((60, 50), 110), ((99,), 99)])
def test_output_percents_must_add_to_100(percents: tuple[int, ...], total: int) -> None:
    outputs = [{"address": REGTEST_ADDRESS, "percent": p} for p in percents]
    assert config_error({"pool": {"payout_address": outputs}}) == (
        f"config: pool.payout_address: the outputs' percent values must add up to 100, got {total}"
    )


@pytest.mark.parametrize("percent", [0, 101, -5])
def test_output_percent_out_of_range(percent: int) -> None:
    data = {"pool": {"payout_address": [{"address": REGTEST_ADDRESS, "percent": percent}]}}
    assert config_error(data) == (
        f"config: pool.payout_address[0].percent: expected a whole number from 1 to 100, "
        f"got {percent}"
    )


def test_empty_output_list() -> None:
    assert config_error({"pool": {"payout_address": []}}) == (
        "config: pool.payout_address: expected an address or a list of outputs, got a list"
    )


def test_null_payout_address_is_refused(tmp_path: Path) -> None:
    # `payout_address:` left empty in YAML is null: refused, not settings without outputs.
    assert config_error({"pool": {"payout_address": None}}) == (
        "config: pool.payout_address: expected an address or a list of outputs, got nothing"
    )
    path = write(tmp_path, "pool:\n  payout_address:\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == (
        f"config: {path}: pool.payout_address: expected an address or a list of outputs, "
        "got nothing"
    )


# --- tag ------------------------------------------------------------------------------------


def test_tag_too_long() -> None:
    # Default extranonce 4 + 4: 100 - 5 (height) - 9 (extranonce push) - 2 (PUSHDATA1) = 84.
    assert config_error({"pool": {**POOL, "tag": "x" * 85}}) == (
        "config: pool.tag: the pool tag may be at most 84 bytes with 8 bytes of extranonce, got 85"
    )
    # The limit counts UTF-8 bytes, not characters: 43 two-byte letters are 86 bytes.
    assert config_error({"pool": {**POOL, "tag": "ж" * 43}}) == (
        "config: pool.tag: the pool tag may be at most 84 bytes with 8 bytes of extranonce, got 86"
    )
    # With 8 + 8 bytes of extranonce there is room for 76.
    wide = {**POOL, "extranonce1_size": 8, "extranonce2_size": 8}
    assert config_error({"pool": {**wide, "tag": "x" * 77}}) == (
        "config: pool.tag: the pool tag may be at most 76 bytes with 16 bytes of extranonce, got 77"
    )


@pytest.mark.parametrize(("en1", "en2"), [(2, 2), (4, 4), (8, 8), (4, 8)])
@pytest.mark.parametrize("height", [1, 16, 17, 840_000, 2**23, 2**31 - 1])
def test_longest_tag_fits_a_coinbase_at_every_bip34_height(en1: int, en2: int, height: int) -> None:
    longest = None
    for size in range(120, 0, -1):
        try:
            s = settings_from_mapping(
                {
                    "pool": {
                        **POOL,
                        "tag": "x" * size,
                        "extranonce1_size": en1,
                        "extranonce2_size": en2,
                    }
                }
            )
        except ConfigError:
            continue
        longest = s
        break
    assert longest is not None
    parts = build_coinbase(
        height=height,
        coinbasevalue=312_500_000,
        outputs=[(o.script, o.percent) for o in longest.coinbase.outputs],
        witness_commitment=None,
        tag=longest.coinbase.tag,
        extranonce_size=en1 + en2,
    )
    script_len = parts.coinb1[4 + 1 + 36]
    assert script_len <= 100
    if height >= 2**23:  # a 5-byte height push: the tag limit is exactly what fills 100 bytes
        assert script_len == 100


# --- files ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == f"config: {path}: no such file"
    assert info.value.path == str(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "network: regtest\nnode:\n  url: http://a:b@h:1\n  segwit: [true, false\npool: {}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(f"config: {path}: not valid YAML at line 5, column 5: ")
    assert "expected ',' or ']'" in message


def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "network: regtest\npool:\n\tpayout_address: x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"config: {path}: not valid YAML at line 3, column 1: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"pool:\n  tag: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"config: {path}: cannot read it: ")


@pytest.mark.parametrize(
    ("text", "kind"), [("- 1\n- 2\n", "a list"), ("just text\n", "text ('just text')")]
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == f"config: {path}: <top>: expected a mapping, got {kind}"


def test_non_text_keys() -> None:
    assert config_error({1: 2}) == "config: <top>: keys must be text, got 1"


def test_wrong_type_in_a_file_names_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"node:\n  poll_interval_ms: '500'\npool:\n  payout_address: {REGTEST_ADDRESS}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == (
        f"config: {path}: node.poll_interval_ms: expected a whole number from 50 to 60000, "
        "got text ('500')"
    )
    assert info.value.message == "expected a whole number from 50 to 60000, got text ('500')"


def test_config_error_is_a_value_error_with_path_and_message() -> None:
    error = ConfigError("node.url", "bad")
    assert isinstance(error, ValueError)
    assert (error.path, error.message, str(error)) == ("node.url", "bad", "config: node.url: bad")


def test_huge_integer_for_a_number_is_a_config_error() -> None:
    message = config_error({"node": {"rpc_timeout_s": 10**400}, "pool": POOL})
    assert message.startswith("config: node.rpc_timeout_s: expected a number from 0.5 to 600")


# --- redact_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://alice:s3cret@127.0.0.1:18443", "http://alice:***@127.0.0.1:18443"),
        ("https://alice:s3cret@node.example/wallet/w1", "https://alice:***@node.example/wallet/w1"),
        ("http://alice:@127.0.0.1:18443", "http://alice:***@127.0.0.1:18443"),
        ("http://127.0.0.1:18443", "http://127.0.0.1:18443"),
        ("http://alice@127.0.0.1:18443", "http://alice@127.0.0.1:18443"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3cret" not in redact_url(url)


def test_node_settings_redacted_url() -> None:
    node = NodeSettings(url="http://farmpool:hunter2@10.0.0.5:8332")
    assert node.redacted_url == "http://farmpool:***@10.0.0.5:8332"


def test_redact_url_keeps_ipv6_brackets() -> None:
    assert redact_url("http://u:p@[::1]:18443") == "http://u:***@[::1]:18443"


def test_example_config_loads_and_names_every_section() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    settings = load_settings(example)
    assert settings.sites == ("north", "south")
    assert [listener.name for listener in settings.listeners] == [
        "north-asic",
        "south-asic",
        "south-lb",
    ]
    assert settings.listeners[2].proxy_protocol is True
    assert [tenant.name for tenant in settings.tenants] == ["acme", "greenhouse-coop"]
    text = example.read_text()
    for key in settings.raw:  # every top-level key the file uses is explained by a comment
        assert f"\n{key}:" in text
