"""CHROMA_HOST: the same ingestion and isolation against a Chroma server (`chroma run`)."""
from __future__ import annotations

from rag.spaces import Space
from tests.conftest import Users, search, upload


def test_documents_are_stored_and_isolated_on_a_chroma_server(make_app, chroma_server, samples, tmp_path):
    app = make_app(chroma_host="127.0.0.1", chroma_port=chroma_server)
    client = app.test_client()
    users = Users(app, client)
    alice, bob = users.register(), users.register()
    document = upload(client, alice, samples["docx"]).get_json()["document"]
    assert document["status"] == "ready"
    assert not (tmp_path / "data" / "chroma").exists()  # nothing went to the embedded store
    assert search(client, alice, "bakery revenue")[0]["document_id"] == document["id"]
    upload(client, bob, samples["md"])
    assert all(r["document_id"] != document["id"] for r in search(client, bob, "bakery revenue", k=20))
    assert client.delete(f"/documents/{document['id']}", headers=alice.headers).status_code == 204
    assert app.extensions["docchat"].vectors.count(Space.personal(alice.id)) == 0
