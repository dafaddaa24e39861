"""CSV of one dashboard table: UTF-8 with a byte-order mark (Excel), a header row of the
column names in the page's language, raw numbers, and no cell Excel would run as a formula."""

from __future__ import annotations

import csv
import io
from typing import Any

from analytics.dashboard import Table

# A cell a spreadsheet would read as a formula (visitors' words reach the gap table).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        value = "; ".join(str(item) for item in value)
    if isinstance(value, int | float) and kind not in {"text", "user_text"}:
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def table_csv(table: Table) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([str(column.label) for column in table.columns])
    for row in table.rows:
        writer.writerow([_cell(row.get(column.key), column.kind) for column in table.columns])
    return out.getvalue()
