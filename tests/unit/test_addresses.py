"""Unit tests for pool.chain.addresses (payout address -> output script).

Test vectors come from BIP 173 and BIP 350 (bitcoin/bips, "Test vectors" sections).
The bcoin regtest strings were produced with bcoin 1.0.2 itself (see the comments).
"""

from __future__ import annotations

import pickle

import pytest

from pool.chain.addresses import (
    NETWORKS,
    AddressError,
    _bech32_decode,
    address_to_script,
    script_to_address,
)

GENESIS_PKH = "62e907b15cbf27d5425399ebf6f0fb50ebb88f18"
P2WSH_PROGRAM = "1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"


def _network_of(address: str) -> str:
    hrp = address.lower().rsplit("1", 1)[0]
    return {"bc": "main", "tb": "test", "bcrt": "regtest", "rb": "regtest"}[hrp]


# ---------------------------------------------------------------------------
# BIP 173 / BIP 350 valid segwit addresses

# BIP 173 valid segwit addresses that are still valid under BIP 350 (version 0).
BIP173_VALID = [
    (
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
]

# BIP 350 valid segwit addresses (v0 with bech32, v1+ with bech32m).
BIP350_VALID = [
    (
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]


@pytest.mark.parametrize(("address", "script_hex"), BIP173_VALID + BIP350_VALID)
def test_valid_segwit_vectors(address: str, script_hex: str) -> None:
    network = _network_of(address)
    assert address_to_script(address, network).hex() == script_hex
    # Lowercase and uppercase forms are equivalent.
    assert address_to_script(address.lower(), network).hex() == script_hex
    assert address_to_script(address.upper(), network).hex() == script_hex


@pytest.mark.parametrize(("address", "script_hex"), BIP173_VALID + BIP350_VALID)
def test_valid_segwit_vectors_encode_back(address: str, script_hex: str) -> None:
    network = _network_of(address)
    assert script_to_address(bytes.fromhex(script_hex), network) == address.lower()


# ---------------------------------------------------------------------------
# BIP 173 / BIP 350 invalid segwit addresses: (address, network, message fragment)

BIP173_INVALID = [
    ("tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty", "main", "unknown bech32 prefix 'tc'"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "main", "bad bech32/bech32m checksum"),
    ("BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2", "main", "wrong witness version 17"),
    ("bc1rw5uspcuh", "main", "wrong length of witness program"),
    (
        "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
        "main",
        "wrong length of witness program: 41 bytes",
    ),
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "main", "wrong length of witness program"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7",
        "test",
        "mixed case bech32",
    ),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du", "main", "invalid padding"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv",
        "test",
        "invalid padding",
    ),
    ("bc1gmk9yu", "main", "empty bech32 data section"),
]

BIP350_INVALID = [
    (
        "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
        "main",
        "unknown bech32 prefix 'tc'",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "main",
        "bech32 checksum used for witness version 1, which requires bech32m",
    ),
    (
        "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
        "test",
        "bech32 checksum used for witness version 2, which requires bech32m",
    ),
    (
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        "main",
        "bech32 checksum used for witness version 16, which requires bech32m",
    ),
    (
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "main",
        "bech32m checksum used for witness version 0, which requires bech32",
    ),
    (
        "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
        "test",
        "bech32m checksum used for witness version 0, which requires bech32",
    ),
    (
        "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
        "main",
        "invalid bech32 character 'o'",
    ),
    (
        "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
        "main",
        "wrong witness version 17",
    ),
    ("bc1pw5dgrnzv", "main", "wrong length of witness program: 1 bytes"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
        "main",
        "wrong length of witness program: 41 bytes",
    ),
    (
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
        "main",
        "wrong length of witness program for version 0: 16 bytes",
    ),
    (
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
        "test",
        "mixed case bech32",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
        "main",
        "invalid padding",
    ),
    (
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
        "test",
        "invalid padding",
    ),
    ("bc1gmk9yu", "main", "empty bech32 data section"),
    # BIP 173's valid v1+ vectors, encoded with bech32: invalid since BIP 350.
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
        "main",
        "bech32 checksum used for witness version 1, which requires bech32m",
    ),
    (
        "BC1SW50QA3JX3S",
        "main",
        "bech32 checksum used for witness version 16, which requires bech32m",
    ),
    (
        "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
        "main",
        "bech32 checksum used for witness version 2, which requires bech32m",
    ),
]


