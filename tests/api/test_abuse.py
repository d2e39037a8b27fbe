"""Abuse and fuzz regressions from the security review (issue 14): each test attacks the server the
way the review did and asserts what the attacker must not get."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import assert_error, upload

PASSWORD = "correct horse battery"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _basic(username: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


# --- 1: a deleted account's logins never work again, and never for somebody else ----------------

def _browser(app, username: str, password: str = PASSWORD):
    browser = app.test_client()
    assert browser.post("/auth/session", json={"username": username, "password": password}).status_code == 200
    return browser


def test_a_deleted_users_logins_do_not_sign_in_the_next_account(app, client, users):
    users.register("alice")
    gina = users.register("gina")  # the highest id: SQLite without AUTOINCREMENT gives it out again
    key = client.post("/auth/api-keys", json={"name": "script"}, headers=gina.headers).get_json()["key"]
    browser = _browser(app, "gina")
    assert app.test_cli_runner().invoke(args=["users", "delete", "gina", "--yes"]).exit_code == 0

    henry = users.register("henry")
    assert henry.id > gina.id  # ids are never reused
    assert_error(client.get("/auth/me", headers=gina.headers), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(gina.refresh_token)), 401)
    assert_error(client.get("/auth/me", headers=_bearer(key)), 401)
    assert_error(browser.get("/auth/me"), 401)
    assert client.get("/auth/me", headers=henry.headers).get_json()["username"] == "henry"


def test_tokens_name_their_account_even_where_an_id_comes_back(app, client, users):
    """A restored backup or a reset sequence could give an old id out again: the token's account
    key still tells the two accounts apart."""
    from auth.models import User

    gina = users.register("gina")
    assert app.test_cli_runner().invoke(args=["users", "delete", "gina", "--yes"]).exit_code == 0
    with app.extensions["docchat"].db.session() as session:
        session.add(User(id=gina.id, username="ivan", password_hash="x", role="admin"))
    assert_error(client.get("/auth/me", headers=gina.headers), 401, "INVALID_TOKEN")
    assert_error(client.post("/auth/refresh", headers=_bearer(gina.refresh_token)), 401, "INVALID_TOKEN")


def test_upgrading_an_old_database_keeps_every_row_and_stops_reusing_ids(tmp_path):
    """Migration 0005 rebuilds the users table on SQLite; rows that reference users survive it."""
    from sqlalchemy import text

    from common.database import Database
    from tests.conftest import schema_at

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    with schema_at(db, "0004") as connection:
        for user_id, name in ((1, "ann"), (2, "bob")):
            connection.execute(text("INSERT INTO users (id, username, password_hash, role, created_at) "
                                    "VALUES (:id, :name, 'h', 'user', '2026-11-01 00:00:00')"),
                               {"id": user_id, "name": name})
        connection.execute(text("INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                                "VALUES (2, 'k', 'dck_x', 'abc', '2026-11-01 00:00:00')"))
    db.migrate()
    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM api_keys WHERE user_id = 2")).scalar() == 1
        keys = connection.execute(text("SELECT token_key FROM users ORDER BY id")).scalars().all()
        assert len(keys) == 2 and len(set(keys)) == 2 and all(len(key) == 32 for key in keys)
        connection.execute(text("DELETE FROM users WHERE id = 2"))
        connection.execute(text("INSERT INTO users (username, password_hash, role, created_at, token_key) "
                                "VALUES ('cy', 'h', 'user', '2026-11-01 00:00:00', 'k')"))
        assert connection.execute(text("SELECT id FROM users WHERE username = 'cy'")).scalar() == 3
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on after migrating
    db.close()


# --- 8: one failure budget per account and address, taken before the hash ----------------------

def test_parallel_guesses_over_every_login_path_get_one_budget(make_app):
    app = make_app(ratelimit_login="10 per minute", ratelimit_register="100 per minute")
    from tests.conftest import Users

    victim = Users(app, app.test_client()).register()
    wrong = {"username": victim.username, "password": "not the password"}

    def guess(attempt: int) -> int:
        client = app.test_client()
        path = attempt % 3
        if path == 0:
            return client.post("/auth/login", json=wrong).status_code
        if path == 1:
            return client.post("/auth/session", json=wrong).status_code
        return client.get("/auth/me", headers=_basic(victim.username, "not the password")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(36)))
    assert statuses.count(401) <= 10, statuses  # at most 10 guesses were checked against the hash
    assert statuses.count(429) >= 26, statuses
    right = {"username": victim.username, "password": victim.password}
    assert_error(app.test_client().post("/auth/login", json=right), 429, "RATE_LIMITED")
    elsewhere = app.test_client().post("/auth/login", json=right, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert elsewhere.status_code == 200  # the account is not locked for its owner on another address


def test_a_script_with_the_right_password_is_never_locked_out(make_app):
    app = make_app(ratelimit_login="3 per minute", ratelimit_register="100 per minute")
    from tests.conftest import Users

    client = app.test_client()
    alice = Users(app, client).register()
    for _ in range(8):
        assert client.get("/auth/me", headers=_basic(alice.username, alice.password)).status_code == 200


# --- 9 and 10: JSON only by its Content-Type, and no nesting that breaks the parser -------------

def test_a_cross_site_form_cannot_log_a_browser_in(client, users):
    users.register("mallory")
    body = json.dumps({"username": "mallory", "password": PASSWORD})
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/auth/session", data=body, content_type=content_type)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert "Set-Cookie" not in response.headers


def test_deeply_nested_json_is_400(client, users):
    alice = users.register()
    assert_error(client.post("/search", data="[" * 100_000, content_type="application/json", headers=alice.headers),
                 400, "VALIDATION_ERROR")
    nested: object = []
    for _ in range(40):
        nested = [nested]  # an ignored field, but still past the depth the API takes
    body = assert_error(client.post("/search", json={"query": "x", "k": 3, "note": nested}, headers=alice.headers),
                        400, "VALIDATION_ERROR")
    assert "deeper than 32" in body["error"]


def test_json_bodies_are_bounded_before_authentication(make_app):
    client = make_app(max_json_kb=64).test_client()
    big = json.dumps({"username": "a", "password": "x" * 100_000})
    body = assert_error(client.post("/auth/login", data=big, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["limit_bytes"] == 64 * 1024
    anonymous = client.post("/v1/chat/completions", data=big, content_type="application/json")
    assert anonymous.status_code == 413  # refused before anyone is asked who they are (OpenAI's envelope)
    assert anonymous.get_json()["error"]["code"] == "payload_too_large"


# --- 2, 5, 6: every text a /v1 request carries is capped before anything is tokenized ----------

def _v1_error(response, status: int, param: str | None = None) -> dict:
    """OpenAI's error envelope with this status (and the field it names)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert error["message"] and "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


