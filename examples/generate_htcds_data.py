"""Generate the HTCDS demo data: examples/htcds/data/{ngo_cases,police_cases}.csv.

    python examples/generate_htcds_data.py               # the shipped files (byte-identical)
    python examples/generate_htcds_data.py --out /tmp/x  # elsewhere

Both datasets are declared in examples/htcds/catalog.toml from the stdlib template `htcds.victim`,
so each CSV has the template's columns in template order. No real person is in these files. The
fields the demo query reads get plausible marginals (reusing those of examples/generate_data.py:
gender and age by type of exploitation, trafficking status by organisation, a few dominant
citizenships and a long tail over every ISO country); the other fields are filled the way case
files are: a multiselect group (`vic_MethodsOfControl_*`, ...) is either not recorded (all empty)
or recorded (true/false per value), optional picklists are often empty.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import generate_data as base
from insightql.compiler.check.catalog import load_catalog

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "htcds" / "catalog.toml"
SEED = 20240916
ROWS = {"ngo_cases": 500, "police_cases": 700}
PARTY = {"ngo_cases": "ngo", "police_cases": "police"}
CITIZENSHIP = {"NG": 12, "RO": 10, "NL": 9, "VN": 8, "BG": 6, "UA": 6, "CN": 5, "PH": 5, "BR": 4, "IN": 4,
               "MA": 3, "ER": 3, "AL": 3, "TH": 3, "CO": 2, "SY": 2}
TAIL = 0.02  # weight of every other country code
RECORDED = 0.3  # chance that an optional field or multiselect group is filled in
LANGUAGES = ["en", "ro", "bg", "uk", "vi", "zh", "pt", "nl", "fr", "ar", "tl", "ti"]


def text(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    return np.where(null, "", values.astype(object))


def person_fields(cols: dict, n: int, rng, party: str) -> dict[str, np.ndarray]:
    """The fields with marginals: exploitation, gender, age, citizenship, status, industry, dates."""
    dom = lambda c: cols[c].domain  # noqa: E731
    types = [c.removeprefix("vic_TypeOfExploitation_") for c in cols if c.startswith("vic_TypeOfExploitation_")]
    main = base.pick(rng, n, base.probs({t: w for t, w in base.EXP_MIX[party].items() if t in types}, types))
    groups = list(base.GENDER_MIX)
    grp = np.array([groups.index(base.GROUP_OF_TYPE.get(t, "rare")) for t in types])[main]
    out = {f"vic_TypeOfExploitation_{t}": base.bool_strings(main == i) for i, t in enumerate(types)}
    gender = base.pick_by_group(rng, grp, {i: base.probs(base.GENDER_MIX[g], dom("prs_Gender"))
                                           for i, g in enumerate(groups)})
    out["prs_Gender"] = base.cat_strings(dom("prs_Gender"), gender, base.with_nulls(rng, n, 0.02))
    age = base.Persons._ages(rng, grp, groups)
    age_null = base.with_nulls(rng, n, 0.06)
    out["vic_AgeWhenTrafficked"] = base.int_strings(age, age_null)
    born = 2023 - age - rng.integers(0, 6, n)  # identified up to five years after being trafficked
    birth = (born - 1970).astype("datetime64[Y]").astype("datetime64[D]") + rng.integers(0, 365, n)
    lo, hi = (np.datetime64(getattr(cols["prs_Birthdate"], b)) for b in ("min", "max"))
    out["prs_Birthdate"] = text(np.datetime_as_string(np.clip(birth, lo, hi)), age_null | base.with_nulls(rng, n, 0.2))
    weights = {c: TAIL for c in dom("prs_Citizenship")} | CITIZENSHIP
    out["prs_Citizenship"] = base.cat_strings(dom("prs_Citizenship"), base.pick(rng, n, base.probs(
        weights, dom("prs_Citizenship"))), base.with_nulls(rng, n, 0.04))
    out["vic_TraffickingStatus"] = base.cat_strings(dom("vic_TraffickingStatus"), base.pick(
        rng, n, base.probs(base.STATUS_MIX[party], dom("vic_TraffickingStatus"))), base.with_nulls(rng, n, 0.03))
    out["vic_RelationshipToTrafficker"] = base.cat_strings(dom("vic_RelationshipToTrafficker"), base.pick(
        rng, n, base.probs(base.RELATIONSHIP_MIX, dom("vic_RelationshipToTrafficker"))), base.with_nulls(rng, n, 0.3))
    labour = np.isin(np.array(types)[main], ["ForcedLabour", "ChildLabour"])
    out["vic_ForcedLabourIndustry"] = base.cat_strings(dom("vic_ForcedLabourIndustry"), base.pick(
        rng, n, base.probs(base.INDUSTRY_MIX, dom("vic_ForcedLabourIndustry"))), base.with_nulls(rng, n, 0.1, ~labour))
    return out


def other_fields(cols: dict, n: int, rng, done: set[str]) -> dict[str, np.ndarray]:
    """Every other template column, filled the way case files are (often not recorded)."""
    out = {}
    groups: dict[str, list[str]] = {}
    for name, col in cols.items():
        if name in done:
            continue
        if col.type == "boolean" and col.nullable:  # a value of a multiselect picklist
            groups.setdefault(name.rsplit("_", 1)[0], []).append(name)
        elif col.type == "boolean":
            out[name] = base.bool_strings(rng.random(n) < (0.95 if "Agreement" in name else 0.003))
        elif col.type == "category":
            domain = [v for v in LANGUAGES if v in col.domain] if "Language" in name else col.domain
            codes = np.array([col.domain.index(v) for v in domain])[rng.integers(0, len(domain), n)]
            out[name] = base.cat_strings(col.domain, codes, rng.random(n) >= RECORDED)
        elif col.type == "integer":
            out[name] = base.int_strings(np.minimum(rng.poisson(0.8, n), col.max), rng.random(n) >= RECORDED)
        elif col.type == "key":
            continue
        else:
            raise ValueError(f"no generator for {name} ({col.type})")
    for members in groups.values():
        recorded = rng.random(n) < RECORDED
        for name in members:
            out[name] = text(base.bool_strings(rng.random(n) < 0.15), ~recorded)
    return out


def dataset(cols: dict, n: int, rng, party: str, key: int) -> dict[str, np.ndarray]:
    out = person_fields(cols, n, rng, party)
    out |= other_fields(cols, n, rng, set(out))
    out["person_id"] = base.int_strings(base.mix48(np.arange(n), key))
    return out


def generate(out: Path, seed: int = SEED) -> None:
    catalog = load_catalog(CATALOG)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = int(rng.integers(1, 2 ** 47))
    for i, (name, n) in enumerate(ROWS.items()):
        cols = catalog.datasets[name].columns
        data = dataset(cols, n, rng, PARTY[name], key + i * 10 ** 7)
        base.write_csv(out / f"{name}.csv", data, list(cols))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "htcds" / "data", help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    generate(args.out, args.seed)
    print(f"wrote {', '.join(f'{k}.csv ({v} rows)' for k, v in ROWS.items())} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
