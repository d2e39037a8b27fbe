"""Navigation is not evidence (issue 26, point 6, in part): a PDF's running headers and footers
("Harbour notes, page 3", "Debian Reference 73 / 233") are left out of its text, so that the model
is never given them (it copied "Bridges of the Wend, page 1" into answers) and they do not make
every page look alike to the search."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.samples import BRIDGE_PAGES, make_pdf_pages
from rag.loaders.pdf import load_pdf, running_lines, without_running_lines

DEBIAN_PDF = Path("/usr/share/debian-reference/debian-reference.en.pdf")


def test_a_pdfs_page_headers_are_left_out_and_its_text_kept(tmp_path: Path) -> None:
    path = make_pdf_pages(tmp_path / "bridges.pdf", BRIDGE_PAGES, title="Bridges of the Wend")
    sections = load_pdf(path).sections
    text = "\n".join(section.text for section in sections)
    assert "Bridges of the Wend" not in text
    assert [section.page for section in sections] == [1, 2, 3]
    assert "opened by Queen Matilda" in sections[0].text and "every January because ice blocked" in sections[2].text


def test_a_single_page_keeps_its_first_line(tmp_path: Path) -> None:
    path = make_pdf_pages(tmp_path / "one.pdf", BRIDGE_PAGES[:1], title="Bridges of the Wend")
    assert "Bridges of the Wend, page 1" in load_pdf(path).sections[0].text


@pytest.mark.skipif(not DEBIAN_PDF.exists(), reason="debian-reference-en is not installed (make test installs it)")
def test_the_debian_manuals_running_header_goes_and_its_text_stays() -> None:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(DEBIAN_PDF))
    pages = [document[index].get_textpage().get_text_range() for index in range(len(document))]
    document.close()
    running = running_lines(pages)
    assert running == {"debian reference # / #"}  # "Debian Reference 73 / 233" on every numbered page
    page = without_running_lines(pages[100], running)
    assert not re.search(r"^Debian Reference \d+ / \d+", page, re.MULTILINE)
    assert "deb http://deb.debian.org/debian/ sid main contrib non-free" in page
    kept, before = "".join(page.split()), "".join(pages[100].split())
    assert len(before) - len(kept) == len("DebianReference73/233")  # that line, and nothing else
