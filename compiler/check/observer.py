"""The observer model (spec/disclosure.md, section 1): which organisations' rows an observer can hold.

An observer is a set of receivers of the result (receivers may collude) together with at most t
computing parties (Shamir's threshold, t = (m - 1) // 2, m counted over every catalog party: at
least the threshold of any query's computing set, so the rules never weaken with it). It knows every
row held by an organisation in it. For a query reading datasets of the organisations `owners`,
the rows an observer holds are those of S = observer ∩ owners. The rules of spec/disclosure.md
section 2.3-2.6 must hold on what remains after S's rows are removed, for every S that some
observer can hold; this module lists those S at compile time, from the plan's public facts.
"""
from __future__ import annotations

from itertools import combinations


def threshold(parties: list[str]) -> int:
    return (len(parties) - 1) // 2


def observer_holdings(owners: list[str], receivers: list[str], parties: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty, proper subset S of `owners` that an observer can hold, sorted.

    S is possible when some receiver is in the observer and the owners in S that are not receivers
    number at most t: a receiver in S, or a receiver holding none of the query's data, brings the
    result; t computing parties bring their rows."""
    owners = sorted(set(owners))
    t = threshold(parties)
    outsider_receiver = any(r not in owners for r in receivers)
    out = []
    for size in range(1, len(owners)):
        for s in combinations(owners, size):
            if len([o for o in s if o not in receivers]) <= t and (outsider_receiver or any(o in receivers for o in s)):
                out.append(s)
    return out


def maximal(sets: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The sets not contained in another: where a complement is smallest (monotone rules)."""
    return [s for s in sets if not any(set(s) < set(o) for o in sets)]
