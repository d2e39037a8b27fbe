"""Tables as rows under their header line, so that a chunk of a table is whole rows a reader (and the
model) can still read: the chunker repeats the header at the top of every chunk and splits only
between rows (`Section.header`)."""
from __future__ import annotations

from dataclasses import dataclass

from ingest.types import Section


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def table_from_cells(cells: list[list[str | None]]) -> Table | None:
    """A grid of cells (first row the header) -> Table; None unless it has a row under a header of
    at least two columns (a framed box of code or a one-column list is not a table)."""
    grid = [[_cell(value) for value in row] for row in cells]
    grid = [row for row in grid if any(row)]
    if len(grid) < 2 or sum(1 for name in grid[0] if name) < 2:
        return None
    width = max(len(row) for row in grid)
    header = [name or f"column {index + 1}" for index, name in enumerate(_padded(grid[0], width))]
    return Table(header, [_padded(row, width) for row in grid[1:]])


def table_from_html(html: str) -> Table | None:
    """The first <table> of an HTML fragment (unstructured's `text_as_html`) -> Table."""
    if "<table" not in html.lower():
        return None
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser(no_network=True, huge_tree=False)
    root = lxml_html.fromstring(html, parser=parser)
    table = root if root.tag == "table" else root.find(".//table")
    if table is None:
        return None
    cells = [[cell.text_content() for cell in row.xpath("./th|./td")] for row in table.iter("tr")]
    return table_from_cells([row for row in cells if row])


def table_sections(table: Table, page: int | None = None, section: str | None = None) -> list[Section]:
    """One section holding every row, one per line, with the header line in `Section.header`."""
    header = _line(table.header) + "\n" + _line(["---"] * len(table.header))
    text = "\n".join(_line(row) for row in table.rows)
    return [Section(text=text, page=page, section=section, header=header)]


def _cell(value: str | None) -> str:
    return " ".join((value or "").split()).replace("|", "/")


def _padded(row: list[str], width: int) -> list[str]:
    return row + [""] * (width - len(row))


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
