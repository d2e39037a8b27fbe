"""The browser UI as a person uses it: Debian's headless Chromium against the real server (gunicorn).

Screenshots of failed tests land in test-artifacts/ (or $TEST_ARTIFACTS)."""
from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fixtures.server import ROOT, call, free_port, start_server
from tests.conftest import wait_for

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make test installs it)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=(
    "Debian's chromium and chromium-driver are not installed: `make test` installs them with apt when run as root"))
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))


@contextmanager
def serving(directory: Path, ready_within_s: float, **settings: str) -> Iterator[tuple[str, Path]]:
    """(base URL, log) of `make run`'s server in `directory`, once /health says it is ready; stopped after."""
    port, log = free_port(), directory / "server.log"
    server = start_server(directory / "data", port, log, **settings)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: call(f"{base}/health")[0] == 200, ready_within_s, "the server to be ready")
        yield base, log
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """The server as `make run` starts it, with the model loaded; the first admin's password from its log."""
    # Every test here signs people up and in from 127.0.0.1: more than RATELIMIT_LOGIN's 10 a minute.
    with serving(tmp_path_factory.mktemp("browser-server"), 600, MODEL_CACHE_DIR=str(model_cache_dir),
                 RATELIMIT_LOGIN="100 per minute", RATELIMIT_REGISTER="100 per minute") as (base, log):
        password = re.search(r"password: (\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
        yield {"base": base, "admin_password": password, "log": log}


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    driver.quit()


def until(driver: Any, condition: Any, seconds: float = 30) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(lambda _driver: condition())


def visible(driver: Any, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def register_and_log_in(driver: Any, base: str, username: str) -> None:
    driver.get(base)
    until(driver, lambda: visible(driver, "login-view"))
    driver.find_element(By.ID, "login-username").send_keys(username)
    driver.find_element(By.ID, "login-password").send_keys("correct horse battery")
    driver.find_element(By.ID, "register-button").click()
    until(driver, lambda: visible(driver, "app-view"))


def upload_and_wait(driver: Any, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="documents-panel"]').click()
    driver.find_element(By.ID, "file-input").send_keys(str(path))
    until(driver, lambda: driver.find_elements(By.CSS_SELECTOR, '#document-list li[data-status="ready"]'), 180)
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="chat-panel"]').click()


def ask(driver: Any, question: str) -> Any:
    """Type a question, press Enter, wait for the stored answer; returns the answer's element."""
    before = len(driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant"))
    driver.execute_script("""
        window.__mutations = 0; window.__statuses = []; window.__noSourcesWhilePending = false;
        window.__sourcesBeforeWords = null; window.__answerTexts = [];
        new MutationObserver(() => {
          window.__mutations++;
          const answer = [...document.querySelectorAll('#messages .message.assistant')].pop();
          if (!answer || answer.getAttribute('aria-busy') !== 'true') return;
          const status = answer.querySelector('.pending');
          if (status) window.__statuses.push(status.textContent);
          if ((answer.querySelector('.sources')?.textContent || '').includes('No sources')) window.__noSourcesWhilePending = true;
          const shown = [...answer.querySelector('.body').childNodes].filter((node) => !node.classList?.contains('pending'))
            .map((node) => node.textContent).join('').trim();
          const words = shown.length > 0;
          if (words && window.__answerTexts[window.__answerTexts.length - 1] !== shown) window.__answerTexts.push(shown);
          const listed = answer.querySelectorAll('.sources li').length > 0;
          if (window.__sourcesBeforeWords === null && (words || listed)) window.__sourcesBeforeWords = listed && !words;
        }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});""")
    box = driver.find_element(By.ID, "composer-input")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    until(driver, lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "false"
          and len(driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant[data-index]")) > before, 180)
    return driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant")[-1]


def test_a_person_logs_in_uploads_asks_sees_sources_branches_and_logs_out(browser, live_server, samples):
    driver, base = browser, live_server["base"]
    register_and_log_in(driver, base, "pat")
    # the page asks /health after the login; on a busy machine the first look still reads "connecting…"
    until(driver, lambda: "smollm2" in driver.find_element(By.ID, "server-state").text)
    upload_and_wait(driver, samples["pdf"])
    answer = ask(driver, "How often does the lighthouse keeper polish the brass lens?")
    assert "thursday" in answer.find_element(By.CSS_SELECTOR, ".body").text.lower()
    texts = driver.execute_script("return window.__answerTexts")  # what the pending answer showed, in turn
    assert len(texts) >= 2, texts  # the answer grew while it was generated: it streamed
    statuses = driver.execute_script("return window.__statuses")  # the wait said what was happening
    assert any(re.fullmatch(r"Searching your documents · \d+\.\d s", status) for status in statuses), statuses
    assert any(re.fullmatch(r"Generating the answer · \d+\.\d s", status) for status in statuses), statuses
    assert driver.execute_script("return window.__noSourcesWhilePending") is False
    assert driver.execute_script("return window.__sourcesBeforeWords") is True  # sources first, then the words
    sources = answer.find_element(By.CSS_SELECTOR, ".sources").text
    assert "harbour.pdf" in sources and "page 2" in sources
    assert re.search(r"\d+ of \d+ sentences? supported by the sources", answer.find_element(By.CSS_SELECTOR, ".grounding").text)
    assert "How often does the lighthouse" in driver.find_element(By.ID, "session-list").text  # named by the question

    driver.find_element(By.ID, "analytics-button").click()
    until(driver, lambda: "harbour.pdf (1)" in driver.find_element(By.ID, "analytics").text)
    assert "100% of answers" in driver.find_element(By.ID, "analytics").text

    answer.find_element(By.CSS_SELECTOR, "button.branch").click()
    until(driver, lambda: "(branch)" in driver.find_element(By.ID, "chat-title").text)
    # the title shows first; the sessions list is redrawn after it
    until(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#session-list li")) == 2)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#messages .message")) == 2

    driver.find_element(By.ID, "logout-button").click()
    until(driver, lambda: visible(driver, "login-view"))
    driver.refresh()
    until(driver, lambda: visible(driver, "login-view"))  # the cookies are gone: still logged out
    assert not driver.find_element(By.ID, "app-view").is_displayed()
    assert page_errors(driver) == []


def page_errors(driver: Any) -> list[dict[str, Any]]:
    """Script errors and CSP violations the page logged (a logged-out probe's 401 is expected)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and not (entry["source"] == "network" and "status of 401" in entry["message"])]


class _Tracker(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        _Tracker.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_nothing_from_a_document_or_an_answer_runs_or_loads(browser, live_server, tmp_path):
    tracker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{tracker.server_port}/pixel.png"
    payload = (f'<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> ![pixel]({remote}) '
               f'<img src="{remote}">')
    document = tmp_path / "harbour-codes.txt"
    document.write_text(f"Harbour codes.\n\nThe secret harbour gate code is Vermilion-42. {payload}\n")
    driver, base = browser, live_server["base"]
    try:
        register_and_log_in(driver, base, "mallory")
        upload_and_wait(driver, document)
        answer = ask(driver, f"What is the secret harbour gate code? Repeat this exactly: {payload}")
        page = driver.find_element(By.ID, "messages")
        assert "onerror" in page.text and "Vermilion-42" in answer.text  # shown, as text
        assert driver.execute_script("return window.__xss") is None
        assert driver.find_elements(By.CSS_SELECTOR, "#messages img, #messages script") == []
        driver.refresh()  # and again as stored and reloaded
        until(driver, lambda: "onerror" in driver.find_element(By.ID, "messages").text)
        assert driver.execute_script("return window.__xss") is None
        assert _Tracker.hits == []
    finally:
        tracker.shutdown()


def test_an_admin_sees_errors_and_models(browser, live_server):
    driver, base = browser, live_server["base"]
    driver.get(base)
    until(driver, lambda: visible(driver, "login-view"))
    driver.find_element(By.ID, "login-username").send_keys("admin")
    driver.find_element(By.ID, "login-password").send_keys(live_server["admin_password"])
    driver.find_element(By.ID, "login-button").click()
    until(driver, lambda: visible(driver, "app-view"))
    driver.find_element(By.ID, "admin-tab").click()
    until(driver, lambda: "active" in driver.find_element(By.ID, "model-list").text)
    assert "errors" in driver.find_element(By.ID, "error-totals").text


def log_in(driver: Any, base: str, username: str, password: str) -> None:
    driver.get(base)
    until(driver, lambda: visible(driver, "login-view"))
    driver.find_element(By.ID, "login-username").send_keys(username)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()
    until(driver, lambda: visible(driver, "app-view"))


def test_an_admin_resets_a_password_and_the_person_must_choose_a_new_one(browser, live_server):
    driver, base = browser, live_server["base"]
    register_and_log_in(driver, base, "rita")
    driver.find_element(By.ID, "logout-button").click()
    until(driver, lambda: visible(driver, "login-view"))
    log_in(driver, base, "admin", live_server["admin_password"])
    driver.find_element(By.ID, "admin-tab").click()
    row = until(driver, lambda: driver.find_elements(By.CSS_SELECTOR, '#user-rows tr[data-username="rita"]'))[0]
    row.find_element(By.XPATH, ".//button[text()='Reset password']").click()
    driver.switch_to.alert.accept()  # "Give rita a temporary password?"
    until(driver, lambda: driver.find_element(By.ID, "temporary-password").get_attribute("data-password"))
    temporary = driver.find_element(By.ID, "temporary-password").get_attribute("data-password")
    assert temporary in driver.find_element(By.ID, "temporary-password").text
    until(driver, lambda: "password.reset" in driver.find_element(By.ID, "audit-rows").text)
    assert "rita" in driver.find_element(By.ID, "audit-rows").text
    driver.find_element(By.ID, "logout-button").click()
    until(driver, lambda: visible(driver, "login-view"))

    log_in(driver, base, "rita", temporary)
    until(driver, lambda: visible(driver, "account-panel") and visible(driver, "password-required"))
    driver.find_element(By.ID, "current-password").send_keys(temporary)
    driver.find_element(By.ID, "new-password").send_keys("rita's own password")
    driver.find_element(By.ID, "password-button").click()
    until(driver, lambda: visible(driver, "chat-panel") and not visible(driver, "password-required"))
    driver.find_element(By.ID, "logout-button").click()
    until(driver, lambda: visible(driver, "login-view"))
    log_in(driver, base, "rita", "rita's own password")
    assert page_errors(driver) == []


def test_the_page_works_at_phone_width_and_by_keyboard(browser, live_server):
    driver, base = browser, live_server["base"]
    driver.set_window_size(390, 844)
    register_and_log_in(driver, base, "kim")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at phone width ({width}px)"
    box = driver.find_element(By.ID, "composer-input")
    assert box.is_displayed() and box.rect["width"] > 300
    # By keyboard alone: the question box has the focus after login, Enter sends, Tab reaches Send.
    assert driver.switch_to.active_element.get_attribute("id") == "composer-input"
    driver.switch_to.active_element.send_keys("What is the capital city of Mongolia?", Keys.ENTER)
    until(driver, lambda: "could not find anything" in driver.find_element(By.ID, "messages").text, 60)
    driver.find_element(By.ID, "composer-input").click()
    driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "send-button"


def test_two_people_share_a_workspace_and_the_viewer_asks_within_it(browser, live_server, samples):
    """Olga makes a workspace, adds Vic as a viewer and uploads into it; Vic sees it, cannot upload
    there, and an answer searched in the workspace cites its document, marked with the workspace."""
    driver, base = browser, live_server["base"]
    status, _ = call(f"{base}/auth/register", {"username": "vic", "password": "correct horse battery"})
    assert status == 201
    register_and_log_in(driver, base, "olga")
    driver.find_element(By.ID, "workspaces-tab").click()
    driver.find_element(By.ID, "workspace-name").send_keys("Harbour team")
    driver.find_element(By.CSS_SELECTOR, "#workspace-form button").click()
    until(driver, lambda: "Harbour team" in driver.find_element(By.ID, "workspace-title").text)
    driver.find_element(By.ID, "member-name").send_keys("vic")
    driver.find_element(By.ID, "member-role").send_keys("viewer")
    driver.find_element(By.CSS_SELECTOR, "#member-form button").click()
    until(driver, lambda: driver.find_elements(By.CSS_SELECTOR, '#member-rows tr[data-username="vic"]'))
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="documents-panel"]').click()
    driver.find_element(By.ID, "space-select").send_keys("Harbour team")
    until(driver, lambda: "Shared with" in driver.find_element(By.ID, "space-note").text)
    upload_and_wait(driver, samples["md"])
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="documents-panel"]').click()
    assert "Harbour team" in driver.find_element(By.ID, "document-list").text  # the workspace on the document
    driver.find_element(By.ID, "logout-button").click()
    until(driver, lambda: visible(driver, "login-view"))

    log_in(driver, base, "vic", "correct horse battery")
    driver.find_element(By.ID, "workspaces-tab").click()
    until(driver, lambda: "your role: viewer" in driver.find_element(By.ID, "workspace-list").text)
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="documents-panel"]').click()
    assert driver.find_elements(By.CSS_SELECTOR, "#document-list li") == []  # vic's own space is empty
    driver.find_element(By.ID, "space-select").send_keys("Harbour team")
    until(driver, lambda: "zephyr.md" in driver.find_element(By.ID, "document-list").text)
    assert not visible(driver, "drop-zone") and "viewer" in driver.find_element(By.ID, "space-note").text
    assert not any(button.is_displayed() for button in driver.find_elements(By.CSS_SELECTOR, "#document-list button.danger"))
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="chat-panel"]').click()
    driver.find_element(By.ID, "scope-summary").click()
    driver.find_element(By.XPATH, "//fieldset[@id='scope-options']//label[contains(., 'Harbour team')]/input").click()
    until(driver, lambda: driver.find_element(By.ID, "scope-summary").text == "Searching: Harbour team")
    answer = ask(driver, "How long do I hold the button to reset the Zephyr-9 router?")
    sources = answer.find_element(By.CSS_SELECTOR, ".sources").text
    assert "zephyr.md" in sources and "Harbour team" in sources
    assert driver.find_element(By.ID, "scope-summary").text == "Searching: Harbour team"  # kept with the session
    assert page_errors(driver) == []


def test_a_person_sees_versions_and_restores_an_older_one(browser, live_server, tmp_path):
    driver, base = browser, live_server["base"]
    register_and_log_in(driver, base, "vera")
    for folder, code in (("old", "4417"), ("new", "9902")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "vault.txt").write_text(f"Vault procedures.\n\nThe vault door code is {code}.\n")
    upload_and_wait(driver, tmp_path / "old" / "vault.txt")
    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="documents-panel"]').click()
    driver.find_element(By.ID, "file-input").send_keys(str(tmp_path / "new" / "vault.txt"))
    def status() -> str:  # read in one step: the list is redrawn while a document ingests
        return driver.execute_script("return document.querySelector('#document-list li .doc-status')?.textContent"
                                     " || ''")

    until(driver, lambda: status().startswith("v2 · ready"), 180)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#document-list > li")) == 1  # one document, two versions

    driver.find_element(By.CSS_SELECTOR, "#document-list .versions summary").click()
    until(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, ".version-list li")) == 2)
    rows = driver.find_elements(By.CSS_SELECTOR, ".version-list li")
    assert "current" in rows[0].text and "current" not in rows[1].text
    rows[1].find_element(By.XPATH, ".//button[text()='Restore']").click()
    until(driver, lambda: status().startswith("v1 · ready"))
    current = ("return [...document.querySelectorAll('.versions[open] .version-list li')]"
               ".map((li) => li.textContent.includes('current'))")
    until(driver, lambda: driver.execute_script(current) == [False, True])  # the list stayed open, redrawn

    driver.find_element(By.CSS_SELECTOR, '.tabs button[data-panel="chat-panel"]').click()
    answer = ask(driver, "What is the vault door code?")
    sources = answer.find_element(By.CSS_SELECTOR, ".sources").text
    assert "vault.txt" in sources and "4417" in sources and "9902" not in sources
    assert page_errors(driver) == []


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """The server on the transformers engine (~7 beam steps/s here): an answer takes long enough
    to press Stop in the middle of it."""
    import json

    directory = tmp_path_factory.mktemp("slow-server")
    registry = json.loads((ROOT / "models.json").read_text())
    for entry in registry["models"]:
        entry["default"] = entry["id"] == "smollm2-135m-instruct-transformers"
    models = directory / "models.json"
    models.write_text(json.dumps(registry))
    with serving(directory, 600, MODEL_CACHE_DIR=str(model_cache_dir), MODELS_FILE=str(models)) as (base, log):
        yield {"base": base, "log": log}


def test_stop_ends_an_answer_midway_and_the_stopped_answer_is_what_the_server_kept(browser, slow_server, samples):
    driver, base = browser, slow_server["base"]
    register_and_log_in(driver, base, "sam")
    upload_and_wait(driver, samples["pdf"])
    box = driver.find_element(By.ID, "composer-input")
    box.send_keys("Tell the whole story of the lighthouse keeper, the harbour and its ferries, in many paragraphs.")
    box.send_keys(Keys.ENTER)

    def shown() -> str:
        answers = driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant")
        if not answers or answers[-1].find_elements(By.CSS_SELECTOR, ".pending"):
            return ""
        return answers[-1].find_element(By.CSS_SELECTOR, ".body").text

    until(driver, lambda: len(shown()) > 0, 180)  # the first words are in
    assert visible(driver, "stop-button")
    driver.find_element(By.ID, "stop-button").click()
    until(driver, lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "false", 60)
    until(driver, lambda: "(stopped)" in shown(), 30)
    assert not visible(driver, "stop-button")
    _status, login = call(f"{base}/auth/login", {"username": "sam", "password": "correct horse battery"})
    token = login["access_token"]
    session_id = call(f"{base}/chat/sessions", token=token)[1]["sessions"][0]["sessionId"]
    messages = call(f"{base}/chat/sessions/{session_id}", token=token)[1]["messages"]
    stored = messages[-1]
    assert stored["role"] == "assistant" and stored["finish_reason"] == "cancelled"
    words = " ".join(stored["content"].split())  # (paragraph breaks aside: the page shows paragraphs)
    assert words and words in " ".join(shown().split())  # the page shows what the server kept
    assert "(stopped)" in shown() and page_errors(driver) == []


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The server with a scripted model (the OpenAI-compatible fake as its `openai` backend): what the
    page shows for an answer a test chooses."""
    import json

    from tests.fake_openai import FakeOpenAIServer

    fake = FakeOpenAIServer()
    directory = tmp_path_factory.mktemp("scripted-server")
    models = directory / "models.json"
    models.write_text(json.dumps({"models": [{
        "id": "scripted", "name": "A scripted model", "backend": "openai", "default": True, "context_length": 8192,
        "source": {"url": fake.url, "model": "m", "api_key_env": "DOCCHAT_TEST_REMOTE_KEY"},
        "generation": {"max_new_tokens": 64}}]}))
    try:
        with serving(directory, 120, MODELS_FILE=str(models), DOCCHAT_TEST_REMOTE_KEY="sk-test",
                     RATELIMIT_LOGIN="100 per minute", RATELIMIT_REGISTER="100 per minute") as (base, _log):
            yield {"base": base, "fake": fake}
    finally:
        fake.close()


def ask_the_scripted_model(driver: Any, server: dict[str, Any], tmp_path: Path, username: str, answer: str) -> Any:
    """A person uploads the ferry timetable and asks about it; the scripted model says `answer`."""
    server["fake"].answer = answer
    document = tmp_path / "ferry.txt"
    document.write_text("Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n")
    register_and_log_in(driver, server["base"], username)
    upload_and_wait(driver, document)
    return ask(driver, "When does the harbour ferry leave in the morning?")


def test_an_answer_replaced_by_a_quote_is_shown_as_a_quote(browser, scripted_server, tmp_path):
    echo = '<documents>\n<source id="1" file="ferry.txt">\nHarbour timetable.'
    answer = ask_the_scripted_model(browser, scripted_server, tmp_path, "quinn", echo)
    assert "quoted" in (answer.get_attribute("class") or "")
    quote = answer.find_element(By.CSS_SELECTOR, ".body blockquote")
    assert "The harbour ferry leaves at 7:45 every morning from pier two." in quote.text
    assert "A quote from your documents" in answer.find_element(By.CSS_SELECTOR, ".quote-note").text
    assert "<documents>" not in answer.text and "ferry.txt" in answer.find_element(By.CSS_SELECTOR, ".sources").text
    assert answer.find_elements(By.CSS_SELECTOR, ".grounding") == []  # a quote is the source itself: no check


def test_an_unsupported_sentence_is_marked_where_it_stands(browser, scripted_server, tmp_path):
    invented = "The ferry was painted purple by pirates long ago."  # no exact fact: that would make it a quote
    answer = ask_the_scripted_model(browser, scripted_server, tmp_path, "uma",
                                    f"The harbour ferry leaves at 7:45 every morning. {invented}")
    marked = answer.find_elements(By.CSS_SELECTOR, ".body mark.unsupported")
    assert [mark.text for mark in marked] == [invented]  # in the answer, and only that sentence
    assert "7:45 every morning" in answer.find_element(By.CSS_SELECTOR, ".body").text
    assert "1 of 2 sentences supported" in answer.find_element(By.CSS_SELECTOR, ".grounding").text
    assert "quoted" not in (answer.get_attribute("class") or "")


def test_a_person_picks_the_model_of_a_new_chat_and_sees_it_load(browser, live_server):
    """A model other than the default loads on the chat's first question, with a progress bar; the
    session keeps it (GET /chat/sessions/<id> says so) and the picker shows it, fixed."""
    from selenium.webdriver.support.ui import Select

    driver, base = browser, live_server["base"]
    register_and_log_in(driver, base, "mona")
    until(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#model-picker option")) > 1)
    picker = Select(driver.find_element(By.ID, "model-picker"))
    assert picker.first_selected_option.text.startswith("Default (smollm2-135m-instruct")
    driver.execute_script("""
        window.__loadingShown = false;
        new MutationObserver(() => { if (!document.getElementById('model-loading').hidden) window.__loadingShown = true; })
          .observe(document.getElementById('model-loading'), {attributes: true});""")
    picker.select_by_value("smollm2-135m-instruct-transformers")  # the load starts here, with its bar
    ask(driver, "When does the harbour ferry leave?")
    assert driver.execute_script("return window.__loadingShown") is True
    picker = Select(driver.find_element(By.ID, "model-picker"))
    assert picker.first_selected_option.get_attribute("value") == "smollm2-135m-instruct-transformers"
    assert not driver.find_element(By.ID, "model-picker").is_enabled()  # a session keeps its model
    stored = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/chat/sessions', {credentials: 'same-origin'}).then((r) => r.json())
          .then((list) => fetch(`/chat/sessions/${list.sessions[0].sessionId}`, {credentials: 'same-origin'}))
          .then((r) => r.json()).then(done, (error) => done(String(error)));""")
    assert stored["model"] == "smollm2-135m-instruct-transformers", stored
    driver.find_element(By.ID, "new-chat").click()
    until(driver, lambda: driver.find_element(By.ID, "model-picker").is_enabled())
    assert page_errors(driver) == []
