"""Navigation is not evidence (issue 26, point 6): a PDF's running headers and footers ("Harbour
notes, page 3", "Debian Reference 73 / 233") and an HTML page's menus, header, footer and link lists
are left out of its text when it is read, so that the model is never given them (it copied
"Bridges of the Wend, page 1" into answers) and they do not make every page look alike to the
search; a contents list that is text (a PDF's) is recognised and not given to the model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.samples import BRIDGE_PAGES, make_pdf_pages
from ingest.loaders.pdf import load_pdf, running_lines, without_running_lines

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


def test_an_html_pages_menus_and_link_lists_are_left_out_when_it_is_read() -> None:
    from ingest.loaders.formats import html_sections

    page = ("<html><body><nav><a href='/'>Home</a> <a href='/about'>About</a></nav><header><a href='/'>Harbour"
            "</a></header><h1>Ferry</h1><p>The ferry leaves at 7:45 every morning.</p>"
            "<ul><li><a href='/t'>Timetable</a></li><li><a href='/p'>Prices</a></li><li><a href='/m'>Map</a></li></ul>"
            "<ul><li>Bring a <a href='/t'>ticket</a>.</li><li>Be early.</li><li>Dogs ride free.</li></ul>"
            "<footer>Copyright Harbour Ltd</footer></body></html>")
    text = "\n".join(section.text for section in html_sections(page))
    assert "The ferry leaves at 7:45 every morning." in text and "Bring a ticket.\n\nBe early." in text
    for gone in ("Home", "About", "Timetable", "Prices", "Map", "Copyright", "Harbour"):
        assert gone not in text, gone


def test_headings_and_contents_lists_are_navigation() -> None:
    from answers.evidence import is_navigation

    contents = ("Chapter 2. Debian package management\n\nTable of Contents\n\n2.1. Debian package management "
                "prerequisites\n\n2.1.1. Package configuration\n\n2.1.2. Basic precautions\n\n2.1.3. Life with "
                "eternal upgrades\n\n2.2. Basic package management operations")
    leaders = "\n".join(f"9.{n} List of ps command styles . . . . . . . . . . . . {140 + n}" for n in range(1, 8))
    steps = "1. Open the file\n2. Change the line\n3. Save it\n4. Run apt update\n5. Reboot"
    prose = "2.1.3. Life with eternal upgrades\nDebian is updated all the time. Most upgrades are safe.\n" * 2
    assert is_navigation(contents) and is_navigation(leaders)
    assert not is_navigation(steps) and not is_navigation(prose)


DEBIAN_CHAPTER = Path("/usr/share/debian-reference/ch02.en.html")


@pytest.mark.skipif(not DEBIAN_CHAPTER.exists(), reason="debian-reference-en is not installed (make test installs it)")
def test_the_model_gets_the_section_not_the_chapters_contents_list(llm_app, tmp_path: Path) -> None:
    """Debian's "Debian package management" chapter, with its own contents list (a DocBook list of
    links, which ranked among the first chunks for a question it names before it was recognised):
    read, the list is left out; asked, the model is given the section."""
    import shutil

    from answers.evidence import is_navigation
    from tests.conftest import Users, upload

    client = llm_app.test_client()
    account = Users(llm_app, client).register()
    chapter = tmp_path / "debian-packages.html"
    shutil.copy(DEBIAN_CHAPTER, chapter)
    assert upload(client, account, chapter).status_code == 201
    question = "Which key bindings does aptitude have?"
    assert '<div class="toc">' in chapter.read_text() and "Key bindings of aptitude</a>" in chapter.read_text()
    found = llm_app.extensions["docchat"].retriever.search(account.id, question, 8)
    assert found and not any(is_navigation(source.text) for source in found)  # left out when it was read
    session = client.post("/chat/start", json={}, headers=account.headers).get_json()["sessionId"]
    body = client.post("/chat/message", json={"sessionId": session, "message": question},
                       headers=account.headers).get_json()
    assert body["sources"][0]["section"] == "2.2.4. Key bindings of aptitude"
    assert not is_navigation(body["reply"]["content"])
