"""The node's wallet, as payouts use it: build and sign a transaction without sending it, send
it (again, harmlessly), and ask where a transaction stands.

Where it sits: `farmpool payout` (pool/accounting/payout.py) records each signed transaction
(txid and raw hex) before `broadcast` lets money move. Building never moves money: Bitcoin
Core and the SV node fund and sign with createrawtransaction + fundrawtransaction +
signrawtransaction(withwallet); bcoin (whose createrawtransaction cannot make a transaction
without inputs) with its wallet's REST call `POST /wallet/ID/create` and `sign: true`. Either
way the signed transaction is decoded by the node and checked to pay exactly the planned
amounts to exactly the planned scripts before it is returned.

Errors an operator acts on have their own class: InsufficientFunds, WalletLocked,
AddressRejected, BroadcastFailed; anything else is a WalletError naming the call.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pool.chain.addresses import AddressError, address_to_script
from pool.chain.rpc import NodeError, NodeRPC, NodeRPCError, to_satoshis
from pool.config import PayoutSettings
from pool.errors import OperationFailed
from pool.units import MAX_MONEY_SAT, SAT_PER_BTC, btc_text

#: Blocks before a coinbase output may be spent (consensus).
COINBASE_MATURITY = 100


class WalletError(RuntimeError, OperationFailed):
    """The wallet could not do what a payout needs; the message says what and why."""


class InsufficientFunds(WalletError):
    pass


class WalletLocked(WalletError):
    pass


class AddressRejected(WalletError):
    pass


class BroadcastFailed(WalletError):
    pass


@dataclass(frozen=True)
class SignedTx:
    """A funded, signed transaction that has not been sent (as far as we know)."""

    txid: str
    hex: str
    fee_sat: int


def _classify(exc: NodeError, doing: str) -> WalletError:
    text = str(exc)
    low = text.lower()
    if "insufficient funds" in low or "not enough funds" in low:
        return InsufficientFunds(f"{doing}: the wallet has not enough spendable funds ({text})")
    if "passphrase" in low or "locked" in low:
        return WalletLocked(
            f"{doing}: the wallet is locked; unlock it (walletpassphrase) and run again ({text})"
        )
    return WalletError(f"{doing}: {text}")


class Wallet:
    """The payout wallet behind a node (Bitcoin Core / SV, or bcoin)."""

    def __init__(self, node: NodeRPC, settings: PayoutSettings, network: str) -> None:
        self.node = node
        self.network = network
        self.settings = settings
        self.rpc = NodeRPC(settings.wallet_url, node.timeout_s) if settings.wallet_url else node
        kind = settings.wallet
        if kind == "auto":
            info = node.call("getnetworkinfo")
            subversion = str(info.get("subversion", "")) if isinstance(info, dict) else ""
            kind = "bcoin" if "bcoin" in subversion.lower() else "core"
        if kind == "bcoin" and not settings.wallet_url:
            raise WalletError(
                "payout.wallet_url: bcoin serves its wallet on its own port "
                "(http://x:API_KEY@127.0.0.1:48334 on regtest); set it in the config"
            )
        self.kind = kind

    # --- addresses ------------------------------------------------------------------------

    def check_address(self, address: str) -> bytes:
        """The address's script, or AddressRejected if we or the node refuse it."""
        try:
            script = address_to_script(address, self.network)
        except AddressError as exc:
            raise AddressRejected(f"address {address!r}: {exc}") from None
        try:
            answer = self.node.call("validateaddress", address)
        except NodeRPCError as exc:
            raise AddressRejected(f"address {address!r}: the node says {exc.message}") from None
        if not isinstance(answer, dict) or not answer.get("isvalid"):
            raise AddressRejected(f"address {address!r}: the node says it is not valid")
        return script

    # --- building --------------------------------------------------------------------------

    def build(self, outputs: list[tuple[str, int]]) -> SignedTx:
        """Fund and sign a transaction paying `outputs` (address, satoshis); nothing is sent.
        The network fee comes from the wallet's other coins (tenants receive exact amounts)."""
        if not outputs:
            raise WalletError("a payout transaction needs at least one output")
        if len({a for a, _ in outputs}) != len(outputs):
            raise WalletError("two outputs of one payout transaction pay the same address")
        if self.kind == "bcoin":
            signed = self._build_bcoin(outputs)
        else:
            signed = self._build_core(outputs)
        self._verify(signed, outputs)
        return signed

    def _build_core(self, outputs: list[tuple[str, int]]) -> SignedTx:
        amounts = {address: btc_text(sat) for address, sat in outputs}
        try:
            raw = self.node.call("createrawtransaction", [], amounts)
        except NodeError as exc:
            raise _classify(exc, "createrawtransaction") from None
        rate = Decimal(self.settings.fee_rate_sat_vb * 1000) / SAT_PER_BTC  # BTC per kvB
        try:
            funded = self.rpc.call("fundrawtransaction", raw, {"feeRate": rate})
        except NodeError as exc:
            raise _classify(exc, "fundrawtransaction") from None
        try:
            signed = self.rpc.call("signrawtransactionwithwallet", funded["hex"])
        except NodeRPCError as exc:
            if exc.code != -32601:
                raise _classify(exc, "signrawtransactionwithwallet") from None
            try:  # before Bitcoin Core 0.17, and the SV node
                signed = self.rpc.call("signrawtransaction", funded["hex"])
            except NodeError as exc2:
                raise _classify(exc2, "signrawtransaction") from None
        except NodeError as exc:
            raise _classify(exc, "signrawtransactionwithwallet") from None
        if not isinstance(signed, dict) or not signed.get("complete"):
            errors = signed.get("errors") if isinstance(signed, dict) else signed
            raise WalletLocked(
                f"the wallet could not sign the payout (locked, or keys missing): {errors}"
            )
        txid = self.node.call("decoderawtransaction", signed["hex"])["txid"]
        return SignedTx(str(txid), str(signed["hex"]), to_satoshis(funded["fee"]))

    def _build_bcoin(self, outputs: list[tuple[str, int]]) -> SignedTx:
        body = {
            "outputs": [{"address": address, "value": sat} for address, sat in outputs],
            "rate": self.settings.fee_rate_sat_vb * 1000,  # satoshis per kvB
            "sign": True,
        }
        answer = self._rest("POST", f"/wallet/{self.settings.wallet_id}/create", body)
        fee = answer.get("fee")
        if not isinstance(answer.get("hex"), str) or not isinstance(fee, int):
            raise WalletError(f"bcoin's wallet create answered without hex or fee: {answer!r}")
        txid = self.node.call("decoderawtransaction", answer["hex"])["txid"]
        return SignedTx(str(txid), answer["hex"], fee)

    def _rest(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._rest_any(method, path, body)
        if not isinstance(answer, dict):
            raise WalletError(f"bcoin wallet {method} {path} answered {answer!r}")
        return answer

    def _rest_any(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        parts = urlsplit(self.rpc.url)
        url = f"{parts.scheme}://{parts.hostname}:{parts.port}{path}"
        auth = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        doing = f"bcoin wallet {method} {path}"
        try:
            with urllib.request.urlopen(request, timeout=self.rpc.timeout_s) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]["message"]
            raise _classify(NodeError(f"HTTP {exc.code}: {detail}"), doing) from None
        except (OSError, ValueError) as exc:
            raise WalletError(f"{doing}: {exc}") from None
        return answer

    def _verify(self, signed: SignedTx, outputs: list[tuple[str, int]]) -> None:
        """The signed transaction pays each planned script its exact amount, once."""
        decoded = self.node.call("decoderawtransaction", signed.hex)
        paid = Counter(
            (bytes.fromhex(o["scriptPubKey"]["hex"]), to_satoshis(o["value"]))
            for o in decoded["vout"]
        )
        for address, sat in outputs:
            key = (address_to_script(address, self.network), sat)
            if paid[key] < 1:
                raise WalletError(
                    f"the signed transaction {signed.txid} does not pay {btc_text(sat)} BTC "
                    f"to {address}; nothing was sent"
                )
            paid[key] -= 1
        if decoded["txid"] != signed.txid:
            raise WalletError(f"the wallet's txid {signed.txid} is not the decoded one")
        if signed.fee_sat < 0:
            raise WalletError(f"the wallet reports a negative fee for {signed.txid}")

    # --- sending and looking ---------------------------------------------------------------

    def broadcast(self, raw_hex: str) -> None:
        """Send a signed transaction; one the node already has counts as sent."""
        try:
            self.node.call("sendrawtransaction", raw_hex)
        except NodeRPCError as exc:
            low = exc.message.lower()
            if "already" in low or "txn-already-known" in low:
                return
            raise BroadcastFailed(f"the node refused the transaction: {exc.message}") from None
        if self.kind == "bcoin" and not self._node_took(raw_hex):
            # bcoin answers with the txid before it checks the transaction (it relays it and
            # only logs a refusal): whether it took it is seen in its mempool or chain.
            raise BroadcastFailed(
                "the node did not take the transaction (bcoin answers before it checks it; "
                "its log names the reason, e.g. bad-txns-inputs-spent)"
            )

    def _node_took(self, raw_hex: str, timeout_s: float = 5.0) -> bool:
        """Whether the node holds the transaction (mempool or chain) within `timeout_s`; as
        soon as an input of it is spent and it is not there, it was refused."""
        decoded = self.node.call("decoderawtransaction", raw_hex)
        txid = decoded["txid"]
        deadline = time.monotonic() + timeout_s
        while True:
            # Inputs first: if the transaction goes in meanwhile, the lookup after sees it.
            taken = any(
                self.node.call("gettxout", i["txid"], i["vout"], True) is None
                for i in decoded["vin"]
            )
            try:
                self.node.call("getmempoolentry", txid)
                return True
            except NodeRPCError:
                pass
            if self.seen_by_node(raw_hex) == "chain":
                return True
            if taken or time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _wallet_tx(self, txid: str) -> dict[str, Any] | None:
        """The wallet's `gettransaction`, or None if it does not know the transaction."""
        try:
            answer = self.rpc.call("gettransaction", txid)
        except NodeRPCError as exc:
            if exc.code in (-5, -8) or "not found" in exc.message.lower():
                return None
            raise
        return answer if isinstance(answer, dict) else None

    def _confirmations_of(self, answer: dict[str, Any]) -> int:
        """Confirmations of a wallet transaction (0: mempool; negative: conflicted). bcoin's
        wallet RPC answers `confirmations: null` even for a mined transaction: then its block
        says (the node's header of it; -1 if that block left the main chain)."""
        confirmations = answer.get("confirmations")
        if isinstance(confirmations, int) and not isinstance(confirmations, bool):
            return confirmations
        block = answer.get("blockhash")
        if not isinstance(block, str) or not block:
            return 0
        header = self.node.call("getblockheader", block, True)
        depth = header.get("confirmations") if isinstance(header, dict) else None
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise WalletError(f"getblockheader {block} has no confirmations: {header!r}")
        return depth

    def confirmations(self, txid: str) -> int | None:
        """The wallet's view of a transaction: confirmations (0 in the mempool, negative if
        conflicted), or None if the wallet does not know it."""
        answer = self._wallet_tx(txid)
        return None if answer is None else self._confirmations_of(answer)

    def wait_known(self, txid: str, timeout_s: float = 30.0) -> bool:
        """Wait until the wallet has seen a broadcast transaction (so that the next build
        does not pick the same coins)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.confirmations(txid) is not None:
                return True
            time.sleep(0.1)
        return False

    def seen_by_node(self, raw_hex: str) -> str | None:
        """Where the node has this transaction by its unspent outputs: "chain", "mempool", or
        None (not there, or every output already spent)."""
        decoded = self.node.call("decoderawtransaction", raw_hex)
        for include_mempool, where in ((False, "chain"), (True, "mempool")):
            for n in range(len(decoded["vout"])):
                if self.node.call("gettxout", decoded["txid"], n, include_mempool) is not None:
                    return where
        return None

    def spendable_sat(self) -> int:
        """What the wallet can spend on payouts now. Bitcoin Core / SV: `getbalance` (its
        confirmed coins and its own unconfirmed change; coinbases once mature). bcoin, whose
        getbalance counts immature coinbases: its unspent coins, less coinbases its coin
        selection would not take yet (tip + 1 < coin height + 100)."""
        if self.kind != "bcoin":
            return to_satoshis(self.rpc.call("getbalance"))
        coins = self._rest_any("GET", f"/wallet/{self.settings.wallet_id}/coin", None)
        if not isinstance(coins, list):
            raise WalletError(f"bcoin's wallet coin list answered {coins!r}")
        tip = self.node.call("getblockcount")
        if not isinstance(tip, int) or isinstance(tip, bool) or tip < 0:
            raise WalletError(f"getblockcount answered {tip!r}")
        total = 0
        for coin in coins:
            value = coin.get("value") if isinstance(coin, dict) else None
            height = coin.get("height") if isinstance(coin, dict) else None
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_MONEY_SAT
                or not isinstance(height, int)
            ):
                raise WalletError(f"bcoin's wallet listed a coin it cannot describe: {coin!r}")
            if coin.get("coinbase") and (height < 0 or tip + 1 < height + COINBASE_MATURITY):
                continue
            total += value
        return total

    # --- what else spends a payout's inputs (pool/accounting/conflicts.py) ------------------

    def conflicts(self, txid: str) -> list[str]:
        """Transactions the wallet knows that conflict with or replace `txid` (Bitcoin Core /
        SV: walletconflicts, replaced_by_txid; bcoin lists none, and forgets a transaction
        once a conflicting one confirms)."""
        answer = self._wallet_tx(txid)
        if answer is None:
            return []
        found = list(answer.get("walletconflicts") or [])
        if answer.get("replaced_by_txid"):
            found.append(answer["replaced_by_txid"])
        return [t for t in found if is_txid(t) and t != txid]

    def transaction(self, txid: str) -> tuple[str, int] | None:
        """A wallet transaction's raw hex and confirmations (0: mempool; negative: conflicted),
        or None if the wallet does not know it."""
        answer = self._wallet_tx(txid)
        if answer is None or not isinstance(answer.get("hex"), str):
            return None
        return answer["hex"], self._confirmations_of(answer)


def is_txid(value: Any) -> bool:
    """A transaction id as nodes write it: 64 hex digits."""
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True
