"""The browser's login: HttpOnly cookies, double-submit CSRF on every change, refresh and logout."""
from __future__ import annotations

from tests.conftest import assert_error


def _browser_login(client, users) -> str:
    account = users.register()
    response = client.post("/auth/session", json={"username": account.username, "password": account.password})
    assert response.status_code == 200 and response.get_json()["user"]["username"] == account.username
    assert "access_token" not in response.get_data(as_text=True)  # nothing a page script could read
    cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies["docchat_access"] and "SameSite=Strict" in cookies["docchat_access"]
    assert "HttpOnly" in cookies["docchat_refresh"] and "Path=/auth/session/refresh" in cookies["docchat_refresh"]
    assert "HttpOnly" not in cookies["docchat_csrf"]  # the page reads it to prove it is same-origin
    return account.username


def test_a_browser_login_works_by_cookie_and_changes_need_the_csrf_header(client, users):
    _browser_login(client, users)
    assert client.get("/auth/me").status_code == 200
    assert_error(client.post("/chat/start", json={}), 403, "CSRF_FAILED")
    assert_error(client.post("/chat/start", json={}, headers={"X-CSRF-TOKEN": "forged"}), 403, "CSRF_FAILED")
    csrf = client.get_cookie("docchat_csrf").value
    assert client.post("/chat/start", json={}, headers={"X-CSRF-TOKEN": csrf}).status_code == 201


def test_refresh_and_logout_by_cookie(client, users):
    _browser_login(client, users)
    old_access = client.get_cookie("docchat_access").value
    assert_error(client.post("/auth/session/refresh"), 403, "CSRF_FAILED")
    refresh_csrf = client.get_cookie("docchat_refresh_csrf").value
    assert client.post("/auth/session/refresh", headers={"X-CSRF-TOKEN": refresh_csrf}).status_code == 200
    csrf = client.get_cookie("docchat_csrf").value
    assert client.delete("/auth/session", headers={"X-CSRF-TOKEN": csrf}).status_code == 200
    assert client.get_cookie("docchat_access") is None  # cleared
    client.set_cookie("docchat_access", old_access)  # a stolen copy of the cookie stops working too
    assert_error(client.get("/auth/me"), 401, "TOKEN_REVOKED")


def test_bearer_clients_need_no_csrf_and_secure_cookies_in_production(make_app, client, users):
    account = users.register()
    assert client.post("/chat/start", json={}, headers=account.headers).status_code == 201
    production = make_app(app_env="production", jwt_secret_key="x7Gq2pLm9Rt4Vz8Kw1Yb6Nc3Hd5Fj0Se")
    browser = production.test_client()
    credentials = {"username": "secure-sam", "password": "correct horse battery"}
    assert browser.post("/auth/register", json=credentials).status_code == 201
    cookies = browser.post("/auth/session", json=credentials).headers.getlist("Set-Cookie")
    login_cookies = [cookie for cookie in cookies if cookie.startswith(("docchat_access=", "docchat_refresh="))]
    assert len(login_cookies) == 2
    assert all("Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie for cookie in login_cookies)