def test_oversized_v1_texts_are_refused_naming_the_field(client, users):
    """The model is not even loaded here: the caps hold before any text reaches a tokenizer."""
    alice = users.register()
    chat = {"model": "smollm2-135m-instruct"}
    huge = client.post("/v1/chat/completions", headers=alice.headers,
                       json={**chat, "messages": [{"role": "user", "content": "x" * 45_000_000}]})
    _v1_error(huge, 413)
    long_message = [{"role": "user", "content": "word " * 7000}]
    _v1_error(client.post("/v1/chat/completions", headers=alice.headers, json={**chat, "messages": long_message}),
              400, "messages.0.content")
    parts = [{"role": "user", "content": [{"type": "text", "text": "y" * 20_000}] * 2}]
    _v1_error(client.post("/v1/chat/completions", headers=alice.headers, json={**chat, "messages": parts}),
              400, "messages.0.content")
    many = [{"role": "user", "content": "z" * 30_000}] * 5
    _v1_error(client.post("/v1/chat/completions", headers=alice.headers, json={**chat, "messages": many}), 400,
              "messages")
    prompt = {**chat, "prompt": "p" * 140_000}
    _v1_error(client.post("/v1/completions", headers=alice.headers, json=prompt), 400, "prompt")


def test_stop_sequences_are_few_and_short(client, users):
    alice = users.register()
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    _v1_error(client.post("/v1/chat/completions", headers=alice.headers, json={**body, "stop": ["s" * 600_000] * 4}),
              413)
    _v1_error(client.post("/v1/chat/completions", headers=alice.headers, json={**body, "stop": ["s" * 101]}),
              400, "stop")
    _v1_error(client.post("/v1/completions", headers=alice.headers,
                          json={"model": "smollm2-135m-instruct", "prompt": "a", "stop": ["1", "2", "3", "4", "5"]}),
              400, "stop")


