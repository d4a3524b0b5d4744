"""Block templates: the node's getblocktemplate answer, checked and typed.

The first step of work flowing to miners. An answer that lacks a field or carries one of the
wrong shape is refused here with the field's name, so that nothing downstream builds a job
from half a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pool.chain.rpc import BadNodeAnswer, NodeRPC, NodeRPCError
from pool.hashing import hash_from_hex
from pool.hexfields import HexError, parse_hex


class TemplateError(BadNodeAnswer):
    """A getblocktemplate answer the pool cannot build a job from."""


@dataclass(frozen=True, slots=True)
class TemplateTx:
    """One transaction of the template."""

    data: bytes
    txid: bytes  # internal byte order
    wtxid: bytes  # internal byte order (equal to txid without witness)
    fee: int


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    """A typed getblocktemplate answer."""

    height: int
    version: int
    prevhash: bytes  # internal (header) byte order
    bits: int
    target: int
    curtime: int
    mintime: int
    coinbasevalue: int
    transactions: tuple[TemplateTx, ...]
    witness_commitment: bytes | None  # the whole output script, or None without segwit
    longpollid: str | None
    rules: tuple[str, ...]

    @property
    def prevhash_hex(self) -> str:
        return self.prevhash[::-1].hex()

    @property
    def segwit_active(self) -> bool:
        """Segwit is in force for this block: the node lists the rule (BIP9 `!` or not).

        bcoin offers a witness commitment even before activation; a block then must not
        carry the coinbase witness, so the commitment alone decides nothing.
        """
        return "segwit" in self.rules or "!segwit" in self.rules

    @property
    def fees(self) -> int:
        return sum(tx.fee for tx in self.transactions)


def _field(answer: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in answer:
        raise TemplateError(f"getblocktemplate answer has no {name!r}")
    value = answer[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TemplateError(f"getblocktemplate field {name!r} is {value!r}; wrong type")
    return value


def _hex(name: str, value: Any, size: int | None = None) -> bytes:
    try:
        return parse_hex(value, size)
    except HexError as exc:
        raise TemplateError(f"getblocktemplate field {name!r}: {exc}") from None


def parse_template(answer: Any) -> BlockTemplate:
    """Check and type a getblocktemplate answer."""
    if not isinstance(answer, Mapping):
        raise TemplateError(f"getblocktemplate answered {type(answer).__name__}, not an object")
    height = _field(answer, "height", int)
    version = _field(answer, "version", int)
    prevhash = _hex("previousblockhash", _field(answer, "previousblockhash", str), 32)[::-1]
    bits = int.from_bytes(_hex("bits", _field(answer, "bits", str), 4), "big")
    target = int.from_bytes(_hex("target", _field(answer, "target", str), 32), "big")
    curtime = _field(answer, "curtime", int)
    mintime = answer.get("mintime", curtime)
    if isinstance(mintime, bool) or not isinstance(mintime, int):
        raise TemplateError(f"getblocktemplate field 'mintime' is {mintime!r}; wrong type")
    coinbasevalue = _field(answer, "coinbasevalue", int)
    if coinbasevalue < 0 or height < 0:
        raise TemplateError("getblocktemplate has a negative height or coinbasevalue")
    txs = []
    for i, item in enumerate(_field(answer, "transactions", list)):
        if not isinstance(item, Mapping):
            raise TemplateError(f"getblocktemplate transactions[{i}] is not an object")
        data = _hex(f"transactions[{i}].data", item.get("data"))
        txid = hash_from_hex(_hex(f"transactions[{i}].txid", item.get("txid"), 32).hex())
        wtxid_hex = item.get("hash", item.get("txid"))
        wtxid = hash_from_hex(_hex(f"transactions[{i}].hash", wtxid_hex, 32).hex())
        fee = item.get("fee", 0)
        if isinstance(fee, bool) or not isinstance(fee, int):
            raise TemplateError(f"getblocktemplate transactions[{i}].fee is {fee!r}")
        txs.append(TemplateTx(data, txid, wtxid, fee))
    commitment_hex = answer.get("default_witness_commitment")
    commitment = None
    if commitment_hex is not None:
        commitment = _hex("default_witness_commitment", commitment_hex)
        if len(commitment) < 38 or commitment[:6] != bytes.fromhex("6a24aa21a9ed"):
            raise TemplateError(
                f"default_witness_commitment {commitment_hex!r} is not an OP_RETURN commitment"
            )
    longpollid = answer.get("longpollid")
    rules = answer.get("rules", [])
    if not isinstance(rules, list):
        raise TemplateError(f"getblocktemplate field 'rules' is {rules!r}; expected a list")
    return BlockTemplate(
        height=height,
        version=version,
        prevhash=prevhash,
        bits=bits,
        target=target,
        curtime=curtime,
        mintime=mintime,
        coinbasevalue=coinbasevalue,
        transactions=tuple(txs),
        witness_commitment=commitment,
        longpollid=longpollid if isinstance(longpollid, str) else None,
        rules=tuple(str(r) for r in rules),
    )


def template_request(segwit: bool, longpollid: str | None = None) -> dict[str, Any]:
    """The getblocktemplate parameter object for a node with or without segwit."""
    request: dict[str, Any] = {"rules": ["segwit"] if segwit else []}
    if longpollid is not None:
        request["longpollid"] = longpollid
    return request


def detect_segwit(rpc: NodeRPC) -> bool:
    """Ask the node whether it knows segwit.

    A segwit node answers a template request with the segwit rule by listing the rule (once
    active) or offering a witness commitment (bcoin does before activation too). Nodes without
    segwit either ignore the rule (Bitcoin SV) or refuse it; then a plain request must work.
    """
    try:
        answer = rpc.call("getblocktemplate", template_request(True))
    except NodeRPCError as exc:
        try:
            rpc.call("getblocktemplate", template_request(False))
        except NodeRPCError:
            raise exc from None
        return False
    if not isinstance(answer, Mapping):
        raise TemplateError(f"getblocktemplate answered {type(answer).__name__}, not an object")
    rules = answer.get("rules") or []
    return bool(answer.get("default_witness_commitment") or "segwit" in rules or "!segwit" in rules)


def fetch_template(
    rpc: NodeRPC, segwit: bool, longpollid: str | None = None, timeout_s: float | None = None
) -> BlockTemplate:
    """getblocktemplate (blocking; run it off the reactor thread)."""
    answer = rpc.call("getblocktemplate", template_request(segwit, longpollid), timeout_s=timeout_s)
    return parse_template(answer)
