"""Generate the synthetic demo data: one CSV per dataset of examples/catalog.toml.

    python examples/generate_data.py                          # the shipped files in examples/data/
    python examples/generate_data.py --rows 1000000 --out /tmp/bench   # 1M rows per dataset

No real person is in these files. The marginals imitate what published counter-trafficking
statistics show (e.g. the IOM/CTDC and UNODC Global Report figures): most identified victims of
sexual exploitation are young women, labour exploitation is mostly men, a few nationalities
dominate and many appear rarely. The numbers are illustrative, not estimates.

Design:
* One pseudonymous person universe. A person's key is a keyed 48-bit bijective mix of their index
  (like the keyed hash the owners compute in production), so keys never collide and the same person
  has the same key at police and NGO. About 30% of NGO clients also appear at the police, where
  a person can have several rows (one per identification).
* A person's attributes (gender, age, nationality, exploitation type, region, ...) are drawn once and
  shared by every row of that person at every party; row attributes (dates, status, hours, debt)
  are drawn per row.
* Everything is vectorised numpy; one seed fixes every byte of every file (with a given numpy).
"""
from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "catalog.toml"
SEED = 20240730
DEFAULT_ROWS = {"police_victims": 1500, "ngo_clients": 1200, "helpline_reports": 900, "bank_flags": 600}
NGO_OVERLAP = 0.30  # share of NGO clients also known to the police
ROWS_PER_POLICE_PERSON = {1: 0.78, 2: 0.15, 3: 0.05, 4: 0.02}
FIRST_DAY, LAST_DAY = np.datetime64("2020-01-01"), np.datetime64("2025-12-31")
MASK48 = np.uint64((1 << 48) - 1)

# ------------------------------------------------------------------ distributions (weights, not %)
EXP_MIX = {
    "police": {"SexualExploitation": 52, "ForcedLabour": 28, "Other": 8, "Servitude": 4, "ForcedBegging": 3,
               "ChildLabour": 2, "ForcedMarriage": 2, "OrganRemoval": 0.3, "Surrogacy": 0.3,
               "ForcedAdoption": 0.2, "ForcedMilitaryByNonStateActors": 0.1},
    "ngo": {"SexualExploitation": 62, "ForcedLabour": 20, "Other": 5, "Servitude": 6, "ForcedBegging": 2,
            "ChildLabour": 2, "ForcedMarriage": 2.5, "OrganRemoval": 0.2, "Surrogacy": 0.2,
            "ForcedAdoption": 0.1},
    "helpline": {"SexualExploitation": 40, "ForcedLabour": 40, "Other": 7, "Servitude": 6, "ForcedBegging": 3,
                 "ChildLabour": 2, "ForcedMarriage": 2},
}
GROUP_OF_TYPE = {"SexualExploitation": "sexual", "ForcedLabour": "labour", "ChildLabour": "child",
                 "Servitude": "domestic", "ForcedMarriage": "domestic", "Other": "crime", "ForcedBegging": "crime"}
GENDERS = ("Feminine", "Masculine", "TransgenderFeminine", "TransgenderMasculine", "NonConforming",
           "NonSpecifiedUnknown")
GENDER_MIX = {  # in the order of GENDERS
    "sexual": (88, 6, 3.5, 0.4, 0.6, 1.5), "labour": (19, 79, 0.2, 0.2, 0.2, 1.4),
    "child": (45, 53, 0, 0, 0.5, 1.5), "domestic": (85, 13, 0.5, 0, 0.2, 1.3),
    "crime": (30, 68, 0.3, 0.2, 0.2, 1.3), "rare": (60, 38, 0, 0, 0, 2),
}
NATIONALITY_MIX = {  # a few dominant nationalities, then a long tail (other domain values get weight 0.4)
    "sexual": {"NL": 24, "RO": 12, "NG": 10, "HU": 8, "BG": 8, "TH": 4, "PL": 4, "UA": 3, "BR": 3, "CO": 3,
               "DO": 2, "VE": 2, "MD": 2, "CN": 2},
    "labour": {"RO": 12, "UA": 10, "PL": 10, "BG": 8, "VN": 8, "IN": 6, "PH": 6, "CN": 4, "NL": 3, "MA": 3,
               "HU": 3, "PK": 2, "BD": 2, "LT": 2, "SK": 2, "TR": 2},
    "child": {"NL": 20, "RO": 10, "VN": 8, "MA": 6, "AF": 6, "SY": 5, "ER": 5, "BG": 4},
    "domestic": {"PH": 15, "ID": 10, "IN": 8, "MA": 8, "NG": 6, "ER": 5, "NL": 5, "SY": 4, "AF": 4},
    "crime": {"NL": 20, "VN": 15, "RO": 15, "AL": 10, "MA": 8, "DZ": 5, "BG": 4, "LT": 3},
    "rare": {"NL": 10, "NG": 5, "RO": 5, "UA": 5},
}
INDUSTRY_MIX = {"A_AgricultureForestryAndFishing": 24, "C_Manufacturing": 14, "F_Construction": 16,
                "I_AccommodationAndFoodServiceActivities": 14, "T_ActivitiesOfHouseholdsAsEmployers": 8,
                "H_TransportationAndStorage": 7, "N_AdministrativeAndSupportServiceActivities": 6,
                "G_WholesaleAndRetailTradeRepairOfMotorVehicles": 5, "S_OtherServiceActivities": 4,
                "B_MiningAndQuarrying": 0.5, "Q_HumanHealthAndSocialWorkActivities": 1,
                "R_ArtsEntertainmentAndRecreation": 0.5}
