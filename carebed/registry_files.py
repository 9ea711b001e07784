"""Pure core of registry files: YAML or CSV in, a whole :class:`RegistryFile` or every error by row and field.

A file with any error imports nothing; the report lists each error with the row it is on
(the CSV line number, header being line 1, or the position of the home in a YAML list) and
the field (the CSV column, or the path inside the YAML home), so the person fixing the file
can find it.

CSV has one row per resident, responder or device (column ``kind``); the home's own columns
may be repeated on each row or given once, but must not disagree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from carebed.registry import DeviceSpec, RegistryFile, ResidentSpec, ResponderSpec

HOME_COLUMNS = ("home_id", "address", "street", "community", "access_notes")
# CSV column -> field of the spec, per row kind.
ROW_COLUMNS: dict[str, tuple[type[BaseModel], dict[str, str]]] = {
    "resident": (
        ResidentSpec,
        {"name": "name", "birth_year": "birth_year", "language": "language", "conditions": "conditions"},
    ),
    "responder": (
        ResponderSpec,
        {
            "name": "name",
            "phone": "phone",
            "relation": "relation",
            "language": "language",
            "quiet_hours": "quiet_hours",
        },
    ),
    "device": (DeviceSpec, {"device_id": "id", "device_kind": "kind", "model": "model"}),
}
CSV_COLUMNS = (
    *HOME_COLUMNS,
    "kind",
    *dict.fromkeys(column for _, columns in ROW_COLUMNS.values() for column in columns),
)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str


class RegistryFileError(Exception):
    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the registry file")
        self.errors = list(errors)


def parse_registry(content: bytes, filename: str) -> RegistryFile:
    """Parse and validate a whole file; raise :class:`RegistryFileError` listing every error found."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RegistryFileError([RowError(0, "", "the file is not UTF-8 text")]) from None
    if filename.lower().endswith(".csv"):
        return _parse_csv(text)
    return _parse_yaml(text)


def _path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _parse_yaml(text: str) -> RegistryFile:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RegistryFileError([RowError(mark.line + 1 if mark else 0, "", f"not valid YAML: {exc}")]) from None
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = error["loc"]
            if len(loc) >= 2 and loc[0] == "homes" and isinstance(loc[1], int):
                errors.append(RowError(loc[1] + 1, _path(loc[2:]), _message(error)))
            else:
                errors.append(RowError(0, _path(loc), _message(error)))
        raise RegistryFileError(errors) from None


def _parse_csv(text: str) -> RegistryFile:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in ("home_id", "kind") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        problems = [RowError(1, c, "required column is missing") for c in missing]
        problems += [RowError(1, c, f"unknown column; expected some of {', '.join(CSV_COLUMNS)}") for c in unknown]
        raise RegistryFileError(problems)
    homes: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    errors: list[RowError] = []
    for number, row in enumerate(reader, start=2):
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        home_id = cells.get("home_id", "")
        if not home_id:
            errors.append(RowError(number, "home_id", "every row needs the id of its home"))
            continue
        home = homes.setdefault(home_id, {"id": home_id, "residents": [], "responders": [], "devices": []})
        first_row.setdefault(home_id, number)
        for column in HOME_COLUMNS[1:]:
            value = cells.get(column, "")
            if value and home.setdefault(column, value) != value:
                errors.append(RowError(number, column, f"disagrees with an earlier row of home {home_id!r}"))
        kind = cells.get("kind", "")
        if kind == "home":
            continue
        if kind not in ROW_COLUMNS:
            errors.append(RowError(number, "kind", f"must be one of home, {', '.join(ROW_COLUMNS)}; got {kind!r}"))
            continue
        spec, columns = ROW_COLUMNS[kind]
        values: dict[str, Any] = {field: cells[col] for col, field in columns.items() if cells.get(col)}
        if "conditions" in values:
            values["conditions"] = [c.strip() for c in values["conditions"].split(";") if c.strip()]
        to_column = {field: col for col, field in columns.items()}
        try:
            home[f"{kind}s"].append(spec.model_validate(values).model_dump())
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                errors.append(RowError(number, to_column.get(field, field), _message(error)))
    if not errors:
        try:
            return RegistryFile.model_validate({"homes": list(homes.values())})
        except ValidationError as exc:
            ids = list(homes)
            for error in exc.errors():
                loc = error["loc"]
                if len(loc) >= 3 and loc[0] == "homes" and isinstance(loc[1], int):
                    home_id = ids[loc[1]]
                    column = "home_id" if loc[2] == "id" else str(loc[2])
                    errors.append(RowError(first_row[home_id], column, f"home {home_id!r}: {_message(error)}"))
                else:
                    errors.append(RowError(0, _path(loc), _message(error)))
    raise RegistryFileError(errors)
