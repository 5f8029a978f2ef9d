"""Pseudonymise identifiers before loading: person key = keyed hash of the normalised identifier.

Every organisation runs this with the SAME secret (agreed out of band, never given to the analyst
or the helper), so the same person gets the same key everywhere, and nobody without the secret can
recompute a key from a name. Keys are HMAC-SHA256 truncated to the catalog's `bits` (48 by
default: with a million persons per dataset a collision is expected with probability about
n^2 / 2^49 ~ 0.2%; use 64 bits when that matters). See spec/linkage.md, "Pseudonymisation".

    python examples/pseudonymise.py --secret-file secret.key --columns given_name,family_name,birth_date \
        --out-column person_id [--bits 48] < raw.csv > pseudonymised.csv

The identifying columns are replaced by the key column; rows missing any of them get an empty key.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import sys
import unicodedata


def normalise(value: str) -> str:
    """Case, accents, spacing and punctuation do not make a different person."""
    v = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c.isalnum() else " " for c in v.lower()).split())


def person_key(secret: bytes, parts: list[str], bits: int = 48) -> int:
    msg = "\x1f".join(normalise(p) for p in parts).encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--columns", required=True, help="identifying columns, comma-separated, in a fixed order")
    ap.add_argument("--out-column", default="person_id")
    ap.add_argument("--bits", type=int, default=48)
    a = ap.parse_args(argv)
    secret = open(a.secret_file, "rb").read().strip()
    if len(secret) < 16:
        raise SystemExit("error: the shared secret must have at least 16 bytes")
    cols = a.columns.split(",")
    reader = csv.DictReader(sys.stdin)
    rest = [c for c in reader.fieldnames if c not in cols]
    w = csv.DictWriter(sys.stdout, fieldnames=[a.out_column, *rest], lineterminator="\n")
    w.writeheader()
    for row in reader:
        parts = [row[c] or "" for c in cols]
        key = "" if not all(p.strip() for p in parts) else person_key(secret, parts, a.bits)
        w.writerow({a.out_column: key, **{c: row[c] for c in rest}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