STATUS_MIX = {"police": (55, 35, 10), "ngo": (40, 55, 5)}  # Possible, Actual, Not
REGION_MIX = (30, 20, 25, 25)  # North, East, South, West
RELATIONSHIP_MIX = (15, 50, 35)  # Familial, Acquainted, Unaquainted
CHANNEL_MIX = (55, 20, 10, 10, 5)  # Phone, Chat, Email, App, WebForm
FLAG_MIX = (25, 15, 15, 20, 10, 10, 5)
COUNTERPARTY_MIX = {"RO": 15, "BG": 10, "NG": 8, "CN": 8, "VN": 6, "UA": 8, "PL": 8, "TR": 6, "AE": 6,
                    "HK": 5, "NL": 10, "GB": 5, "HU": 3, "TH": 2}


def load_schema(path: Path = CATALOG) -> dict[str, dict[str, dict]]:
    """Column declarations per dataset, in catalog order (the CSV header order)."""
    from insightql.compiler.check.layout import resolve_layouts  # a dataset may reuse another's layout (like)
    raw, _, errors = resolve_layouts(tomllib.loads(path.read_text(encoding="utf-8")))
    if errors:
        raise ValueError(f"{path}: {errors[0].message}")
    return {name: ds["columns"] for name, ds in raw["datasets"].items()}


# ------------------------------------------------------------------ sampling helpers
def probs(weights, domain) -> np.ndarray:
    """A probability vector over `domain` from a dict or a tuple of weights."""
    if isinstance(weights, dict):
        unknown = set(weights) - set(domain)
        if unknown:
            raise ValueError(f"weights for values outside the domain: {sorted(unknown)}")
        w = np.array([float(weights.get(v, 0)) for v in domain])
    else:
        w = np.asarray(weights, dtype=float)
    return w / w.sum()


def pick(rng, n: int, p: np.ndarray) -> np.ndarray:
    """n category codes drawn from p (vectorised inverse CDF)."""
    cdf = np.cumsum(p)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


def pick_by_group(rng, groups: np.ndarray, table: dict[int, np.ndarray]) -> np.ndarray:
    out = np.zeros(len(groups), dtype=np.int64)
    for g, p in table.items():
        m = groups == g
        out[m] = pick(rng, int(m.sum()), p)
    return out


def mix48(index: np.ndarray, key: int) -> np.ndarray:
    """A keyed bijection on 48-bit integers: pseudonymous, collision-free person keys."""
    x = (index.astype(np.uint64) + np.uint64(key)) & MASK48
    for shift, mult in ((23, 0x9E3779B97F4B), (19, 0xC2B2AE3D27D5), (25, 0x165667B19E37)):
        x ^= x >> np.uint64(shift)
        x = (x * np.uint64(mult | 1)) & MASK48
    return x ^ (x >> np.uint64(21))


def dates(rng, n: int) -> np.ndarray:
    """ISO dates in [FIRST_DAY, LAST_DAY], more in later years (identifications grew over time)."""
    span = int((LAST_DAY - FIRST_DAY).astype(int)) + 1
    table = np.array([str(FIRST_DAY + i) for i in range(span)], dtype=object)
    return table[(span * rng.random(n) ** 0.8).astype(np.int64)]


def with_nulls(rng, n: int, share: float, base: np.ndarray | None = None) -> np.ndarray:
    null = rng.random(n) < share
    return null if base is None else (null | base)


