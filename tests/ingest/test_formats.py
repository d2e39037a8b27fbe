"""Scanned PDFs (OCR), tables kept whole, and the zip-based formats' safety, through the real parsers,
the real embedder and the real HTTP app (issue 19). The fact of each new format is found with its
citation in tests/rag/test_documents.py."""
from __future__ import annotations

import itertools
import re
import time
import zipfile

import pytest

import ingest.loaders.pdf as pdf_loader
from fixtures.samples import (
    FACTS,
    TABLE_FACT_ROW,
    TABLE_HEADER,
    filler_page,
    make_scanned_pdf,
    make_table_docx,
    make_table_html,
    make_table_md,
    make_table_pdf,
    make_table_xlsx,
    make_zip_bomb,
    table_rows,
)
from ingest.chunking import Chunker
from ingest.loaders import LOADERS
from ingest.sandbox import ParseLimits, parse_in_sandbox
from rag.embedder import Embedder, packaged_model_path
from rag.spaces import Space
from tests.conftest import Users, assert_error, search, upload

ORCHARD = "How many varieties of pear grow in the orchard on Kettle Hill?"
QUEEN_BEE = ("The queen bee named Marigold lived for seven years in hive number 42, the oldest queen ever recorded "
             "by the Kestrel Valley beekeepers.")
TABLE_MAKERS = {"pdf": make_table_pdf, "docx": make_table_docx, "html": make_table_html, "md": make_table_md,
                "xlsx": make_table_xlsx}
HEADER_LINE = "| " + " | ".join(TABLE_HEADER) + " |"
ROW_LINE = re.compile(r"^\| B\d+ \| [A-Za-z]+ (?:\d+|Star) \| \d+ m \| [A-Za-z ]+ \|$")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.shared(packaged_model_path(), "cpu", "bfloat16")


def test_a_scanned_pdf_is_read_by_ocr_and_its_fact_found_on_its_page(client, users, tmp_path):
    account = users.register()
    scan = make_scanned_pdf(tmp_path / "orchard-scan.pdf", [filler_page(1), FACTS["scanned"]])
    document = upload(client, account, scan).get_json()["document"]
    assert document["status"] == "ready", document
    assert document["pages"] == 2 and document["ocr_pages"] == 2
    best = search(client, account, ORCHARD)[0]
    assert best["document_id"] == document["id"] and best["page"] == 2
    assert "pear" in best["excerpt"] and "Agnes" in best["excerpt"], best["excerpt"]


def test_a_rare_word_of_a_scanned_page_is_found_spelled_and_spaced_as_on_the_page(client, users, tmp_path):
    """OCR keeps the spaces between words: the recogniser it replaced read this page as "... lived
    forseven years inhive number 42 ... Kestrel Valleybeekeepers", which keyword search misses."""
    account = users.register()
    scan = make_scanned_pdf(tmp_path / "hive-log.pdf", [filler_page(1), QUEEN_BEE])
    document = upload(client, account, scan).get_json()["document"]
    assert document["status"] == "ready" and document["ocr_pages"] == 2, document
    keywords = client.application.extensions["docchat"].vectors.keywords
    hits = keywords.search(Space.personal(account.id), "Marigold", 5)
    assert len(hits) == 1 and hits[0].chunk_id.split(":")[0] == hits[0].document_id  # one chunk holds the word
    best = search(client, account, "Marigold")[0]
    assert best["filename"] == "hive-log.pdf" and best["page"] == 2, best
    assert QUEEN_BEE[:-1] in " ".join(best["excerpt"].split()), best["excerpt"]


def test_a_mixed_pdf_reads_only_its_page_without_text_by_ocr(client, users, tmp_path):
    account = users.register()
    mixed = make_scanned_pdf(tmp_path / "mixed.pdf", [None, FACTS["scanned"]])
    document = upload(client, account, mixed).get_json()["document"]
    assert document["status"] == "ready" and document["pages"] == 2 and document["ocr_pages"] == 1
    best = search(client, account, ORCHARD)[0]
    assert best["page"] == 2 and "pear" in best["excerpt"]
    first_page = search(client, account, "harbour notes fish prices at the market", k=1)[0]
    assert first_page["page"] == 1 and "Section 1 of the harbour notes covers" in first_page["excerpt"]  # text layer


