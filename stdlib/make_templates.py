"""Regenerate stdlib/data/htcds_templates.toml from the HTCDS 2.0 field list.

    python -m insightql.stdlib.make_templates          # rewrite the file
    python -m insightql.stdlib.make_templates --check  # exit 1 if the file is stale

The field list (stdlib/data/htcds-2.0-fields.csv) is "Human Trafficking Case Data Standard
(HTCDS) by IOM, CC BY 4.0". Each template is a set of catalog columns (spec/stdlib.md):

  Picklist                 -> category, domain = the value names, nullable
  Multiselect Picklist     -> one nullable boolean per value, named <field>_<Value>
  country fields (ISO 3166) -> category over the ISO 3166-1 alpha-2 codes of stdlib/regions.py
  language fields (ISO 639) -> category over the ISO 639-1 two-letter codes below
  Date                     -> date with wide bounds (owners narrow them), nullable
  Number                   -> integer measure with bounds and clamp (ages, counts)
  Checkbox                 -> boolean
  Text, Long Text, Lookup, Geolocation, coordinates -> omitted (listed under `omitted`)

Every template also gets `person_id`, a 48-bit pseudonymous key (not part of HTCDS).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from insightql.stdlib.regions import COUNTRIES

DATA = Path(__file__).resolve().parent / "data"
FIELDS_CSV = DATA / "htcds-2.0-fields.csv"
TEMPLATES_TOML = DATA / "htcds_templates.toml"

# ISO 639-1 two-letter language codes (HTCDS allows two-letter codes for its language fields).
LANGUAGES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv "
    "dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie "
    "ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv "
    "mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm "
    "rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts "
    "tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"
).split()

TEMPLATES: dict[str, dict] = {
    "htcds.person": {
        "description": "A person in a trafficking case (HTCDS 2.0 section Person)",
        "sections": ["Person"],
        "fields": [],
    },
    "htcds.victim": {
        "description": "A (possible) victim: HTCDS 2.0 sections Person and Person - Victim Context",
        "sections": ["Person", "Person - Victim Context"],
        "fields": [],
    },
    "htcds.case": {
        "description": "A case and its referrals (HTCDS 2.0 sections Case and Referral Details)",
        "sections": ["Case", "Referral Details"],
        "fields": [],
    },
    "htcds.exploitation": {
        "description": "Trafficking events (HTCDS 2.0 section Historic Trafficking Events) with the "
                       "victim's exploitation fields",
        "sections": ["Historic Trafficking Events"],
        "fields": ["vic_TypeOfExploitation", "vic_ForcedLabourIndustry", "vic_TypeOfSexExploitation",
                   "vic_MethodsOfControl", "vic_ExploitationWebsitesAndApps"],
    },
}

PERSON_ID = {"type": "key", "bits": 48,
             "description": "Pseudonymous person key: a keyed hash of the person's identifiers, computed "
                            "by the owner before loading (InsightQL addition, not an HTCDS field)"}

DATE_BOUNDS = {"prs_Birthdate": ("1920-01-01", "2030-12-31")}
DEFAULT_DATE_BOUNDS = ("2000-01-01", "2035-12-31")

NUMBERS = {
    "vic_AgeWhenTrafficked": {"min": 0, "max": 99, "clamp": [0, 99]},
    "prs_NumberOfChildren": {"min": 0, "max": 20, "clamp": [0, 10]},
}

COUNTRY_NOTE = "ISO 3166-1 alpha-2 code"


def norm(s: str) -> str:
    return " ".join(s.split())


def read_fields(path: Path = FIELDS_CSV) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        name = r["Field Name including Prefix"].strip()
        if not name:
            continue
        out.append({
            "section": norm(r["Section"]),
            "name": name,
            "label": norm(r["Field Label"]),
            "type": norm(r["Field Type"]),
            "values": [v.strip() for v in r["Value Names (if picklist)"].split("\n") if v.strip()],
            "labels": [v.strip() for v in r["Value Labels (if picklist)"].split("\n") if v.strip()],
            "description": norm(r["Description"]),
        })
    return out


def _describe(f: dict, extra: str = "") -> str:
    text = f["label"] + (f": {f['description']}" if f["description"] else "")
    return text.rstrip(".") + (f" ({extra})" if extra else "")


def convert(f: dict) -> tuple[dict[str, dict], str | None]:
    """Columns for one HTCDS field, or ({}, reason) when the field is omitted."""
    name, ftype = f["name"], f["type"]
    hint = " ".join(f["values"] + f["labels"])
    if "Longitude" in name or "Latitude" in name or ftype == "Geolocation":
        return {}, "precise location"
    if ftype.startswith("Lookup"):
        return {}, "lookup to another record (join on a key column instead)"
    if "ISO 3166" in hint or name.endswith("Country"):
        multi = ftype == "Multiselect Picklist"
        desc = _describe(f, COUNTRY_NOTE + ("; the first of several" if multi else ""))
        return {name: {"type": "category", "nullable": True, "domain": list(COUNTRIES), "description": desc}}, None
    if "ISO 639" in hint:
        return {name: {"type": "category", "nullable": True, "domain": list(LANGUAGES),
                       "description": _describe(f, "ISO 639-1 two-letter code")}}, None
    if ftype == "Picklist" and f["values"]:
        return {name: {"type": "category", "nullable": True, "domain": f["values"],
                       "description": _describe(f)}}, None
    if ftype == "Multiselect Picklist" and f["values"]:
        labels = f["labels"] if len(f["labels"]) == len(f["values"]) else f["values"]
        return {f"{name}_{v}": {"type": "boolean", "nullable": True,
                                "description": f"{f['label']}: {lab} (one value of multiselect {name})"}
                for v, lab in zip(f["values"], labels)}, None
    if ftype == "Date":
        lo, hi = DATE_BOUNDS.get(name, DEFAULT_DATE_BOUNDS)
        return {name: {"type": "date", "nullable": True, "min": lo, "max": hi, "description": _describe(f)}}, None
    if ftype == "Number" and name in NUMBERS:
        return {name: {"type": "integer", "nullable": True, "role": "measure", **NUMBERS[name],
                       "description": _describe(f)}}, None
    if ftype == "Checkbox":
        return {name: {"type": "boolean", "description": _describe(f)}}, None
    if ftype in ("Text", "Long Text", "Picklist or Text", "Picklist"):
        return {}, "free text"
    return {}, f"field type {ftype!r} has no column type"


def build(fields: list[dict]) -> dict[str, dict]:
    by_name = {f["name"]: f for f in fields}
    out = {}
    for tname, spec in TEMPLATES.items():
        chosen = [f for f in fields if f["section"] in spec["sections"]]
        chosen += [by_name[n] for n in spec["fields"] if by_name[n] not in chosen]
        columns: dict[str, dict] = {"person_id": dict(PERSON_ID)}
        omitted: dict[str, str] = {}
        for f in chosen:
            cols, reason = convert(f)
            if reason:
                omitted[f["name"]] = f"{f['type']}: {reason}"
            columns.update(cols)
        out[tname] = {"description": spec["description"], "sections": spec["sections"],
                      "person_key": "person_id", "columns": columns, "omitted": omitted}
    return out


# -- a small TOML writer (tomllib only reads) -----------------------------------------------
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if len(v) == 10 and v[4] == "-" and v[7] == "-" and v.replace("-", "").isdigit():
            return v  # a TOML local date
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


ORDER = ("type", "nullable", "role", "bits", "min", "max", "clamp", "domain", "description")


def render(templates: dict[str, dict]) -> str:
    lines = [
        "# GENERATED by stdlib/make_templates.py from stdlib/data/htcds-2.0-fields.csv: do not edit by hand.",
        "# Regenerate with `python -m insightql.stdlib.make_templates`.",
        "# Adapted from \"Human Trafficking Case Data Standard (HTCDS) by IOM, CC BY 4.0\" (see NOTICE.md).",
        "# Used by catalogs through `like = \"template:htcds.victim\"` (spec/catalog.md, spec/stdlib.md).",
    ]
    for tname, t in templates.items():
        tkey = f"templates.{_key(tname)}"
        lines += ["", f"[{tkey}]", f"description = {_value(t['description'])}",
                  f"sections = {_value(t['sections'])}", f"person_key = {_value(t['person_key'])}",
                  "", f"[{tkey}.columns]"]
        for cname, col in t["columns"].items():
            ordered = {k: col[k] for k in ORDER if k in col}
            lines.append(f"{_key(cname)} = {_value(ordered)}")
        lines += ["", f"[{tkey}.omitted]"]
        lines += [f"{_key(n)} = {_value(r)}" for n, r in t["omitted"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    args = ap.parse_args(argv)
    text = render(build(read_fields()))
    if args.check:
        current = TEMPLATES_TOML.read_text(encoding="utf-8") if TEMPLATES_TOML.exists() else ""
        if current != text:
            print(f"{TEMPLATES_TOML} is stale; run python -m insightql.stdlib.make_templates", file=sys.stderr)
            return 1
        return 0
    TEMPLATES_TOML.write_text(text, encoding="utf-8")
    print(f"wrote {TEMPLATES_TOML} ({len(templates_summary(text))} templates)")
    return 0


def templates_summary(text: str) -> list[str]:
    import tomllib
    return list(tomllib.loads(text)["templates"])


if __name__ == "__main__":
    sys.exit(main())
