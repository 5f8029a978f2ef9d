"""The catalog: datasets declared by their owners, with column types and disclosure policy.

Data owners write a TOML file; pydantic validates it. The JSON Schema exported to
`spec/catalog.schema.json` comes from these models (`iq schema catalog`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from insightql.stdlib.aggregates import AGGREGATES, DEFAULT_MEASURE_AGGREGATES
from insightql.stdlib.presets import load_presets

from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, Source, Span
from insightql.compiler.check.privacy_policy import PrivacyPolicy

Role = Literal["dimension", "measure", "key", "hidden"]
Aggregate = Literal[tuple(AGGREGATES)]  # stdlib/aggregates.py declares them


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ColumnBase(_Strict):
    description: str = ""
    nullable: bool = False
    role: Role = "dimension"
    where: bool = True
    """May the column appear in WHERE (and inside expressions that filter)?"""
    aggregates: list[Aggregate] | None = None
    """Aggregates allowed when role = measure; None means the default set (no MIN/MAX)."""

    def allowed_aggregates(self) -> tuple[str, ...]:
        if self.role != "measure":
            return ("count",)
        return tuple(self.aggregates) if self.aggregates is not None else DEFAULT_MEASURE_AGGREGATES


class IntegerColumn(_ColumnBase):
    type: Literal["integer"]
    min: int
    max: int
    clamp: tuple[int, int] | None = None
    """Contribution bounds for SUM/AVG/VAR; mandatory for those aggregates."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DecimalColumn(_ColumnBase):
    type: Literal["decimal"]
    scale: int = Field(2, ge=0, le=6)
    min: float
    max: float
    clamp: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _bounds(self):
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class BooleanColumn(_ColumnBase):
    type: Literal["boolean"]


class CategoryColumn(_ColumnBase):
    type: Literal["category"]
    domain: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        if len(set(self.domain)) != len(self.domain):
            raise ValueError("category domain has duplicate values")
        return self


class DateColumn(_ColumnBase):
    type: Literal["date"]
    min: dt.date
    max: dt.date


class KeyColumn(_ColumnBase):
    """A pseudonymous key: a keyed hash the owners computed before loading (see spec)."""

    type: Literal["key"]
    bits: int = Field(48, ge=8, le=64)
    unique: bool = False
    role: Role = "key"


Column = Annotated[
    Union[IntegerColumn, DecimalColumn, BooleanColumn, CategoryColumn, DateColumn, KeyColumn],
    Field(discriminator="type"),
]


class Dominance(_Strict):
    """(n, k) rule: the n largest contributors may not exceed k percent of a cell's SUM."""

    n: int = Field(2, ge=1, le=5)
    k: float = Field(85, gt=0, le=100)


class Policy(_Strict):
    min_group_size: int = Field(10, ge=1)
    receivers: list[str] = Field(default_factory=list)
    """Parties that may learn results; empty means only the owner."""
    purposes: list[str] = Field(default_factory=list)
    """Allowed purposes; empty means any declared purpose."""
    round_counts_to: int = Field(1, ge=1)
    dominance: Dominance | None = None
    max_groups: int = Field(1000, ge=1)
    """Largest number of cells a GROUP BY over this dataset may produce."""
    allow_row_counts: bool = True
    """May the plan reveal this dataset's row count (input size)?"""
    linkage: Literal["oblivious", "fast"] = "oblivious"
    """Record linkage design a plan may use on this dataset (spec/linkage.md): "oblivious" opens
    nothing but the outputs; "fast" (every linked dataset must allow it) shuffles the rows and
    opens keyed-PRF tags, so the computing parties learn the match pattern (intersection size,
    multiplicities) of the linked rows, but not which rows matched."""
    require_approval: bool = False
    """Must every plan reading this dataset carry valid signed approvals (spec/governance.md)?
    The owner's party then also refuses without a ledger check. False keeps demos running."""
    privacy: PrivacyPolicy | None = None
    """Differential privacy: budget, per-query cap, rows per person (spec/privacy.md)."""