def test_ocr_reports_its_progress_page_by_page(tmp_path):
    scan = make_scanned_pdf(tmp_path / "scan.pdf", [filler_page(1), filler_page(2), FACTS["scanned"]])
    heard: list[tuple[int, int]] = []
    parsed = parse_in_sandbox(scan, "pdf", ParseLimits(timeout_s=300, memory_mb=2048),
                              lambda done, total: heard.append((done, total)))
    assert heard == [(0, 3), (1, 3), (2, 3)]
    assert parsed.ocr_pages == 3 and [section.page for section in parsed.sections] == [1, 2, 3]


def test_the_answer_from_a_scanned_pdf_cites_its_page(llm_app, tmp_path):
    client = llm_app.test_client()
    account = Users(llm_app, client).register()
    upload(client, account, make_scanned_pdf(tmp_path / "orchard.pdf", [filler_page(1), FACTS["scanned"]]))
    response = client.post("/chat/start", headers=account.headers, json={
        "message": "Who tends the orchard on Kettle Hill?",
        "generation": {"num_beams": 1, "temperature": 0, "max_new_tokens": 48}})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert "agnes" in body["messages"][1]["content"].lower(), body["messages"][1]
    assert body["sources"][0]["filename"] == "orchard.pdf" and body["sources"][0]["page"] == 2


@pytest.mark.parametrize("kind", TABLE_MAKERS)
def test_a_table_is_chunked_between_rows_with_its_header(kind, tmp_path, embedder):
    path = TABLE_MAKERS[kind](tmp_path / f"berths.{kind}")
    chunks = Chunker(embedder.token_offsets, 200, 40, embedder.max_tokens).chunk(LOADERS[kind](path).sections)
    if kind == "xlsx":  # a record per row, like CSV: every chunk is one whole row with its header names
        records = [chunk for chunk in chunks if chunk.row]
        assert len(records) == 30 and all(chunk.text.count("\n") == 3 for chunk in records)
        assert records[16].row == 18 and records[16].text == "\n".join(
            f"{name}: {value}" for name, value in zip(TABLE_HEADER, TABLE_FACT_ROW, strict=True))
        return
    table_chunks = [chunk for chunk in chunks if chunk.text.startswith(HEADER_LINE + "\n")]
    assert len(table_chunks) >= 2, [chunk.text for chunk in chunks]  # 30 rows do not fit one chunk
    rows = []
    for chunk in table_chunks:
        lines = chunk.text.split("\n")
        assert lines[1].startswith("| --- |") and all(ROW_LINE.match(line) for line in lines[2:]), chunk.text
        assert chunk.tokens <= 200
        rows += lines[2:]
    assert rows == ["| " + " | ".join(row) + " |" for row in table_rows()]  # every row once, whole, in order
    assert not any("Nordlys" in chunk.text for chunk in chunks if chunk not in table_chunks)


def test_a_table_heavy_pdf_reads_the_same_on_a_slow_machine(tmp_path, monkeypatch):
    """Table search is capped in pages, not seconds. Here the machine is made slower than any: its
    clock moves a minute between two readings, so a cap counted in seconds would stop at once."""
    heavy = make_table_pdf(tmp_path / "berths.pdf", copies=4)
    normal = pdf_loader.load_pdf(heavy)
    readings = itertools.count(step=60.0)
    monkeypatch.setattr(time, "monotonic", lambda: float(next(readings)))
    slow = pdf_loader.load_pdf(heavy)
    assert slow.sections == normal.sections
    assert len({section.page for section in normal.sections if section.header}) == normal.pages  # tables read
    assert normal.table_pages_skipped == slow.table_pages_skipped == 0