def test_embedding_batches_are_bounded_in_size_and_rate(make_app):
    app = make_app(ratelimit_embeddings="3 per minute")
    client = app.test_client()
    from tests.conftest import Users

    alice = Users(app, client).register()
    batch = {"model": "all-minilm-l6-v2", "input": ["e" * 10_000] * 20}  # 200,000 characters in all
    _v1_error(client.post("/v1/embeddings", headers=alice.headers, json=batch), 400, "input")
    wrong_model = {"model": "text-embedding-3-small", "input": "hi"}
    for _ in range(2):
        _v1_error(client.post("/v1/embeddings", headers=alice.headers, json=wrong_model), 404)
    limited = client.post("/v1/embeddings", headers=alice.headers, json=wrong_model)
    _v1_error(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1


def test_stop_watcher_searches_only_new_text_and_still_finds_stops_across_pieces():
    """A stop is looked for only where it could end: in the new piece (plus a stop's length)."""
    from llm.faithful import StopWatcher

    watcher = StopWatcher(["END", "x" * 100])
    released = "".join(watcher.feed("word ") for _ in range(5000))
    assert released + watcher.flush() == "word " * 5000 and not watcher.stopped
    assert watcher.feed(" the EN") == " the " and watcher.feed("D and more") == "" and watcher.stopped
    assert watcher.text == "word " * 5000 + " the "


# --- 4: one user cannot take the model, the queue or another user's budget ----------------------

def test_generation_routes_share_one_budget_per_user(make_app):
    app = make_app(ratelimit_chat="3 per minute")
    client = app.test_client()
    from tests.conftest import Users

    alice = Users(app, client).register()
    for _ in range(2):
        assert client.post("/chat/start", json={}, headers=alice.headers).status_code == 201
    completion = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=completion, headers=alice.headers).status_code != 429
    _v1_error(client.post("/v1/completions", json={"model": "m", "prompt": "a"}, headers=alice.headers), 429)
    assert_error(client.post("/chat/message", json={"sessionId": "s", "message": "hi"}, headers=alice.headers),
                 429, "RATE_LIMITED")
    bob = Users(app, client).register()
    assert client.post("/chat/start", json={}, headers=bob.headers).status_code == 201  # his own budget


def test_overrides_never_pass_the_models_own_cap():
    from llm.settings import GenerationOverrides, adaptive_settings

    asked = GenerationOverrides(max_new_tokens=2048, num_beams=1, temperature=0)
    assert adaptive_settings(100, 256, asked).max_new_tokens == 256
    assert adaptive_settings(3000, 256, asked).max_new_tokens == 256
    assert adaptive_settings(100, 256, GenerationOverrides(max_new_tokens=40)).max_new_tokens == 40