# ------------------------------------------------------------------ persons
class Persons:
    """Per-person attributes as parallel arrays (codes into the catalog domains)."""

    def __init__(self, schema: dict[str, dict], party: str, n: int, rng):
        dom = lambda c: schema[c]["domain"]  # noqa: E731
        types = dom("exp_Type")
        self.exp = pick(rng, n, probs(EXP_MIX[party], types))
        group_names = list(GENDER_MIX)
        grp = np.array([group_names.index(GROUP_OF_TYPE.get(t, "rare")) for t in types])[self.exp]
        self.gender = pick_by_group(rng, grp, {i: probs(GENDER_MIX[g], GENDERS) for i, g in enumerate(group_names)})
        nat_p = {}
        for i, g in enumerate(group_names):
            w = {v: 0.4 for v in dom("prs_Nationality")} | NATIONALITY_MIX[g]
            nat_p[i] = probs(w, dom("prs_Nationality"))
        self.nat = pick_by_group(rng, grp, nat_p)
        self.nat_null = with_nulls(rng, n, 0.03)
        self.age = self._ages(rng, grp, group_names)
        years_exploited = rng.poisson(1.5, n)
        self.minor = (self.age - years_exploited) < 18
        is_labour = np.isin(self.exp, [types.index("ForcedLabour"), types.index("ChildLabour")])
        self.industry = pick(rng, n, probs(INDUSTRY_MIX, dom("vic_ForcedLabourIndustry")))
        self.industry_null = with_nulls(rng, n, 0.10, ~is_labour)
        self.relation = pick(rng, n, probs(RELATIONSHIP_MIX, dom("vic_RelationshipToTrafficker")))
        self.relation_null = with_nulls(rng, n, 0.25)
        self.region = pick(rng, n, probs(REGION_MIX, dom("exp_Region")))
        self.group = grp
        self.group_names = group_names

    @staticmethod
    def _ages(rng, grp, names) -> np.ndarray:
        n = len(grp)
        age = 16 + rng.gamma(2.5, 6.0, n)  # crime, rare
        g = lambda name: grp == names.index(name)  # noqa: E731
        m = g("sexual")
        age[m] = 13 + rng.gamma(2.2, 5.0, int(m.sum()))  # median about 22, minors about 20%
        m = g("labour")
        age[m] = 18 + rng.gamma(3.0, 5.0, int(m.sum()))  # median about 31
        m = g("child")
        age[m] = rng.integers(8, 18, int(m.sum()))
        m = g("domestic")
        age[m] = 15 + rng.gamma(2.5, 5.0, int(m.sum()))
        return np.clip(np.rint(age), 0, 99).astype(np.int64)

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in vars(self).items() if isinstance(v, np.ndarray)}


# ------------------------------------------------------------------ CSV writing
def cat_strings(domain: list[str], codes: np.ndarray, null: np.ndarray | None = None) -> np.ndarray:
    table = np.array(list(domain) + [""], dtype=object)
    return table[codes if null is None else np.where(null, len(domain), codes)]


def int_strings(values: np.ndarray, null: np.ndarray | None = None) -> np.ndarray:
    if len(values) and 0 <= values.min() and values.max() < 10_000:  # small ranges: a lookup table
        s = np.array([str(i) for i in range(int(values.max()) + 1)], dtype=object)[values]
    else:
        s = np.array(list(map(str, values.tolist())), dtype=object)
    return s if null is None else np.where(null, "", s)


def cents_strings(cents: np.ndarray, null: np.ndarray | None = None) -> np.ndarray:
    """Decimal strings with two places ('1234.50') from integer cents."""
    s = np.array(list(map("{:.2f}".format, (cents.astype(np.int64) / 100).tolist())), dtype=object)
    return s if null is None else np.where(null, "", s)


def bool_strings(values: np.ndarray) -> np.ndarray:
    return np.array(["false", "true"], dtype=object)[values.astype(np.int64)]


def write_csv(path: Path, columns: dict[str, np.ndarray], order: list[str]) -> None:
    missing = set(order) ^ set(columns)
    if missing:
        raise ValueError(f"{path.name}: generated columns do not match the catalog: {sorted(missing)}")
    cols = [columns[c] for c in order]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(order) + "\n")
        for start in range(0, len(cols[0]), 100_000):  # chunks bound the memory of the text
            chunk = [c[start:start + 100_000].tolist() for c in cols]
            f.write("\n".join(map(",".join, zip(*chunk))) + "\n")