def test_pages_past_the_table_cap_keep_their_text_and_are_counted(tmp_path, monkeypatch):
    heavy = make_table_pdf(tmp_path / "berths.pdf", copies=4)
    monkeypatch.setattr(pdf_loader, "TABLE_PAGES", 1)
    parsed = pdf_loader.load_pdf(heavy)
    assert parsed.pages is not None and parsed.pages >= 3
    assert parsed.table_pages_skipped == parsed.pages - 1
    assert {section.page for section in parsed.sections if section.header} == {1}
    later = "\n".join(section.text for section in parsed.sections if section.page == parsed.pages)
    assert any(row[1] in later for row in table_rows())  # the rows' words kept as plain text


@pytest.mark.parametrize("kind", TABLE_MAKERS)
def test_a_question_about_one_cell_retrieves_its_row(kind, client, users, tmp_path):
    account = users.register()
    assert upload(client, account, TABLE_MAKERS[kind](tmp_path / f"berths.{kind}")).status_code == 201
    best = search(client, account, "Which agent handles the vessel Nordlys Star?")[0]
    assert "Nordlys Star" in best["excerpt"] and "Kvist Shipping" in best["excerpt"], best["excerpt"]
    if kind == "xlsx":
        assert best["section"] == "Berths" and best["row"] == 18
    else:
        assert "| B17 | Nordlys Star | 86 m | Kvist Shipping |" in best["excerpt"]


@pytest.mark.parametrize(("real", "claimed"), [("pptx", ".xlsx"), ("docx", ".pptx"), ("epub", ".docx"),
                                                ("txt", ".eml"), ("xlsx", ".epub")])
def test_each_format_is_sniffed_by_its_content(client, users, samples, real, claimed):
    account = users.register()
    body = assert_error(upload(client, account, samples[real], name=f"renamed{claimed}"), 415, "UNSUPPORTED_FILE_TYPE")
    assert "does not match" in body["error"]


BOMB_MEMBERS = {"pptx": "ppt/slides/slide1.xml", "xlsx": "xl/worksheets/sheet2.xml", "epub": "OEBPS/text/ch1.xhtml"}


@pytest.mark.parametrize("lie", [False, True])
@pytest.mark.parametrize("kind", BOMB_MEMBERS)
def test_a_zip_bomb_in_any_zip_format_fails_cleanly(make_app, samples, tmp_path, kind, lie):
    app = make_app(parse_memory_mb=256)
    client = app.test_client()
    account = Users(app, client).register()
    bomb = make_zip_bomb(samples[kind], tmp_path / f"bomb.{kind}", BOMB_MEMBERS[kind], 600, lie)
    assert bomb.stat().st_size < 5 * 1024 * 1024
    body = assert_error(upload(client, account, bomb), 422, "UNPROCESSABLE_DOCUMENT")
    assert body["details"]["document"]["status"] == "failed"
    if not lie:
        assert "zip bomb" in body["error"]
    assert app.extensions["docchat"].vectors.count(Space.personal(account.id)) == 0
    assert client.get("/auth/me", headers=account.headers).status_code == 200


XXE_TARGETS = {"pptx": ("ppt/slides/slide2.xml", b"Ferry schedule"), "xlsx": ("xl/worksheets/sheet2.xml", b"Brass propellers"),
               "epub": ("OEBPS/text/ch2.xhtml", b"The Glassblower")}


@pytest.mark.parametrize("kind", XXE_TARGETS)
def test_an_external_entity_in_any_zip_format_reads_no_local_file(client, users, samples, tmp_path, kind):
    account = users.register()
    secret = tmp_path / "secret.txt"
    secret.write_text("kumquat-secret-9931")
    member, anchor = XXE_TARGETS[kind]
    evil = tmp_path / f"evil.{kind}"
    with zipfile.ZipFile(samples[kind]) as source, zipfile.ZipFile(evil, "w") as out:
        names = source.namelist()
        assert member in names, names
        for item in source.infolist():
            data = source.read(item)
            if item.filename == member:
                data = data.replace(b"?>", f'?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">]>'.encode(), 1)
                data = data.replace(anchor, anchor + b" &xxe;", 1)
            out.writestr(item, data)
    response = upload(client, account, evil)
    assert response.status_code in (201, 422), response.get_json()  # read without the entity, or refused
    for result in search(client, account, "kumquat secret", k=50) + search(client, account, anchor.decode(), k=50):
        assert "kumquat" not in result["excerpt"]
