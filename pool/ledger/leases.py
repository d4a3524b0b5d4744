"""Extranonce1 prefix leases: two stratum nodes on one database never hand out the same
extranonce1.

Where it sits: at startup, after the ledger writer has registered the node (its row in
`nodes`), `lease_prefix` gives the node its prefix byte: the one it already holds, or the
lowest free one. The column is unique, so two nodes starting at the same moment cannot take
the same byte: the second one's UPDATE fails on the constraint and it tries the next. A lease
is kept for good (a node that restarts gets its byte back; its miners' session ids stay
valid); `release_prefix` frees the byte of a node that is gone for good. The extranonce1
allocator (pool/stratum/extranonce.py) then hands out only values that begin with the byte.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from pool.errors import BadInput
from pool.ledger.models import Node

#: Prefix bytes: at most 256 stratum nodes per database.
PREFIXES = 256


class LeaseError(RuntimeError, BadInput):
    """No prefix is free (256 nodes hold one each), or the node is unknown."""


def lease_prefix(engine: Engine, node_id: int) -> int:
    """The node's extranonce1 prefix byte (leased now if it holds none)."""
    for _ in range(PREFIXES + 1):
        with engine.connect() as conn:
            held = conn.execute(select(Node.extranonce_prefix).where(Node.id == node_id)).first()
            if held is None:
                raise LeaseError(f"no node with id {node_id}")
            if held[0] is not None:
                return int(held[0])
            taken = set(
                conn.execute(
                    select(Node.extranonce_prefix).where(Node.extranonce_prefix.is_not(None))
                ).scalars()
            )
        free = next((p for p in range(PREFIXES) if p not in taken), None)
        if free is None:
            raise LeaseError(
                f"all {PREFIXES} extranonce1 prefixes are leased: free the prefix of a node "
                "that is gone (farmpool node release NAME)"
            )
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(Node)
                    .where(Node.id == node_id, Node.extranonce_prefix.is_(None))
                    .values(extranonce_prefix=free)
                )
        except IntegrityError:
            continue  # another node took that byte in the meantime: look again
    raise LeaseError("could not lease an extranonce1 prefix (too much contention)")


def release_prefix(engine: Engine, node_name: str) -> int | None:
    """Free the prefix of a node that will not come back; returns the byte it held."""
    with engine.begin() as conn:
        held = conn.execute(select(Node.extranonce_prefix).where(Node.name == node_name)).first()
        if held is None:
            raise LeaseError(f"no node named {node_name!r}")
        conn.execute(update(Node).where(Node.name == node_name).values(extranonce_prefix=None))
    return None if held[0] is None else int(held[0])
