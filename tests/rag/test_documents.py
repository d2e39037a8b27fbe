"""Document ingestion through the real HTTP app: real parsers, real embedder, real Chroma."""
from __future__ import annotations

import time

import pytest

from fixtures.samples import FACTS
from rag.spaces import Space
from tests.conftest import assert_error, search, upload

QUESTIONS = {
    "pdf": "When does the lighthouse keeper polish the lens?",
    "docx": "How much did the bakery's quarterly revenue rise to?",
    "doc": "Where does the Wexford choir rehearse?",
    "html": "When do the cranes arrive at the lake?",
    "md": "How long must I hold the button to reset the router?",
    "csv": "Who is the chief cartographer?",
    "txt": "Was kostet die Gletschertour mit dem Bergführer?",
    "pptx": "When does the night ferry to Inishmore leave?",
    "xlsx": "How many brass propellers are in stock, and in which warehouse?",
    "epub": "What wood did the glassblower of Murano burn in her furnace?",
    "eml": "How often must the boiler in the east wing be descaled?",
}
# Where each format's fact must be cited: (page, section, row).
ADDRESSES = {
    "pdf": (2, None, None),
    "docx": (None, "Bakery results", None),
    "doc": (None, "Rehearsals", None),  # a legacy Word file keeps its headings, as a .docx does
    "html": (None, "Cranes", None),
    "md": (None, "Factory reset", None),
    "csv": (None, None, 2),
    "txt": (None, None, None),
    "pptx": (2, "Ferry schedule", None),  # slide 2, from its speaker notes
    "xlsx": (None, "Inventory", 3),  # the sheet and the row as the sheet shows it
    "epub": (None, "The Glassblower", None),  # the chapter's heading
    "eml": (None, "Attachment: notes.txt", None),
}
PAGES = {"pdf": 3, "pptx": 3}


@pytest.mark.parametrize("doc_type", list(QUESTIONS))
def test_each_format_is_ingested_and_its_fact_found(client, users, samples, doc_type):
    if doc_type not in samples:
        pytest.skip("making a .doc needs LibreOffice (make test installs it as root)")
    account = users.register()
    response = upload(client, account, samples[doc_type])
    assert response.status_code == 201, response.get_json()
    document = response.get_json()["document"]
    assert document["status"] == "ready" and document["progress"] == 1.0 and document["chunks"] >= 1
    assert document["type"] == doc_type and document["filename"] == samples[doc_type].name
    assert document["pages"] == PAGES.get(doc_type) and document["error"] is None and document["ocr_pages"] == 0
    assert document["table_pages_skipped"] == 0
    best = search(client, account, QUESTIONS[doc_type])[0]
    assert best["document_id"] == document["id"] and best["filename"] == samples[doc_type].name
    key_words = FACTS[doc_type].split()[1:4]
    assert all(word in best["excerpt"] for word in key_words), (best["excerpt"], key_words)
    assert (best["page"], best["section"], best["row"]) == ADDRESSES[doc_type]
    if doc_type == "csv":
        assert "role: chief cartographer" in best["excerpt"]
    if doc_type == "xlsx":
        assert "warehouse: Tromsø" in best["excerpt"] and "count: 312" in best["excerpt"]


def test_upload_is_queued_then_reports_progress_until_ready(client, users, samples):
    account = users.register()
    response = upload(client, account, samples["pdf"], wait=False)
    assert response.status_code == 202
    document = response.get_json()["document"]
    assert document["status"] in ("queued", "processing") and 0.0 <= document["progress"] < 1.0
    progress = [document["progress"]]
    for _ in range(300):
        current = client.get(f"/documents/{document['id']}", headers=account.headers).get_json()["document"]
        progress.append(current["progress"])
        if current["status"] == "ready":
            break
        assert current["status"] in ("queued", "processing") and current["error"] is None
        time.sleep(0.1)
    assert current["status"] == "ready" and current["progress"] == 1.0 and current["chunks"] >= 3
    assert progress == sorted(progress), progress  # it only ever moves forward
    listed = client.get("/documents", headers=account.headers).get_json()["documents"]
    assert [d["id"] for d in listed] == [document["id"]]


def test_same_bytes_again_answer_200_with_the_existing_document(app, client, users, samples):
    account = users.register()
    first = upload(client, account, samples["md"]).get_json()["document"]
    again = upload(client, account, samples["md"], name="renamed.md")
    assert again.status_code == 200
    assert again.get_json()["document"]["id"] == first["id"]
    assert app.extensions["docchat"].vectors.count(Space.personal(account.id)) == first["chunks"]
    other = users.register()
    assert upload(client, other, samples["md"]).status_code == 201  # dedupe is per user


