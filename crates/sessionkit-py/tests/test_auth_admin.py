"""django.contrib.auth and the admin, unchanged, on sessionkit.django.redis: the session lives in Redis."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")


def stored_session(redis_client, key):
    from sessionkit.conf import get_store

    return redis_client.get(f"sessionkit:s:{key}"), get_store("redis").load(key)


def test_login_and_logout_through_the_test_client(admin_user, redis_client):
    client = Client()
    assert client.login(username="admin", password="s3cret-pass")
    key = client.cookies["sessionid"].value
    raw, data = stored_session(redis_client, key)
    assert raw is not None and data["_auth_user_id"] == str(admin_user.pk)
    assert client.get("/admin/").status_code == 200
    client.logout()
    assert stored_session(redis_client, key) == (None, None)


def test_login_through_the_real_admin_login_page_with_csrf(admin_user, redis_client):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/?next=/admin/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": "s3cret-pass", "csrfmiddlewaretoken": token, "next": "/admin/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    key = client.cookies["sessionid"].value
    raw, data = stored_session(redis_client, key)
    assert raw is not None and data["_auth_user_id"] == str(admin_user.pk)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 200

    # Logout through the admin (POST with CSRF): the session is deleted from Redis.
    token = client.cookies["csrftoken"].value
    assert client.post("/admin/logout/", {"csrfmiddlewaretoken": token}).status_code == 200
    assert stored_session(redis_client, key) == (None, None)
    assert client.get("/admin/").status_code == 302  # back to the login page


def test_wrong_password_creates_no_login(admin_user, redis_client):
    client = Client()
    response = client.post("/admin/login/", {"username": "admin", "password": "wrong"})
    assert response.status_code == 200
    assert not [k for k in redis_client.keys("sessionkit:s:*") if b"_auth_user_id" in (redis_client.get(k) or b"")]


def test_password_change_logs_out_other_sessions(admin_user):
    client = Client()
    client.login(username="admin", password="s3cret-pass")
    assert client.get("/admin/").status_code == 200
    admin_user.set_password("new-pass-123")
    admin_user.save()
    assert client.get("/admin/").status_code == 302, "the stored _auth_user_hash no longer matches"


def test_session_counter_view_and_cookie(db):
    client = Client()
    assert client.get("/counter/").json()["n"] == 1
    assert client.get("/counter/").json()["n"] == 2
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) == 1209600