class Dataset(_Strict):
    owner: str
    description: str = ""
    max_rows: int = Field(1_000_000, ge=1)
    person_key: str | None = None
    """Column identifying a person, for distinct-person thresholds."""
    columns: dict[str, Column]
    policy: Policy = Field(default_factory=Policy)

    @model_validator(mode="after")
    def _person_key(self):
        if self.person_key is not None:
            col = self.columns.get(self.person_key)
            if col is None or col.type != "key":
                raise ValueError(f"person_key {self.person_key!r} must name a key column")
        return self

    def receivers(self) -> list[str]:
        return list(self.policy.receivers) or [self.owner]


class Party(_Strict):
    description: str = ""
    helper: bool = False
    """A helper holds no data and only computes (needed when two organisations hold data)."""


class Catalog(_Strict):
    name: str = "catalog"
    parties: dict[str, Party] = Field(default_factory=dict)
    min_computing_parties: int = Field(3, ge=1)
    """How many parties compute each query at least (owners first, then helpers): 3 gives Shamir
    threshold t = 1; 5 gives t = 2, so two colluding computing parties learn nothing either."""
    datasets: dict[str, Dataset]
    _lineage: dict = PrivateAttr(default_factory=dict)
    """Dataset -> compiler/check/layout.Lineage: where each field came from (`like`, template, preset);
    set by load_catalog, never part of the digest."""

    def lineage(self, dataset: str):
        from insightql.compiler.check.layout import Lineage
        return self._lineage.get(dataset) or Lineage()

    @model_validator(mode="after")
    def _owners(self):
        for name, ds in self.datasets.items():
            if self.parties and ds.owner not in self.parties:
                raise ValueError(f"dataset {name!r}: owner {ds.owner!r} is not a declared party")
        return self

    def party_names(self) -> list[str]:
        """Every computing party, in a stable order: declared parties, else dataset owners."""
        if self.parties:
            return list(self.parties)
        seen: dict[str, None] = {}
        for ds in self.datasets.values():
            seen.setdefault(ds.owner)
        return list(seen)

    def computing_parties(self, datasets) -> list[str]:
        """Who computes a query reading `datasets`: their owners, then declared helpers, then other
        parties (catalog order), until there are `min_computing_parties` (3: Shamir needs m >= 3 for
        t >= 1), in catalog order. A larger catalog does not make a small query pay for sharing among
        every party."""
        names = self.party_names()
        chosen = {self.datasets[d].owner for d in datasets}
        spare = [p for p in names if p not in chosen and self.parties.get(p, Party()).helper]
        spare += [p for p in names if p not in chosen and p not in spare]
        for p in spare[:max(0, self.min_computing_parties - len(chosen))]:
            chosen.add(p)
        return [p for p in names if p in chosen]

    def digest(self) -> str:
        """Content hash of the validated catalog, recorded in every plan."""
        canon = json.dumps(_digest_view(self.model_dump(mode="json")), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


# Fields added after catalogs were first digested count only when set, so an unchanged catalog
# keeps its digest (and every plan compiled from it its hash) across compiler versions.
_LATER_POLICY_FIELDS = {"require_approval": False, "linkage": "oblivious", "privacy": None}


def _digest_view(dump: dict) -> dict:
    if dump.get("min_computing_parties") == 3:
        dump.pop("min_computing_parties")
    for ds in dump.get("datasets", {}).values():
        pol = ds.get("policy", {})
        for name, default in _LATER_POLICY_FIELDS.items():
            if pol.get(name) == default:
                pol.pop(name)
    return dump


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog file; errors become IQ0xx diagnostics naming the field."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    src = Source(str(path), text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DiagnosticError([Diagnostic("IQ001", f"catalog is not valid TOML: {e}", source=src)])
    from insightql.compiler.check.layout import key_offset, resolve_layouts  # `like`, templates, presets

    raw, lineage, errors = resolve_layouts(raw)
    if errors:  # the layouts are wrong: validating what they would give reports only their consequences
        diags = []
        for e in errors:
            at = key_offset(text, e.dataset, e.path)
            hints = e.hints if any("spec/" in h for h in e.hints) else e.hints + ["dataset layouts: spec/catalog.md"]
            diags.append(Diagnostic(e.code, f"catalog: {e.message}", Span(at, min(at + 1, len(text))), hints,
                                    source=src))
        raise DiagnosticError(diags)
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as e:
        diags = []
        for err in e.errors():
            parts = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
            span = None
            if len(parts) >= 2 and parts[0] == "datasets" and parts[1] in raw.get("datasets", {}):
                at = key_offset(text, parts[1], tuple(parts[2:4]))  # the dataset's own key, or its header
                span = Span(at, min(at + 1, len(text))) if at else None
            diags.append(Diagnostic("IQ002", f"catalog field {'.'.join(parts)}: {err['msg']}", span, source=src,
                                    hints=["the catalog format: spec/catalog.schema.json (`iq schema catalog`)"]))
        raise DiagnosticError(diags)
    except ValueError as e:
        raise DiagnosticError([Diagnostic("IQ002", f"catalog: {e}", source=src)])
    catalog._lineage = lineage
    return catalog


def find_catalog(start: Path) -> Path | None:
    """Find `catalog.toml` in the query's folder or a parent, the way linters find config."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    for folder in [here, *here.parents]:
        candidate = folder / "catalog.toml"
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------ the catalog as written: its JSON Schema
class ColumnChange(_Strict):
    """A change to an inherited column, in a dataset with `like` (spec/catalog.md): the fields written
    replace the inherited column's, the others stay. Without `type`: a column with `type` is a whole
    new column that replaces the inherited one."""
    description: str | None = None
    nullable: bool | None = None
    role: Role | None = None
    where: bool | None = None
    aggregates: list[Aggregate] | None = None
    min: int | float | dt.date | None = None
    max: int | float | dt.date | None = None
    clamp: tuple[float, float] | None = None
    scale: int | None = Field(None, ge=0, le=6)
    domain: list[str] | None = Field(None, min_length=1)
    bits: int | None = Field(None, ge=8, le=64)
    unique: bool | None = None


class DatasetAsWritten(_Strict):
    """A dataset as its owner writes it: written out (`owner` and `columns`), or reusing a layout with
    `like` (or `from`), where every field is optional and a field written replaces the inherited one
    (policy: key by key; columns: a column with `type` replaces, one without changes field by field)."""
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={
        "anyOf": [{"required": ["owner", "columns"]}, {"required": ["like"]}, {"required": ["from"]}],
        "not": {"required": ["like", "from"]}})
    like: str | None = Field(None, description="The layout this dataset starts from: a dataset of this catalog, "
                             "or `template:NAME` (a stdlib template); spec/catalog.md section 1")
    from_: str | None = Field(None, alias="from", description='Older spelling of `like = "template:NAME"`')
    exclude: list[str] | None = Field(None, description="Inherited columns to drop (needs `like` or `from`)")
    policy_preset: Literal[tuple(load_presets())] | None = Field(
        None, description="A stdlib policy preset (spec/stdlib.md section 3): sets every field presets govern; "
                          "the dataset's own policy keys are applied after it")
    owner: str | None = None
    description: str | None = None
    max_rows: int | None = Field(None, ge=1)
    person_key: str | None = None
    columns: dict[str, Union[Column, ColumnChange]] | None = Field(
        None, description="With `like`: a column with `type` replaces (or adds) a whole column, one without "
                          "changes the inherited column field by field")
    policy: Policy | None = Field(None, description="With `like`: only the keys that differ from the inherited policy")


class CatalogAsWritten(Catalog):
    datasets: dict[str, DatasetAsWritten]

    @model_validator(mode="after")
    def _owners(self):
        return self


def catalog_json_schema() -> dict:
    """The schema of the catalog file as written (`like`, templates and presets included)."""
    schema = CatalogAsWritten.model_json_schema()
    schema["title"] = "Catalog"
    return schema