# ------------------------------------------------------------------ datasets
def victims_table(schema, rows: dict, rng, party: str) -> dict[str, np.ndarray]:
    """Columns shared by police_victims and ngo_clients, from per-row person attributes."""
    n = len(rows["key"])
    d = lambda c: schema[c]["domain"]  # noqa: E731
    hours = np.where(rows["group"] == rows["group_names"].index("labour"), rng.normal(62, 12, n),
                     np.where(rows["group"] == rows["group_names"].index("sexual"), rng.normal(45, 15, n),
                              rng.normal(50, 15, n)))
    debt = rng.lognormal(np.log(2500), 1.1, n)
    debt = np.where(rng.random(n) < 0.10, 0.0, np.minimum(debt, 100000))
    return {
        "person_id": int_strings(rows["key"]),
        "prs_Gender": cat_strings(d("prs_Gender"), rows["gender"]),
        "prs_Age": int_strings(rows["age"]),
        "prs_Nationality": cat_strings(d("prs_Nationality"), rows["nat"], rows["nat_null"]),
        "exp_Type": cat_strings(d("exp_Type"), rows["exp"]),
        "vic_ForcedLabourIndustry": cat_strings(d("vic_ForcedLabourIndustry"), rows["industry"], rows["industry_null"]),
        "vic_TraffickingStatus": cat_strings(d("vic_TraffickingStatus"), pick(rng, n, probs(STATUS_MIX[party], d("vic_TraffickingStatus")))),
        "vic_RelationshipToTrafficker": cat_strings(d("vic_RelationshipToTrafficker"), rows["relation"], rows["relation_null"]),
        "exp_Region": cat_strings(d("exp_Region"), rows["region"]),
        "identified_on": dates(rng, n),
        "minor_at_recruitment": bool_strings(rows["minor"]),
        "hours_worked_week": int_strings(np.clip(np.rint(hours), 0, 120).astype(np.int64), with_nulls(rng, n, 0.35)),
        "debt_eur": cents_strings(np.rint(debt * 100), with_nulls(rng, n, 0.50)),
    }


def police_and_ngo(schema, n_police: int, n_ngo: int, seeds) -> tuple[dict, dict, dict]:
    """Both victim tables and facts about them (persons, overlap) for tests and the README."""
    rng_pop, rng_pol, rng_ngo = (np.random.default_rng(s) for s in seeds)
    for c, col in schema["police_victims"].items():  # shared persons keep their codes at the NGO
        if col.get("domain") != schema["ngo_clients"].get(c, {}).get("domain"):
            raise ValueError(f"police_victims.{c} and ngo_clients.{c} must have the same domain")
    key = int(rng_pop.integers(0, 1 << 48))
    sizes, p = np.array(list(ROWS_PER_POLICE_PERSON)), np.array(list(ROWS_PER_POLICE_PERSON.values()))
    per_person = sizes[pick(rng_pop, n_police, p / p.sum())]  # at most n_police persons are needed
    n_persons = int(np.searchsorted(np.cumsum(per_person), n_police)) + 1 if n_police else 0
    per_person = per_person[:n_persons]
    if n_persons:
        per_person[-1] -= per_person.sum() - n_police
    police_persons = Persons(schema["police_victims"], "police", n_persons, rng_pop)
    police_keys = mix48(np.arange(n_persons), key)
    idx = rng_pol.permutation(np.repeat(np.arange(n_persons), per_person))
    rows = police_persons.take(idx) | {"key": police_keys[idx], "group_names": police_persons.group_names}
    police = victims_table(schema["police_victims"], rows, rng_pol, "police")

    n_overlap = min(int(round(NGO_OVERLAP * n_ngo)), n_persons)
    shared = rng_ngo.choice(n_persons, n_overlap, replace=False) if n_overlap else np.zeros(0, np.int64)
    new = Persons(schema["ngo_clients"], "ngo", n_ngo - n_overlap, rng_ngo)
    new_keys = mix48(np.arange(n_persons, n_persons + n_ngo - n_overlap), key)
    old_rows, new_rows = police_persons.take(shared), new.take(np.arange(n_ngo - n_overlap))
    merged = {k: np.concatenate([old_rows[k], new_rows[k]]) for k in old_rows}
    merged["key"] = np.concatenate([police_keys[shared], new_keys])
    order = rng_ngo.permutation(n_ngo)
    rows = {k: v[order] for k, v in merged.items()} | {"group_names": new.group_names}
    ngo = victims_table(schema["ngo_clients"], rows, rng_ngo, "ngo")
    facts = {"police_persons": n_persons, "ngo_persons": n_ngo, "ngo_also_at_police": n_overlap}
    return police, ngo, facts


