"""The ONLY place where values leave MPC. An auditor reads this file to see every reveal.

`reveal_to_receivers` opens exactly the vectors listed by the plan's `reveal` node, stacked
into one output call, to the plan's receivers only; other parties learn nothing. A test
enforces that no other runtime module calls `mpc.output`. With IQ_AUDIT_FILE=path set, each
party appends one JSON line per reveal to that file: its index and exactly what it received.
"""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

def _audit_to_file(pid: int | None, node: dict, received, **extra) -> None:
    path = os.environ.get("IQ_AUDIT_FILE")
    if not path:
        return
    line = json.dumps({"pid": pid, "reveal": node["id"], "received": received, **extra}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one write of an O_APPEND file: lines of parties do not interleave
    finally:
        os.close(fd)


def audit_received(party: str, node_id: str, result: dict) -> None:
    """An output-only receiver's audit line (runtime/launch/output_party.py): what it recombined."""
    _audit_to_file(None, {"id": node_id}, result, party=party)


async def open_match_tags(mpc, node: dict, tags) -> list[int]:
    """Fast record linkage only (runtime/secure/linkage_fast.py; leakage item `match_pattern`, allowed by
    `linkage = "fast"` in every linked dataset's policy): open the keyed-PRF tags of the shuffled
    rows to every computing party. What this tells a party is which positions share a key."""
    opened = await mpc.output(tags)
    values = [int(v) for v in np.asarray(opened, dtype=object).ravel()]
    sizes = Counter(Counter(values).values())
    _audit_to_file(mpc.pid, node, {"item": "match_pattern", "tags": len(values),
                                   "run_sizes": {str(s): c for s, c in sorted(sizes.items())}})
    return values


async def open_comparisons(mpc, node: dict, bits) -> np.ndarray:
    """Oblivious record linkage (runtime/secure/quicksort.py; leakage item `sort_comparisons`): open one
    level of quicksort comparison outcomes on shuffled, distinct values to every computing party.
    Their distribution depends only on the random order the shuffle made, not on the data."""
    opened = await mpc.output(bits)
    out = np.array([int(v) for v in np.asarray(opened, dtype=object).ravel()], dtype=np.int64)
    _audit_to_file(mpc.pid, node, {"item": "sort_comparisons", "count": int(out.size)})
    return out


async def open_permutation(mpc, node: dict, shares) -> np.ndarray:
    """Oblivious record linkage (runtime/secure/radix.py; leakage item `sort_comparisons`): open a
    secret permutation of positions composed with a fresh shuffle that no coalition of t parties
    knows (sigma o pi^-1). It is a uniformly random permutation, whatever sigma and the data."""
    opened = await mpc.output(shares)
    out = np.array([int(v) for v in np.asarray(opened, dtype=object).ravel()], dtype=np.int64)
    _audit_to_file(mpc.pid, node, {"item": "sort_comparisons", "count": int(out.size), "opened": "permutation"})
    return out


async def open_masked(mpc, shares):
    """Inside a comparison of the oblivious sort (runtime/quicksort.less_than_zero): open a + r for a
    difference a of l bits and a random r of l + k bits (k = MPyC's statistical security parameter),
    exactly as MPyC's own comparison does internally. Statistically hides a; not a leakage item."""
    return await mpc.output(shares)


async def send_shuffle_seed(mpc, sender: int, receivers: list[int]) -> int | None:
    """The shuffle (runtime/secure/linkage_fast.py): `sender` draws a fresh random seed and sends it to the
    other parties of `receivers`, who apply the permutation it defines. A random number, no data;
    returns the seed at the receivers, None elsewhere."""
    import secrets

    got = await mpc.transfer(secrets.randbits(128) if mpc.pid == sender else None,
                             senders=[sender], receivers=receivers)
    return got[0] if got else None


async def exchange_status(mpc, message: dict) -> list[dict]:
    """Every party tells every other its status (plan hash, data ok) before any share is sent.
    Plaintext, contains no data."""
    return await mpc.transfer(message)


async def reveal_to_receivers(mpc, node: dict, values: dict, receivers: list[int],
                              frac: dict[str, int], output_links: dict | None = None) -> dict[str, list] | None:
    """Open the plan's reveal node: returns {node id: per-cell values} at receivers, None elsewhere.
    Secret integers holding round(v * 2**frac) are decoded to v after opening. Receivers that do
    not compute (`output_links`: name -> connection, runtime/launch/output_party.py) get this
    party's own shares of the same vector, which they recombine; a share alone is uniformly random."""
    ids = node["inputs"]
    stacked = mpc.np_vstack([values[i].reshape(1, -1) if values[i].ndim == 1 else values[i] for i in ids])
    if output_links:
        from insightql.runtime.launch.output_party import deliver_shares
        own = await mpc.gather(stacked)  # this party's shares (field elements), nothing opened
        await deliver_shares(output_links, node["id"], [str(int(v)) for v in np.asarray(own.value).ravel()],
                             own.field.modulus)
    sent = {"shares_sent_to": sorted(output_links)} if output_links else {}
    opened = await mpc.output(stacked, receivers=receivers) if receivers else None
    if mpc.pid not in receivers:
        _audit_to_file(mpc.pid, node, None if opened is None else
                       [str(v) for v in np.asarray(opened, dtype=object).ravel()], **sent)
        return None
    opened = np.asarray(opened, dtype=object).reshape(len(ids), -1)
    result = {i: [int(v) / 2 ** frac[i] for v in row] for i, row in zip(ids, opened)}
    _audit_to_file(mpc.pid, node, result, **sent)
    return result
