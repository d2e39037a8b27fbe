"""Bad and hostile uploads: clear JSON errors, nothing half-written, the server unharmed."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from fixtures.samples import make_docx, make_pdf, make_zip_bomb
from rag.spaces import Space
from tests.conftest import assert_error, search, upload


def _post(client, account, data: bytes, name: str, wait: bool = True):
    return client.post(f"/upload{'?wait=true' if wait else ''}", headers=account.headers,
                       data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def _nothing_kept(app, account) -> None:
    services = app.extensions["docchat"]
    assert services.documents.listed(account.id) == []
    user_dir = services.config.uploads_dir / str(account.id)
    assert not user_dir.exists() or list(user_dir.iterdir()) == []
    incoming = services.config.uploads_dir / ".incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []


@pytest.mark.parametrize("data,name,why", [
    (b"MZ\x90\x00" + bytes(range(256)) * 4, "setup.exe", "Unsupported file type"),
    (b"%PDF-1.7\n" + bytes(range(256)) * 4, "notes.txt", "PDF"),
    (b"just some words, not a PDF at all\n", "paper.pdf", "plain text"),
    (bytes(range(256)) * 16, "table.csv", "binary"),
    (b"a plain sentence without any markup\n", "page.html", "plain text"),
    (b"PK\x03\x04" + b"\x00" * 200, "letter.docx", "zip"),
])
def test_unsupported_or_mismatched_types_are_415(app, client, users, data, name, why):
    account = users.register()
    body = assert_error(_post(client, account, data, name), 415, "UNSUPPORTED_FILE_TYPE")
    assert why in body["error"]
    _nothing_kept(app, account)


@pytest.mark.parametrize("data", [b"", b"  \n\t\n  "])
def test_empty_files_are_422(app, client, users, data):
    account = users.register()
    assert_error(_post(client, account, data, "empty.txt"), 422, "EMPTY_DOCUMENT")
    _nothing_kept(app, account)


def test_missing_file_field_is_400_naming_it(client, users):
    account = users.register()
    response = client.post("/upload", headers=account.headers, data={"other": "x"}, content_type="multipart/form-data")
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"]["fields"][0]["field"] == "file"


def test_bad_wait_parameter_is_400(client, users):
    account = users.register()
    body = assert_error(client.post("/upload?wait=perhaps", headers=account.headers), 400, "VALIDATION_ERROR")
    assert body["details"]["fields"][0]["field"] == "wait"


def test_too_large_upload_is_413_before_parsing(make_app, users, tmp_path):
    app = make_app(max_upload_mb=1)
    client = app.test_client()
    from tests.conftest import Users

    account = Users(app, client).register()
    assert_error(_post(client, account, b"word " * 400_000, "big.txt"), 413, "PAYLOAD_TOO_LARGE")
    _nothing_kept(app, account)


def test_upload_requires_authentication(client):
    response = client.post("/upload", data={"file": (io.BytesIO(b"hello"), "a.txt")}, content_type="multipart/form-data")
    assert_error(response, 401, "UNAUTHORIZED")


def test_traversal_filename_is_only_metadata(app, client, users, tmp_path):
    account = users.register()
    response = _post(client, account, b"A note about the harbour ferry timetable.\n", "../../../../tmp/evil.txt")
    assert response.status_code == 201
    document = response.get_json()["document"]
    assert document["filename"] == "evil.txt"
    stored = list((app.extensions["docchat"].config.uploads_dir / str(account.id)).iterdir())
    assert [p.name for p in stored] == [f"{document['id']}.txt"]
    assert not Path("/tmp/evil.txt").exists()


def test_corrupt_pdf_fails_with_a_clear_error_and_no_chunks(app, client, users, samples):
    account = users.register()
    broken = samples["pdf"].read_bytes()[:400]  # a real header, then cut off
    body = assert_error(_post(client, account, broken, "cut.pdf"), 422, "UNPROCESSABLE_DOCUMENT")
    document = body["details"]["document"]
    assert document["status"] == "failed" and document["error"] and document["chunks"] == 0
    assert app.extensions["docchat"].vectors.count(Space.personal(account.id)) == 0
    listed = client.get("/documents", headers=account.headers).get_json()["documents"]
    assert [d["status"] for d in listed] == ["failed"]
    assert upload(client, account, samples["md"]).status_code == 201  # the server carries on


def test_parse_time_limit_fails_the_document_only(make_app, tmp_path):
    app = make_app(parse_timeout_s=1)
    client = app.test_client()
    from tests.conftest import Users

    account = Users(app, client).register()
    slow = make_pdf(tmp_path / "long.pdf", fact_page=1, pages=4000)
    body = assert_error(upload(client, account, slow), 422, "UNPROCESSABLE_DOCUMENT")
    assert "longer than the 1 s limit" in body["error"]
    assert client.get("/auth/me", headers=account.headers).status_code == 200


@pytest.mark.parametrize("lie", [False, True])
def test_zip_bomb_docx_fails_cleanly(make_app, tmp_path, lie):
    app = make_app(parse_memory_mb=256)
    client = app.test_client()
    from tests.conftest import Users

    account = Users(app, client).register()
    bomb = make_zip_bomb(make_docx(tmp_path / "t.docx"), tmp_path / "bomb.docx", "word/document.xml", 600, lie)
    assert bomb.stat().st_size < 5 * 1024 * 1024
    body = assert_error(upload(client, account, bomb), 422, "UNPROCESSABLE_DOCUMENT")
    assert body["details"]["document"]["status"] == "failed"
    assert app.extensions["docchat"].vectors.count(Space.personal(account.id)) == 0
    assert client.get("/auth/me", headers=account.headers).status_code == 200


def test_xxe_in_docx_reads_no_local_file(app, client, users, tmp_path):
    account = users.register()
    secret = tmp_path / "secret.txt"
    secret.write_text("kumquat-secret-9931")
    template = make_docx(tmp_path / "t.docx")
    evil = tmp_path / "evil.docx"
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(evil, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "word/document.xml":
                data = data.replace(b"?>", f'?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">]>'.encode(), 1)
                data = data.replace(b"Annual report", b"Annual report &xxe;")
            out.writestr(item, data)
    response = upload(client, account, evil)
    assert response.status_code == 201  # ingested, with the entity left unresolved
    found = search(client, account, "Annual report", k=50)
    assert any("Annual report" in result["excerpt"] for result in found)  # the document itself was read
    for result in found + search(client, account, "kumquat secret", k=50):
        assert "kumquat" not in result["excerpt"]


def _with_word_flags(doc: Path, target: Path, flags: int) -> Path:
    """A copy of a real .doc with these bits set in its header's flags (FibBase at offset 0x0A):
    0x0100 is how Word marks a file saved with a password to open (fEncrypted)."""
    import olefile

    target.write_bytes(doc.read_bytes())
    with olefile.OleFileIO(str(target), write_mode=True) as container:
        stream = bytearray(container.openstream("WordDocument").read())
        stream[10:12] = (int.from_bytes(stream[10:12], "little") | flags).to_bytes(2, "little")
        container.write_stream("WordDocument", bytes(stream))
    return target


def test_a_damaged_or_password_protected_doc_is_a_clear_422_and_nothing_is_kept(app, client, users, samples,
                                                                                  tmp_path):
    if "doc" not in samples:
        pytest.skip("making a .doc needs LibreOffice (make test installs it as root)")
    account = users.register()
    real = samples["doc"].read_bytes()
    cut = assert_error(_post(client, account, real[:6000], "minutes.doc"), 422, "UNPROCESSABLE_DOCUMENT")
    assert "damaged" in cut["error"], cut["error"]
    locked = _with_word_flags(samples["doc"], tmp_path / "locked.doc", 0x0100)
    body = assert_error(upload(client, account, locked), 422, "UNPROCESSABLE_DOCUMENT")
    assert "password-protected" in body["error"], body["error"]
    assert body["details"]["document"]["status"] == "failed" and body["details"]["document"]["chunks"] == 0
    assert app.extensions["docchat"].vectors.count(Space.personal(account.id)) == 0
    assert upload(client, account, samples["doc"]).status_code == 201  # the server carries on


def test_a_legacy_office_file_that_is_not_word_is_refused_as_a_doc(client, users, samples, tmp_path):
    """An OLE2 container without a WordDocument stream (an .xls, a .ppt) named .doc: 415, as for any
    content that does not match its extension."""
    import olefile

    if "doc" not in samples:
        pytest.skip("making a .doc needs LibreOffice (make test installs it as root)")
    account = users.register()
    with olefile.OleFileIO(str(samples["doc"])) as container:
        assert container.exists("WordDocument")
    sheet = samples["doc"].read_bytes().replace("WordDocument".encode("utf-16-le"), "Workbook\0\0\0\0".encode("utf-16-le"))
    body = assert_error(_post(client, account, sheet, "budget.doc"), 415, "UNSUPPORTED_FILE_TYPE")
    assert "legacy Office file other than Word" in body["error"], body["error"]
