"""Cached results for the formula cells of a workbook openpyxl wrote.

openpyxl stores a formula without its result (`<f>…</f><v/>`). Excel and LibreOffice recalculate on opening, but a
reader that does not (pandas.read_excel, openpyxl with `data_only=True`, most previewers) sees an empty cell. The
report knows each formula's result when it writes the formula (the seed statistics every other view shows), so once
openpyxl has saved the workbook those results go into the cells' `<v>` elements, where a spreadsheet application
caches them; the formulas stay as they are, and openpyxl's `fullCalcOnLoad` still makes Excel recalculate.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from xml.etree import ElementTree

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
# Serialise as openpyxl does: the spreadsheet namespace as the default, `r:` for relationships (<legacyDrawing r:id>).
ElementTree.register_namespace("", MAIN)
ElementTree.register_namespace("r", RELATIONSHIPS)


class ExcelError(str):
    """A formula's error result such as "#DIV/0!": cached as an error cell, not as text."""


def with_cached_values(data: bytes, cached: dict[str, dict[str, float | str]]) -> bytes:
    """`data` (an xlsx file) with `cached[sheet title][coordinate]` stored as the result of those formula cells."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        parts = _sheet_parts(source)
        unknown = set(cached) - set(parts.values())
        if unknown:
            raise ValueError(f"no sheet {', '.join(sorted(unknown))} in the workbook")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                content = source.read(info)
                title = parts.get(info.filename)
                if cached.get(title):
                    content = _cache_sheet(content, cached[title], title)
                target.writestr(info, content)
    return out.getvalue()


def _sheet_parts(book: zipfile.ZipFile) -> dict[str, str]:
    """{part name of a worksheet: its title}, from the workbook and its relationships."""
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target") for rel in rels.iter(f"{{{PACKAGE}}}Relationship")}
    parts = {}
    for sheet in workbook.iter(f"{{{MAIN}}}sheet"):
        target = targets[sheet.get(f"{{{RELATIONSHIPS}}}id")]
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        parts[part] = sheet.get("name")
    return parts


def _cache_sheet(xml: bytes, results: dict[str, float | str], title: str) -> bytes:
    root = ElementTree.fromstring(xml)
    pending = dict(results)
    for cell in root.iter(f"{{{MAIN}}}c"):
        coordinate = cell.get("r")
        if coordinate not in pending:
            continue
        if cell.find(f"{{{MAIN}}}f") is None:
            raise ValueError(f"{title}!{coordinate} holds no formula to cache a result for")
        value = pending.pop(coordinate)
        slot = cell.find(f"{{{MAIN}}}v")
        if slot is None:
            slot = ElementTree.SubElement(cell, f"{{{MAIN}}}v")
        if isinstance(value, ExcelError):
            cell.set("t", "e")
            slot.text = str(value)
        elif isinstance(value, str):
            cell.set("t", "str")
            slot.text = value
        else:
            cell.attrib.pop("t", None)
            slot.text = repr(float(value))
    if pending:
        raise ValueError(f"{title}: no formula cell {', '.join(sorted(pending))}")
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