def test_one_user_holds_only_their_share_of_the_queue_and_others_still_get_answers(make_llm_app):
    app = make_llm_app(llm_max_queue=4, llm_max_queue_per_user=1)
    client = app.test_client()
    from tests.conftest import Users

    accounts = Users(app, client)
    mallory, alice = accounts.register(), accounts.register()
    fact = app.extensions["docchat"].config.data_dir / "ferry.txt"
    fact.write_text("Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n")
    assert upload(client, mallory, fact).status_code == 201
    long_story = {"model": "smollm2-135m-instruct", "stream": True, "temperature": 0, "max_tokens": 2048,
                  "messages": [{"role": "user", "content": "Tell me a very long story about the sea."}]}
    holding = client.post("/v1/chat/completions", json=long_story, headers=mallory.headers, buffered=False)
    try:
        assert holding.status_code == 200
        next(iter(holding.response))  # her answer is being generated
        second = client.post("/v1/chat/completions", json={**long_story, "stream": False}, headers=mallory.headers)
        _v1_error(second, 429)
        assert second.get_json()["error"]["code"] == "concurrency_limit" and int(second.headers["Retry-After"]) >= 1
        chat = client.post("/chat/start", json={"message": "When does the harbour ferry leave?"},
                           headers=mallory.headers)
        assert_error(chat, 429, "CONCURRENCY_LIMIT")  # the share counts /chat and /v1 together
        question = {"model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "The ferry leaves at 7:45. When does it leave?"}]}
        answered = client.post("/v1/chat/completions", json=question, headers=alice.headers)
        assert answered.status_code == 200, answered.get_json()
        assert answered.get_json()["choices"][0]["message"]["content"]
    finally:
        holding.close()
    assert app.extensions["docchat"].llm.scheduler.depth() <= 1


def test_health_and_logins_answer_while_every_generation_slot_is_taken(server_dir, monkeypatch):
    """A real server (gunicorn, `make run`'s settings): the queue's 8 slots are all streaming
    answers from a slow model, yet /health and a login answer at once, since the server keeps
    threads that no generation can hold. The model is a scripted OpenAI-compatible server."""
    import threading

    import requests

    from fixtures.server import call, free_port, start_server
    from tests.fake_openai import FakeOpenAIServer

    fake = FakeOpenAIServer(answer=" ".join(["word"] * 20))
    models = server_dir / "models.json"
    models.write_text(json.dumps({"models": [{
        "id": "slow-remote", "name": "a slow model", "backend": "openai", "default": True,
        "source": {"url": fake.url, "model": "slow"}, "context_length": 8192,
        "generation": {"max_new_tokens": 64}}]}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(server_dir / "data", port, server_dir / "server.log", MODELS_FILE=str(models),
                          LLM_MAX_QUEUE="8", LLM_MAX_QUEUE_PER_USER="2", BOOTSTRAP_ADMIN="false")
    streams: list[requests.Response] = []
    try:
        from tests.conftest import wait_for

        wait_for(lambda: call(f"{base}/health")[0] == 200, 120, "the model to be ready")
        tokens = []
        for number in range(5):
            name = f"user{number}"
            call(f"{base}/auth/register", {"username": name, "password": PASSWORD})
            tokens.append(call(f"{base}/auth/login", {"username": name, "password": PASSWORD})[1]["access_token"])
        fake.word_delay_s = 1.0  # each answer now takes 20 s
        body = {"model": "slow-remote", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

        def ask(token: str) -> None:
            streams.append(requests.post(f"{base}/v1/chat/completions", json=body, stream=True, timeout=60,
                                         headers=_bearer(token)))

        askers = [threading.Thread(target=ask, args=(token,)) for token in tokens[:4] for _ in range(2)]
        for asker in askers:
            asker.start()
        # Each /health call must answer within urllib's 10 s while the 8 requests hold their threads
        # (the model answers 20 s each); with only as many threads as queue slots, it would wait.
        wait_for(lambda: call(f"{base}/health")[1]["queue_depth"] == 8, 30, "all 8 slots to be taken")
        assert call(f"{base}/auth/login", {"username": "user4", "password": PASSWORD})[0] == 200
        status, full = call(f"{base}/v1/chat/completions", {**body, "stream": False}, token=tokens[4])
        assert status == 503 and full["error"]["code"] == "queue_full"
        fake.word_delay_s = 0.01  # let the answers finish
        for asker in askers:
            asker.join(timeout=90)
        assert [response.status_code for response in streams] == [200] * 8  # every slot was answered
    finally:
        for response in streams:
            response.close()
        server.terminate()
        server.wait(timeout=30)
        fake.close()


# --- 3: a restore trusts nothing in the archive -------------------------------------------------

def _archive_of(app, tmp_path):
    import tarfile
    from pathlib import Path

    result = app.test_cli_runner().invoke(args=["backup", "create", "--out", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    archive = Path(result.output.strip().splitlines()[-1])
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as contents:
        contents.extractall(unpacked, filter="data")
    return archive, unpacked


def _repacked(unpacked, path):
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for item in sorted(unpacked.iterdir()):
            archive.add(item, item.name)
    return path


def _fresh_restore(tmp_path, archive, name: str):
    from app import create_app
    from config import Config

    fresh = create_app(Config.for_testing(tmp_path / name))
    try:
        result = fresh.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
        with fresh.extensions["docchat"].db.session() as session:
            from sqlalchemy import text

            users = session.execute(text("SELECT count(*) FROM users")).scalar()
        return result, users
    finally:
        fresh.extensions["docchat"].close()


def _rewrite_rows(unpacked, table: str, change) -> None:
    path = unpacked / "database" / f"{table}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    path.write_text("".join(json.dumps(change(row)) + "\n" for row in rows))


def _user_with_a_document(app, tmp_path):
    """A registered user with one ingested text file."""
    from tests.conftest import Users

    client = app.test_client()
    account = Users(app, client).register()
    note = tmp_path / "note.txt"
    note.write_text("The harbour ferry leaves at 7:45 every morning.\n")
    assert upload(client, account, note).status_code == 201
    return account


def test_restore_refuses_crafted_rows_and_writes_nothing(make_app, tmp_path):
    app = make_app()
    _user_with_a_document(app, tmp_path)
    archive, unpacked = _archive_of(app, tmp_path)
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("a file of somebody else's, outside the data folder")
    crafted = {
        "absolute storage_name": ("documents", lambda row: {**row, "storage_name": str(outside)}),
        "traversal storage_name": ("documents", lambda row: {**row, "storage_name": "../../outside-secret.txt"}),
        "a user id as text": ("documents", lambda row: {**row, "user_id": str(row["user_id"])}),
        "an unknown role": ("users", lambda row: {**row, "role": "root"}),
        "an unknown column": ("users", lambda row: {**row, "is_superuser": True}),
    }
    crafted["a name the server did not make"] = ("documents", lambda row: {**row, "storage_name": "evil.txt"})
    for number, (what, (table, change)) in enumerate(crafted.items()):
        _, copy = _archive_of(app, tmp_path / f"copy{number}")
        _rewrite_rows(copy, table, change)
        if what == "a name the server did not make":  # its file renamed to match: only the name rule is left
            stored = next((copy / "uploads").rglob("*.txt"))
            stored.rename(stored.with_name("evil.txt"))
        result, users = _fresh_restore(tmp_path, _repacked(copy, tmp_path / f"crafted{number}.tar.gz"), f"fresh{number}")
        assert result.exit_code != 0, (what, result.output)
        assert "Traceback" not in result.output and "Error:" in result.output, (what, result.output)
        assert users == 0, what  # nothing was written
    assert outside.exists()
    good, users = _fresh_restore(tmp_path, archive, "fresh-good")
    assert good.exit_code == 0 and users == 1, good.output


def test_restore_refuses_a_stray_file_and_a_tar_attack_with_a_clear_message(make_app, tmp_path):
    import io
    import tarfile

    app = make_app()
    from tests.conftest import Users

    Users(app, app.test_client()).register()
    _, unpacked = _archive_of(app, tmp_path)
    stray = unpacked / "uploads" / "1"
    stray.mkdir(parents=True, exist_ok=True)
    (stray / "planted.txt").write_text("no document owns me")
    result, users = _fresh_restore(tmp_path, _repacked(unpacked, tmp_path / "stray.tar.gz"), "fresh-stray")
    assert result.exit_code != 0 and "belongs to no document" in result.output and users == 0

    attack = tmp_path / "attack.tar.gz"
    with tarfile.open(attack, "w:gz") as archive:
        payload = b"owned"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    result, users = _fresh_restore(tmp_path, attack, "fresh-attack")
    assert result.exit_code != 0 and "not a readable backup archive" in result.output, result.output
    assert "Traceback" not in result.output and users == 0
    assert not (tmp_path / "escaped.txt").exists()


def test_restore_says_when_it_replaces_the_signing_key(make_app, tmp_path):
    app = make_app(jwt_secret_key="")  # the install's key lives in DATA_DIR/jwt_secret
    from tests.conftest import Users

    Users(app, app.test_client()).register()
    archive, _ = _archive_of(app, tmp_path)
    result, users = _fresh_restore(tmp_path, archive, "fresh-key")
    assert result.exit_code == 0 and users == 1, result.output
    assert "signing key replaced" in result.output
    secret = tmp_path / "fresh-key" / "jwt_secret"
    assert secret.read_text().strip() == (app.extensions["docchat"].config.data_dir / "jwt_secret").read_text().strip()
    assert secret.stat().st_mode & 0o777 == 0o600


# --- 7: nothing the server writes is readable by other local users ------------------------------

def test_files_and_folders_the_server_writes_are_private(make_app, tmp_path):
    import os
    import stat

    app = make_app(jwt_secret_key="")
    alice = _user_with_a_document(app, tmp_path)
    archive, _ = _archive_of(app, tmp_path)
    data_dir = app.extensions["docchat"].config.data_dir
    written = [data_dir, archive, archive.parent, *data_dir.rglob("*")]
    assert any(path.name == "app.db" for path in written) and any(path.name == "jwt_secret" for path in written)
    assert any(path.parent.name == str(alice.id) for path in written)  # the upload itself
    for path in written:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode & 0o077 == 0, (str(path.relative_to(tmp_path)), oct(mode))


# --- 11: every list a page at a time, a storage quota ------------------------------------------

def _all_pages(client, account, path: str, key: str, limit: int) -> tuple[list, int]:
    items, pages, cursor = [], 0, None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(path + query, headers=account.headers).get_json()
        assert len(body[key]) <= limit
        items += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_every_list_comes_a_page_at_a_time(app, client, users, tmp_path):
    alice = users.register()
    for number in range(5):
        note = tmp_path / f"note{number}.txt"
        note.write_text(f"Note number {number}: the ferry leaves at {number}:45.\n")
        assert upload(client, alice, note, wait=False).status_code == 202
        assert client.post("/chat/start", json={"title": f"chat {number}"}, headers=alice.headers).status_code == 201
        assert client.post("/auth/api-keys", json={"name": f"key {number}"}, headers=alice.headers).status_code == 201
    whole = client.get("/documents", headers=alice.headers).get_json()
    assert len(whole["documents"]) == 5 and whole["next_cursor"] is None  # the default page holds them all
    for path, key in (("/documents", "documents"), ("/chat/sessions", "sessions"), ("/auth/api-keys", "api_keys")):
        items, pages = _all_pages(client, alice, path, key, limit=2)
        assert pages == 3 and len(items) == 5, path
        ids = [item.get("id") or item.get("sessionId") for item in items]
        assert len(set(ids)) == 5, path  # nothing repeated, nothing skipped
    assert [d["id"] for d in _all_pages(client, alice, "/documents", "documents", 2)[0]] == \
        [d["id"] for d in whole["documents"]]  # the same order as one page
    session = client.get("/chat/sessions", headers=alice.headers).get_json()["sessions"][0]["sessionId"]
    store = app.extensions["docchat"].sessions
    from sessions.repository import NewMessage

    store._repository.append(alice.id, session, [NewMessage("user" if n % 2 == 0 else "assistant", f"m{n}")
                                                 for n in range(6)])
    messages, pages = _all_pages(client, alice, f"/chat/sessions/{session}", "messages", limit=4)
    assert [m["content"] for m in messages] == [f"m{n}" for n in range(6)] and pages == 2
    assert_error(client.get("/documents?cursor=not-a-cursor", headers=alice.headers), 400, "VALIDATION_ERROR")
    assert_error(client.get("/documents?limit=100000", headers=alice.headers), 400, "VALIDATION_ERROR")


def test_a_storage_quota_refuses_the_upload_that_would_pass_it(make_app, tmp_path):
    app = make_app(user_quota_mb=1)
    client = app.test_client()
    from tests.conftest import Users

    alice, bob = Users(app, client).register(), Users(app, client).register()
    first = tmp_path / "first.txt"
    first.write_text("harbour " * 80_000)  # 640 kB
    second = tmp_path / "second.txt"
    second.write_text("lighthouse " * 50_000)  # 550 kB: together past 1 MB
    assert upload(client, alice, first, wait=False).status_code == 202
    body = assert_error(upload(client, alice, second, wait=False), 413, "QUOTA_EXCEEDED")
    assert body["details"]["quota_bytes"] == 1024 * 1024 and body["details"]["used_bytes"] == first.stat().st_size
    documents = client.get("/documents", headers=alice.headers).get_json()["documents"]
    assert [d["filename"] for d in documents] == ["first.txt"]  # nothing half-written
    user_dir = app.extensions["docchat"].config.uploads_dir / str(alice.id)
    assert len(list(user_dir.iterdir())) == 1
    assert upload(client, bob, second, wait=False).status_code == 202  # a quota is per user
