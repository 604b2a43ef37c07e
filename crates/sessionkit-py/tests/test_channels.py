"""sessionkit.django.channels: a WebSocket consumer behind SessionMiddlewareStack reads the session an HTTP login
wrote and writes to it, and the next HTTP request sees the write; HTTP consumers get Django's cookie handling."""

import importlib
import json
import re
import sys

import django
import pytest
from asgiref.sync import async_to_sync

pytest.importorskip("channels")
pytestmark = pytest.mark.skipif(
    django.VERSION < (5, 0), reason="consumers use the async session API (aget, aset, asave), added in Django 5.0"
)

from channels.generic.http import AsyncHttpConsumer  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.testing import HttpCommunicator, WebsocketCommunicator  # noqa: E402
from django.test import AsyncClient  # noqa: E402

from sessionkit.django.channels import AuthMiddlewareStack, SessionMiddlewareStack  # noqa: E402

OURS = "sessionkit.django.middleware.SessionMiddleware"


class SessionConsumer(AsyncWebsocketConsumer):
    """Tells the client the logged-in user id of its session; stores every message in the session under "ws"."""

    async def connect(self):
        await self.accept()
        session = self.scope["session"]
        await self.send(json.dumps({"user_id": await session.aget("_auth_user_id"), "key": session.session_key}))

    async def receive(self, text_data=None, bytes_data=None):
        session = self.scope["session"]
        await session.aset("ws", text_data)
        await session.asave()
        await self.send(json.dumps({"saved": text_data}))


class UserConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(json.dumps({"user": self.scope["user"].get_username()}))


class CounterConsumer(AsyncHttpConsumer):
    async def handle(self, body):
        session = self.scope["session"]
        n = await session.aget("n", 0) + 1
        await session.aset("n", n)
        status = 500 if self.scope["path"] == "/fail/" else 200
        await self.send_response(status, str(n).encode(), headers=[(b"Content-Type", b"text/plain"), (b"Vary", b"Accept")])


def login_over_http():
    """Logs in through the admin login page with AsyncClient (sessionkit's middleware in MIDDLEWARE); returns the
    session cookie and the user."""
    from django.contrib.auth.models import User

    user = User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")

    async def login():
        client = AsyncClient()
        page = await client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        response = await client.post(
            "/admin/login/", {"username": "admin", "password": "s3cret-pass", "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        return client

    return async_to_sync(login)(), user


@pytest.fixture
def our_middleware(settings):
    settings.MIDDLEWARE = [OURS if m.endswith("sessions.middleware.SessionMiddleware") else m for m in settings.MIDDLEWARE]


@pytest.mark.parametrize("engine_name", ["sessionkit.django.redis", "sessionkit.django.cached_db"])
def test_websocket_consumer_reads_the_http_login_and_writes_the_session(
    our_middleware, settings, transactional_db, engine_name
):
    settings.SESSION_ENGINE = engine_name
    client, user = login_over_http()
    key = client.cookies["sessionid"].value
    app = SessionMiddlewareStack(SessionConsumer.as_asgi())

    async def websocket():
        communicator = WebsocketCommunicator(app, "/ws/", headers=[(b"cookie", f"sessionid={key}".encode())])
        connected, _ = await communicator.connect()
        assert connected
        hello = json.loads(await communicator.receive_from())
        await communicator.send_to(text_data="from the socket")
        saved = json.loads(await communicator.receive_from())
        await communicator.disconnect()
        # The next HTTP request (Django, sessionkit's middleware, async view) sees the consumer's write.
        whoami = (await client.get("/awhoami/")).json()
        return hello, saved, whoami

    hello, saved, whoami = async_to_sync(websocket)()
    assert hello == {"user_id": str(user.pk), "key": key}
    assert saved == {"saved": "from the socket"}
    assert whoami == {"user": "admin", "ws": "from the socket"}


def test_websocket_without_a_cookie_has_an_empty_session(transactional_db):
    app = SessionMiddlewareStack(SessionConsumer.as_asgi())

    async def websocket():
        communicator = WebsocketCommunicator(app, "/ws/")
        assert (await communicator.connect())[0]
        hello = json.loads(await communicator.receive_from())
        await communicator.disconnect()
        return hello

    assert async_to_sync(websocket)() == {"user_id": None, "key": None}


def test_auth_middleware_stack_gives_the_user(our_middleware, transactional_db):
    client, _ = login_over_http()
    key = client.cookies["sessionid"].value
    app = AuthMiddlewareStack(UserConsumer.as_asgi())

    async def websocket():
        communicator = WebsocketCommunicator(app, "/ws/", headers=[(b"cookie", f"sessionid={key}".encode())])
        assert (await communicator.connect())[0]
        message = json.loads(await communicator.receive_from())
        await communicator.disconnect()
        return message

    assert async_to_sync(websocket)() == {"user": "admin"}


def test_http_consumer_saves_and_sets_djangos_cookie(settings, redis_client):
    from sessionkit.django.redis import SessionStore

    settings.SESSION_COOKIE_SECURE = True
    app = SessionMiddlewareStack(CounterConsumer.as_asgi())

    async def get(path, cookie=None):
        headers = [(b"cookie", f"sessionid={cookie}".encode())] if cookie else []
        return await HttpCommunicator(app, "GET", path, headers=headers).get_response()

    first = async_to_sync(get)("/")
    assert first["status"] == 200 and first["body"] == b"1"
    headers = first["headers"]
    set_cookie = [v.decode() for n, v in headers if n == b"Set-Cookie"]
    assert len(set_cookie) == 1
    key = re.match(r"sessionid=(\w+); expires=[^;]+; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax; Secure$",
                   set_cookie[0]).group(1)
    assert [v for n, v in headers if n.lower() == b"vary"] == [b"Accept, Cookie"]
    assert SessionStore(key).load() == {"n": 1}

    second = async_to_sync(get)("/", key)
    assert second["body"] == b"2" and SessionStore(key).load() == {"n": 2}
    # A 5xx response is not saved and gets no cookie, as with Django's middleware.
    failed = async_to_sync(get)("/fail/", key)
    assert failed["status"] == 500 and not [v for n, v in failed["headers"] if n == b"Set-Cookie"]
    assert SessionStore(key).load() == {"n": 2}


def test_import_without_channels_says_what_is_missing(monkeypatch):
    monkeypatch.delitem(sys.modules, "sessionkit.django.channels")
    for name in [m for m in sys.modules if m == "channels" or m.startswith("channels.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "channels", None)
    with pytest.raises(ImportError, match=r"needs Django Channels, which is not installed: `pip install channels`"):
        importlib.import_module("sessionkit.django.channels")
