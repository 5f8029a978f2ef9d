"""ISO 3166-1 alpha-2 country codes grouped into UN M49 regions and sub-regions.

Source: UN Statistics Division, "Standard country or area codes for statistical use (M49)",
https://unstats.un.org/unsd/methodology/m49/. Every officially assigned ISO 3166-1 alpha-2 code is
listed except AQ (Antarctica), which M49 places in no region; XK (Kosovo, a user-assigned code in
common use) is added under Southern Europe. TW is placed in Eastern Asia. M49's intermediate regions
of Sub-Saharan Africa and Latin America are used as sub-regions here, so every code has exactly one.

`region(country)` in the language maps a code to REGIONS; any other value (including AQ and
catch-all values such as 'OTHER') maps to 'Unknown'.
"""
from __future__ import annotations

# region -> sub-region -> space-separated ISO 3166-1 alpha-2 codes
_M49: dict[str, dict[str, str]] = {
    "Africa": {
        "Northern Africa": "DZ EG LY MA SD TN EH",
        "Eastern Africa": "IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW",
        "Middle Africa": "AO CM CF TD CG CD GQ GA ST",
        "Southern Africa": "BW SZ LS NA ZA",
        "Western Africa": "BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG",
    },
    "Americas": {
        "Caribbean": "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI",
        "Central America": "BZ CR SV GT HN MX NI PA",
        "South America": "AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE",
        "Northern America": "BM CA GL PM US",
    },
    "Asia": {
        "Central Asia": "KZ KG TJ TM UZ",
        "Eastern Asia": "CN HK MO KP JP MN KR TW",
        "South-eastern Asia": "BN KH ID LA MY MM PH SG TH TL VN",
        "Southern Asia": "AF BD BT IN IR MV NP PK LK",
        "Western Asia": "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE",
    },
    "Europe": {
        "Eastern Europe": "BY BG CZ HU PL MD RO RU SK UA",
        "Northern Europe": "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB",
        "Southern Europe": "AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES XK",
        "Western Europe": "AT BE FR DE LI LU MC NL CH",
    },
    "Oceania": {
        "Australia and New Zealand": "AU CX CC HM NZ NF",
        "Melanesia": "FJ NC PG SB VU",
        "Micronesia": "GU KI MH FM NR MP PW UM",
        "Polynesia": "AS CK PF NU PN WS TK TO TV WF",
    },
}

REGIONS: list[str] = [*_M49, "Unknown"]
"""The five M49 regions plus 'Unknown', in this order (the order of region()'s category domain)."""

SUBREGIONS: list[str] = [sub for subs in _M49.values() for sub in subs] + ["Unknown"]

REGION_OF: dict[str, str] = {
    code: region for region, subs in _M49.items() for codes in subs.values() for code in codes.split()
}
SUBREGION_OF: dict[str, str] = {
    code: sub for subs in _M49.values() for sub, codes in subs.items() for code in codes.split()
}

COUNTRIES: list[str] = sorted(REGION_OF)
"""Every country code above, sorted: the domain the HTCDS templates use for country columns."""