@pytest.mark.parametrize(("address", "network", "fragment"), BIP173_INVALID + BIP350_INVALID)
def test_invalid_segwit_vectors(address: str, network: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        address_to_script(address, network)
    message = str(info.value)
    assert repr(address) in message
    assert fragment in message
    # Invalid on every network, not only the one it names.
    for other in NETWORKS:
        with pytest.raises(AddressError):
            address_to_script(address, other)


# ---------------------------------------------------------------------------
# BIP 173 / BIP 350 bech32 / bech32m string vectors

BECH32_VALID_STRINGS = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

BECH32M_VALID_STRINGS = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

BECH32_INVALID_STRINGS = [
    "\x201nwldj5",
    "\x7f1axkwrx",
    "\x801eym55h",
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",
    "1pzry9x0s0muk",
    "x1b4n0q5v",
    "li1dgmt3",
    "de1lg7wt\xff",
    "A1G7SGD8",
    "10a06t8",
    "1qzzfhee",
]

BECH32M_INVALID_STRINGS = [
    "\x201xj0phk",
    "\x7f1g6xzxy",
    "\x801vctc34",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
    "qyrz8wqd2c9m",
    "1qyrz8wqd2c9m",
    "y1b0jsk6g",
    "lt1igcx5c0",
    "in1muywd",
    "mm1crxm3i",
    "au1s5cgom",
    "M1VUXWEZ",
    "16plkw9",
    "1p2gdwpf",
]


@pytest.mark.parametrize(
    ("string", "spec"),
    [(s, "bech32") for s in BECH32_VALID_STRINGS] + [(s, "bech32m") for s in BECH32M_VALID_STRINGS],
)
def test_valid_bech32_strings_checksum(string: str, spec: str) -> None:
    # The private codec accepts them with the right variant...
    _hrp, _data, found = _bech32_decode(string)
    assert found == spec
    # ...but they are not payout addresses on any network.
    for network in NETWORKS:
        with pytest.raises(AddressError) as info:
            address_to_script(string, network)
        assert repr(string) in str(info.value)


@pytest.mark.parametrize("string", BECH32_INVALID_STRINGS + BECH32M_INVALID_STRINGS)
def test_invalid_bech32_strings(string: str) -> None:
    with pytest.raises(AddressError):
        _bech32_decode(string)
    for network in NETWORKS:
        with pytest.raises(AddressError) as info:
            address_to_script(string, network)
        assert repr(string) in str(info.value)


# ---------------------------------------------------------------------------
# Base58check


@pytest.mark.parametrize(
    ("address", "script_hex"),
    [
        # Genesis block coinbase pubkey hash.
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        # P2SH example; the same script is produced by bcoin 1.0.2:
        # Script.fromAddress(Address.fromString('3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy', 'main'))
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"),
    ],
)
def test_mainnet_base58(address: str, script_hex: str) -> None:
    assert address_to_script(address, "main").hex() == script_hex
    assert script_to_address(bytes.fromhex(script_hex), "main") == address


def test_corrupted_base58_checksum() -> None:
    bad = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"
    with pytest.raises(AddressError, match="bad base58check checksum") as info:
        address_to_script(bad, "main")
    assert repr(bad) in str(info.value)


def test_base58_invalid_character() -> None:
    bad = "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a"
    with pytest.raises(AddressError, match="base58 invalid character '0' at position 32"):
        address_to_script(bad, "main")


def test_base58_wrong_length() -> None:
    # A valid base58check string whose payload is not version + 20 bytes.
    from pool.chain.addresses import _b58check_encode

    bad = _b58check_encode(b"\x00" + bytes(19))
    with pytest.raises(AddressError, match="wrong length of base58 payload") as info:
        address_to_script(bad, "main")
    assert repr(bad) in str(info.value)


def test_base58_unknown_version_byte() -> None:
    from pool.chain.addresses import _b58check_encode

    # 0x30 is Litecoin's P2PKH version byte: unknown on every network here.
    litecoin = _b58check_encode(b"\x30" + bytes.fromhex(GENESIS_PKH))
    for network in NETWORKS:
        with pytest.raises(AddressError, match=f"unknown base58 prefix 0x30 for network {network}"):
            address_to_script(litecoin, network)


# ---------------------------------------------------------------------------
# Network checks


@pytest.mark.parametrize(
    ("address", "network", "fragment"),
    [
        (
            "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt",
            "main",
            "unknown base58 prefix 0x6f for network main (it belongs to network test/regtest)",
        ),
        (
            "2N2GDNJ4rEm6NxfMC9ck8VuRdheQzXWaNZv",
            "main",
            "unknown base58 prefix 0xc4 for network main (it belongs to network test/regtest)",
        ),
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "test",
            "unknown base58 prefix 0x00 for network test (it belongs to network main)",
        ),
        (
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "regtest",
            "unknown base58 prefix 0x05 for network regtest (it belongs to network main)",
        ),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "main",
            "unknown bech32 prefix 'tb' for network main (it belongs to network test)",
        ),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            "test",
            "unknown bech32 prefix 'bc' for network test (it belongs to network main)",
        ),
        (
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "regtest",
            "unknown bech32 prefix 'bc' for network regtest (it belongs to network main)",
        ),
        (
            "bcrt1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccaqhe07",
            "test",
            "unknown bech32 prefix 'bcrt' for network test (it belongs to network regtest)",
        ),
        (
            "rb1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccg04rcz",
            "main",
            "unknown bech32 prefix 'rb' for network main (it belongs to network regtest)",
        ),
        (
            "RJJBTXXfgE5DjiPQpZSnYrQe73NhrBZ3ao",
            "test",
            "unknown base58 prefix 0x3c for network test (it belongs to network regtest)",
        ),
    ],
)
def test_address_of_another_network_is_rejected(address: str, network: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        address_to_script(address, network)
    message = str(info.value)
    assert fragment in message
    assert repr(address) in message


def test_testnet_base58_is_also_core_regtest() -> None:
    # Bitcoin Core's test and regtest share base58 version bytes.
    script = address_to_script("mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt", "test")
    assert script == address_to_script("mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt", "regtest")
    assert script.hex() == f"76a914{GENESIS_PKH}88ac"


def test_unknown_network() -> None:
    address = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    with pytest.raises(AddressError) as info:
        address_to_script(address, "mainnet")
    assert isinstance(info.value, ValueError)
    assert "unknown network 'mainnet'" in str(info.value)
    assert repr(address) in str(info.value)
    with pytest.raises(ValueError, match="unknown network 'testnet'"):
        script_to_address(bytes.fromhex(f"76a914{GENESIS_PKH}88ac"), "testnet")


def test_unknown_flavor() -> None:
    with pytest.raises(ValueError, match="unknown flavor 'knots'"):
        script_to_address(bytes.fromhex(f"76a914{GENESIS_PKH}88ac"), "regtest", flavor="knots")


# ---------------------------------------------------------------------------
# Regtest: Bitcoin Core and bcoin forms

# Bitcoin Core regtest forms of the genesis pubkey hash and the BIP 173 P2WSH program.
# The m.../2... strings were cross-checked with bcoin 1.0.2
# (Address.fromPubkeyhash(h).toString('testnet'), same version bytes as Core regtest)
# and the bcrt1 strings with bcoin's bech32 codec (require('bstring').bech32.encode('bcrt', 0, h)).
CORE_REGTEST = [
    ("mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt", f"76a914{GENESIS_PKH}88ac"),
    ("2N2GDNJ4rEm6NxfMC9ck8VuRdheQzXWaNZv", f"a914{GENESIS_PKH}87"),
    ("bcrt1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccaqhe07", f"0014{GENESIS_PKH}"),
    ("bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf4jry", f"0020{P2WSH_PROGRAM}"),
]

# Produced by bcoin 1.0.2 in a scratch npm install (/tmp/bcoinsrc), e.g.
#   node -e "const {Address}=require('bcoin');
#            console.log(Address.fromPubkeyhash(Buffer.from('62e9...8f18','hex'))
#                        .toString('regtest'))"
# with fromScripthash / fromWitnessPubkeyhash / fromWitnessScripthash for the others;
# the scripts are bcoin's Script.fromAddress(...).toRaw().
BCOIN_REGTEST = [
    ("RJJBTXXfgE5DjiPQpZSnYrQe73NhrBZ3ao", f"76a914{GENESIS_PKH}88ac"),
    ("GSruo8yL4FswkBKWHL7mt6RLFwhxBe2GVb", f"a914{GENESIS_PKH}87"),
    ("rb1qvt5s0v2uhuna2sjnn84ldu8m2r4m3rccg04rcz", f"0014{GENESIS_PKH}"),
    ("rb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qffcjef", f"0020{P2WSH_PROGRAM}"),
    # Hash of twenty 0x01 bytes: Address.fromPubkeyhash(Buffer.alloc(20, 1)).toString('regtest')
    ("R9NVxTj2ewfiTUzAfn7FSsq9kxNt6fjaaZ", "76a914" + "01" * 20 + "88ac"),
    ("GHwEJ5Ah2yUSTwvG8YnEn7qquri8RXchJC", "a914" + "01" * 20 + "87"),
    ("rb1qqyqszqgpqyqszqgpqyqszqgpqyqszqgpefl3jh", "0014" + "01" * 20),
    (
        "rb1qqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqjz0ya4",
        "0020" + "02" * 32,
    ),
]


@pytest.mark.parametrize(("address", "script_hex"), CORE_REGTEST)
def test_core_regtest(address: str, script_hex: str) -> None:
    assert address_to_script(address, "regtest").hex() == script_hex
    assert script_to_address(bytes.fromhex(script_hex), "regtest") == address
    assert script_to_address(bytes.fromhex(script_hex), "regtest", flavor="core") == address


@pytest.mark.parametrize(("address", "script_hex"), BCOIN_REGTEST)
def test_bcoin_regtest(address: str, script_hex: str) -> None:
    assert address_to_script(address, "regtest").hex() == script_hex
    assert script_to_address(bytes.fromhex(script_hex), "regtest", flavor="bcoin") == address
    # Not valid on the other networks.
    for network in ("main", "test"):
        with pytest.raises(AddressError):
            address_to_script(address, network)


def test_bcoin_regtest_prefix_shapes() -> None:
    p2pkh = bytes.fromhex(f"76a914{GENESIS_PKH}88ac")
    p2sh = bytes.fromhex(f"a914{GENESIS_PKH}87")
    p2tr = bytes.fromhex("5120" + "03" * 32)
    assert (script_to_address(p2pkh, "regtest", flavor="bcoin") or "").startswith("R")
    assert (script_to_address(p2sh, "regtest", flavor="bcoin") or "").startswith("G")
    assert (script_to_address(p2tr, "regtest", flavor="bcoin") or "").startswith("rb1p")
    assert (script_to_address(p2tr, "regtest") or "").startswith("bcrt1p")
    # On main and test the flavors agree.
    for network in ("main", "test"):
        for script in (p2pkh, p2sh, p2tr):
            assert script_to_address(script, network, flavor="bcoin") == script_to_address(
                script, network
            )


def test_bcoin_v1_bech32_address_is_rejected() -> None:
    # bcoin 1.0.2 predates BIP 350 and encodes witness v1 with bech32:
    # Address.fromProgram(1, Buffer.alloc(32, 3)).toString('regtest') gives this string.
    address = "rb1pqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsgmxmkf"
    with pytest.raises(AddressError, match="requires bech32m") as info:
        address_to_script(address, "regtest")
    assert repr(address) in str(info.value)
    # The BIP 350 form of the same program is accepted.
    bech32m = script_to_address(bytes.fromhex("5120" + "03" * 32), "regtest", flavor="bcoin")
    assert bech32m is not None and bech32m != address
    assert address_to_script(bech32m, "regtest").hex() == "5120" + "03" * 32


def test_bcoin_legacy_base58_witness_address_is_rejected() -> None:
    # bcoin 1.0.2: Address.fromWitnessPubkeyhash(<genesis pkh>).toBase58('regtest')
    address = "HVMbXvqk49LyEqTPGe2dDfG3XaobGRCRwd7vq"
    with pytest.raises(AddressError, match="bcoin legacy base58 witness address") as info:
        address_to_script(address, "regtest")
    assert repr(address) in str(info.value)


# ---------------------------------------------------------------------------
# Round trips and scripts without an address

ROUND_TRIP_SCRIPTS = [
    f"76a914{GENESIS_PKH}88ac",
    "76a914" + "00" * 20 + "88ac",
    f"a914{GENESIS_PKH}87",
    "a914" + "ff" * 20 + "87",
    f"0014{GENESIS_PKH}",
    f"0020{P2WSH_PROGRAM}",
    "5120" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    "5102abcd",
    "5228" + "11" * 40,
    "6010" + "22" * 16,
]


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("flavor", ["core", "bcoin"])
@pytest.mark.parametrize("script_hex", ROUND_TRIP_SCRIPTS)
def test_round_trip(script_hex: str, network: str, flavor: str) -> None:
    script = bytes.fromhex(script_hex)
    address = script_to_address(script, network, flavor=flavor)
    assert address is not None
    assert address_to_script(address, network) == script
    if address.startswith(("bc1", "tb1", "bcrt1", "rb1")):
        # bech32 addresses may also be written in uppercase.
        assert address_to_script(address.upper(), network) == script


@pytest.mark.parametrize(
    "script_hex",
    [
        "",
        "6a",  # OP_RETURN
        "6a24aa21a9ed" + "00" * 32,  # witness commitment
        "41" + "04" + "11" * 64 + "ac",  # P2PK
        "0015" + "00" * 21,  # v0 program of 21 bytes
        "0010" + "00" * 16,  # v0 program of 16 bytes
        "5101ab",  # v1 program of 1 byte
        "5129" + "00" * 41,  # v1 program of 41 bytes
        "0014" + "00" * 19,  # push length does not match
        "76a914" + "00" * 20 + "88ad",  # not quite P2PKH
        "a914" + "00" * 20 + "88",  # not quite P2SH
        "4f02abcd",  # OP_1NEGATE is not a witness version
    ],
)
def test_scripts_without_address(script_hex: str) -> None:
    for network in NETWORKS:
        assert script_to_address(bytes.fromhex(script_hex), network) is None


# ---------------------------------------------------------------------------
# Error messages and odd inputs


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("", "empty address"),
        (" 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "whitespace"),
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa\n", "whitespace"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8F3t4", "mixed case bech32"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3tb", "invalid bech32 character 'b'"),
        ("1", "base58 data too short"),
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa" * 4, "too long"),
    ],
)
def test_error_messages_name_the_address(address: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        address_to_script(address, "main")
    message = str(info.value)
    assert repr(address) in message
    assert fragment in message
    assert info.value.address == address


def test_address_error_pickles() -> None:
    with pytest.raises(AddressError) as info:
        address_to_script("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "main")
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, AddressError)
    assert str(copy) == str(info.value)


def test_networks_constant() -> None:
    assert NETWORKS == ("main", "test", "regtest")


def test_a_base58_regtest_address_that_starts_like_the_bcoin_bech32_prefix() -> None:
    # bcoin's regtest base58 addresses start with R; "RB1..." also reads as the bech32 prefix
    # "rb1" (case-insensitively), but mixed case is never bech32: it is base58 (a real
    # address bcoin handed out, which the pool once refused).
    script = address_to_script("RB1dw3V5cEwYThjS3dfyz4xbXCqdCqB5FN", "regtest")
    assert script == bytes.fromhex("76a91412ff2d8dfb53bb0522515761a19fade42acfb3a088ac")
    with pytest.raises(AddressError, match="mixed case bech32"):
        address_to_script("rB1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup", "regtest")