def test_delete_removes_the_record_file_and_chunks(app, client, users, samples):
    account = users.register()
    document = upload(client, account, samples["docx"]).get_json()["document"]
    services = app.extensions["docchat"]
    stored = services.config.uploads_dir / str(account.id) / f"{document['id']}.docx"
    assert stored.exists() and services.vectors.count(Space.personal(account.id), document["id"]) == document["chunks"]
    assert client.delete(f"/documents/{document['id']}", headers=account.headers).status_code == 204
    assert_error(client.get(f"/documents/{document['id']}", headers=account.headers), 404, "NOT_FOUND")
    assert not stored.exists() and services.vectors.count(Space.personal(account.id)) == 0
    assert search(client, account, QUESTIONS["docx"]) == []


def test_other_users_get_404_for_everything(client, users, samples):
    owner, stranger = users.register(), users.register()
    document = upload(client, owner, samples["html"]).get_json()["document"]
    for method in (client.get, client.delete):
        assert_error(method(f"/documents/{document['id']}", headers=stranger.headers), 404, "NOT_FOUND")
    assert client.get("/documents", headers=stranger.headers).get_json()["documents"] == []
    assert client.get(f"/documents/{document['id']}", headers=owner.headers).status_code == 200


def test_canary_sentence_never_reaches_another_user(app, client, users, samples, tmp_path):
    alice, bob = users.register(), users.register()
    canary = tmp_path / "canary.txt"
    canary.write_text("The vault code of Alice's private archive is tangerine-4471-walrus.\n")
    upload(client, alice, canary)
    upload(client, bob, samples["md"])
    for results in (search(client, bob, "What is the vault code of the private archive?", k=50),
                    search(client, bob, "tangerine-4471-walrus", k=50)):
        assert results and all("tangerine" not in r["excerpt"] for r in results)
    assert "tangerine-4471-walrus" in search(client, alice, "vault code")[0]["excerpt"]
    services = app.extensions["docchat"]
    vector = services.retriever._embedder().embed(["vault code tangerine"])[0]
    assert all("tangerine" not in hit.text for hit in services.vectors.query(Space.personal(bob.id), vector, 100))


def test_documents_survive_a_restart(make_app, users, samples):
    account = users.register()
    document = upload(users.client, account, samples["csv"]).get_json()["document"]
    restarted = make_app().test_client()
    assert restarted.get(f"/documents/{document['id']}", headers=account.headers).get_json()["document"]["status"] == "ready"
    assert search(restarted, account, QUESTIONS["csv"])[0]["document_id"] == document["id"]


def test_cli_ingests_a_folder_with_a_progress_bar(app, client, users, samples):
    account = users.register()
    result = app.test_cli_runner().invoke(args=["ingest", account.username, str(samples["pdf"].parent)])
    assert result.exit_code == 0, result.output
    assert f"{len(samples)} of {len(samples)} files ready" in result.output
    assert all(f"{path}: " in result.output for path in samples.values()) and "chunks" in result.output
    documents = client.get("/documents", headers=account.headers).get_json()["documents"]
    assert sorted(d["type"] for d in documents) == sorted(QUESTIONS) and {d["status"] for d in documents} == {"ready"}
    again = app.test_cli_runner().invoke(args=["ingest", account.username, str(samples["md"])])
    assert "already uploaded" in again.output


def test_search_defaults_to_the_configured_top_k_and_validates_k(make_app, samples):
    app = make_app(search_top_k=2)
    client = app.test_client()
    from tests.conftest import Users

    account = Users(app, client).register()
    upload(client, account, samples["pdf"])
    response = client.post("/search", json={"query": "harbour"}, headers=account.headers)
    assert len(response.get_json()["results"]) == 2
    body = assert_error(client.post("/search", json={"query": "x", "k": 0}, headers=account.headers), 400)
    assert body["details"]["fields"][0]["field"] == "k"


def test_deleting_a_user_removes_their_documents_files_and_chunks(app, client, users, samples):
    account = users.register("leaving")
    upload(client, account, samples["md"])
    services = app.extensions["docchat"]
    assert services.vectors.count(Space.personal(account.id)) > 0
    result = app.test_cli_runner().invoke(args=["users", "delete", "leaving", "--yes"])
    assert result.exit_code == 0, result.output
    assert services.vectors.count(Space.personal(account.id)) == 0
    assert not (services.config.uploads_dir / str(account.id)).exists()
    assert services.documents.listed(account.id) == []


def test_wait_answers_202_with_the_current_state_once_its_time_is_up(make_app, samples):
    """`?wait=true` waits at most UPLOAD_WAIT_TIMEOUT_S, then answers 202 with the document as it is."""
    from tests.conftest import Users

    app = make_app(upload_wait_timeout_s=0)
    client = app.test_client()
    account = Users(app, client).register()
    response = upload(client, account, samples["pdf"], wait=True)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["document"]["status"] in ("queued", "processing")
