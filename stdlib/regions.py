"""ISO 3166-1 alpha-2 country codes grouped into UN M49 regions (a subset; extend as needed).

Source: UN Statistics Division, Standard country or area codes for statistical use (M49).
"""
from __future__ import annotations

_GROUPS = {
    "Africa": "DZ EG LY MA SD TN EH BJ BF CV CI GM GH GN GW LR ML MR NE NG SN SL TG AO CM CF TD CG CD GQ GA ST "
              "BI KM DJ ER ET KE MG MW MU MZ RW SC SO SS UG TZ ZM ZW BW SZ LS NA ZA",
    "Americas": "AR BO BR CL CO EC GY PY PE SR UY VE BZ CR SV GT HN MX NI PA CA US AG BS BB CU DM DO GD HT JM KN "
                "LC VC TT",
    "Asia": "KZ KG TJ TM UZ CN HK MO JP KP KR MN BN KH ID LA MY MM PH SG TH TL VN AF BD BT IN IR MV NP PK LK "
            "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE",
    "Europe": "BY BG CZ HU MD PL RO RU SK UA DK EE FI IS IE LV LT NO SE GB AL AD BA HR GR IT MT ME MK PT SM RS "
              "SI ES VA XK AT BE FR DE LI LU MC NL CH",
    "Oceania": "AU NZ FJ PG SB VU FM GU KI MH NR PW WS TO TV",
}

REGIONS: list[str] = [*_GROUPS, "Unknown"]
REGION_OF: dict[str, str] = {code: region for region, codes in _GROUPS.items() for code in codes.split()}