def helpline_table(schema, person_schema, n: int, rng) -> dict[str, np.ndarray]:
    d = lambda c: schema[c]["domain"]  # noqa: E731
    for c in ("exp_Type", "exp_Region", "prs_Gender", "prs_Nationality"):
        if d(c) != person_schema[c]["domain"]:
            raise ValueError(f"helpline_reports.{c} must have the same domain as police_victims.{c}")
    p = Persons(person_schema, "helpline", n, rng)
    labour = p.group == p.group_names.index("labour")
    victims = np.minimum(rng.geometric(0.6, n), 50)
    group = rng.random(n) < np.where(labour, 0.08, 0.01)
    victims = np.where(group, rng.integers(5, 41, n), victims)
    victims = np.where(rng.random(n) < 0.05, 0, victims)
    return {
        "report_channel": cat_strings(d("report_channel"), pick(rng, n, probs(CHANNEL_MIX, d("report_channel")))),
        "exp_Type": cat_strings(d("exp_Type"), p.exp, with_nulls(rng, n, 0.12)),
        "exp_Region": cat_strings(d("exp_Region"), p.region, with_nulls(rng, n, 0.05)),
        "prs_Gender": cat_strings(d("prs_Gender"), p.gender, with_nulls(rng, n, 0.20)),
        "prs_Nationality": cat_strings(d("prs_Nationality"), p.nat, with_nulls(rng, n, 0.45)),
        "reported_on": dates(rng, n),
        "victims_mentioned": int_strings(victims),
        "caller_is_victim": bool_strings(rng.random(n) < 0.25),
    }


def bank_table(schema, n: int, rng) -> dict[str, np.ndarray]:
    d = lambda c: schema[c]["domain"]  # noqa: E731
    n_accounts = max(1, int(n / 1.6))
    busy = max(1, n_accounts // 100)  # 1% of accounts draw 15% of the flags
    account = np.where(rng.random(n) < 0.15, rng.integers(0, busy, n), rng.integers(0, n_accounts, n))
    keys = mix48(rng.permutation(n_accounts)[account], int(rng.integers(0, 1 << 48)))
    amount = np.minimum(rng.lognormal(np.log(3000), 1.3, n), 1_000_000)
    return {
        "account_key": int_strings(keys),
        "flagged_on": dates(rng, n),
        "flag_reason": cat_strings(d("flag_reason"), pick(rng, n, probs(FLAG_MIX, d("flag_reason")))),
        "counterparty_country": cat_strings(d("counterparty_country"),
                                            pick(rng, n, probs(COUNTERPARTY_MIX, d("counterparty_country"))),
                                            with_nulls(rng, n, 0.30)),
        "exp_Region": cat_strings(d("exp_Region"), pick(rng, n, probs(REGION_MIX, d("exp_Region")))),
        "amount_eur": cents_strings(np.rint(amount * 100)),
        "reported_to_fiu": bool_strings(rng.random(n) < 0.4),
    }


def generate(out: Path, rows: dict[str, int] | None = None, seed: int = SEED,
             catalog: Path = CATALOG) -> dict:
    """Write every dataset's CSV into `out`; returns facts (row and person counts)."""
    schema = load_schema(catalog)
    rows = {**DEFAULT_ROWS, **(rows or {})}
    ss = np.random.SeedSequence(seed).spawn(5)
    out.mkdir(parents=True, exist_ok=True)
    police, ngo, facts = police_and_ngo(schema, rows["police_victims"], rows["ngo_clients"], ss[0].spawn(3))
    tables = {
        "police_victims": police,
        "ngo_clients": ngo,
        "helpline_reports": helpline_table(schema["helpline_reports"], schema["police_victims"],
                                           rows["helpline_reports"], np.random.default_rng(ss[1])),
        "bank_flags": bank_table(schema["bank_flags"], rows["bank_flags"], np.random.default_rng(ss[2])),
    }
    for name, cols in tables.items():
        write_csv(out / f"{name}.csv", cols, list(schema[name]))
    return facts | {f"{name}_rows": rows[name] for name in tables}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "data", help="output folder (default examples/data)")
    ap.add_argument("--rows", type=int, help="rows per dataset (default: police 1500, ngo 1200, "
                                             "helpline 900, bank 600)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = ap.parse_args(argv)
    if args.rows is not None and args.rows < 0:
        ap.error("--rows must be >= 0")
    t0 = time.perf_counter()
    facts = generate(args.out, {n: args.rows for n in DEFAULT_ROWS} if args.rows is not None else None, args.seed)
    print(f"wrote {len(DEFAULT_ROWS)} CSVs to {args.out} in {time.perf_counter() - t0:.1f}s: "
          + ", ".join(f"{k}={v}" for k, v in facts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
