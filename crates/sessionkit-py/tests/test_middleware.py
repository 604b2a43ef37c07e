"""sessionkit.django.middleware.SessionMiddleware: Django's SessionMiddleware tests (tests/sessions_tests/tests.py,
SessionMiddlewareTests) re-run against it in sync mode (RequestFactory) and async mode (AsyncRequestFactory, an async
get_response), on sessionkit's engines and Django's db engine; the Set-Cookie and Vary bytes compared with Django's
own middleware; the async path's thread hops; an admin login and async views through an ASGI stack (AsyncClient)."""

import re
import threading
from http import cookies as http_cookies
from unittest import mock

import django
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpResponse
from django.test import AsyncClient, AsyncRequestFactory, RequestFactory

from sessionkit.django.middleware import SessionMiddleware, has_native_async_save

ASYNC_API = django.VERSION >= (5, 0)
ENGINES = ["sessionkit.django.redis", "sessionkit.django.cached_db", "django.contrib.sessions.backends.db"]
MODES = ["sync", "async"]
OURS = "sessionkit.django.middleware.SessionMiddleware"


@pytest.fixture(params=ENGINES)
def engine(request, settings, db):
    settings.SESSION_ENGINE = request.param
    return request.param


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def run(mode, touch, *, cookie=None, status=200, middleware_class=SessionMiddleware, store_class=None):
    """One request through the middleware: ``touch(session)`` is the view's work on the session (in async mode run
    as the async session API would: ``atouch`` when the view has one, else through sync_to_async, as an async view
    on Django 4.2 must). Returns (request, response)."""
    factory = RequestFactory() if mode == "sync" else AsyncRequestFactory()
    request = factory.get("/")
    if cookie is not None:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = cookie

    def view(request):
        touch(request)
        return HttpResponse("Session test", status=status)

    async def aview(request):
        atouch = getattr(touch, "atouch", None)
        if atouch is not None and ASYNC_API:
            await atouch(request)
        else:
            await sync_to_async(touch)(request)
        return HttpResponse("Session test", status=status)

    middleware = middleware_class(view if mode == "sync" else aview)
    if store_class is not None:
        middleware.SessionStore = store_class
    if mode == "sync":
        return request, middleware(request)
    return request, async_to_sync(middleware)(request)


def with_async(atouch):
    """Decorates a sync touch with its async form."""

    def wrap(touch):
        touch.atouch = atouch
        return touch

    return wrap


async def aset_hello(request):
    await request.session.aset("hello", "world")


@with_async(aset_hello)
def set_hello(request):
    request.session["hello"] = "world"


async def aflush(request):
    await request.session.aflush()


@with_async(aflush)
def flush(request):
    request.session.flush()


def stored(engine_name, key):
    from importlib import import_module

    return import_module(engine_name).SessionStore(key).load()


# --- Django's SessionMiddlewareTests, in both modes, on every engine -----------------------------------------------


def test_the_middleware_is_a_drop_in_subclass():
    assert issubclass(SessionMiddleware, DjangoSessionMiddleware)  # admin.E410 and auth's checks look for it
    assert SessionMiddleware.sync_capable and SessionMiddleware.async_capable


def test_secure_session_cookie(engine, mode, settings):
    settings.SESSION_COOKIE_SECURE = True
    _, response = run(mode, set_hello)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["secure"] is True


def test_httponly_session_cookie(engine, mode, settings):
    settings.SESSION_COOKIE_HTTPONLY = True
    _, response = run(mode, set_hello)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["httponly"] is True
    assert http_cookies.Morsel._reserved["httponly"] in str(response.cookies[settings.SESSION_COOKIE_NAME])


def test_samesite_session_cookie(engine, mode, settings):
    settings.SESSION_COOKIE_SAMESITE = "Strict"
    _, response = run(mode, set_hello)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["samesite"] == "Strict"


def test_no_httponly_session_cookie(engine, mode, settings):
    settings.SESSION_COOKIE_HTTPONLY = False
    _, response = run(mode, set_hello)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["httponly"] == ""
    assert http_cookies.Morsel._reserved["httponly"] not in str(response.cookies[settings.SESSION_COOKIE_NAME])


@pytest.mark.parametrize("status", [500, 503])
def test_session_not_saved_on_5xx(engine, mode, status):
    request, response = run(mode, set_hello, status=status)
    assert response.cookies == {}
    # Nothing was written: the session has no key, and a store lookup finds nothing either.
    assert request.session.session_key is None
    assert stored(engine, request.session._session_key) == {}


def test_session_update_error_is_session_interrupted(engine, mode):
    """A session deleted while the request ran is not re-created: SessionInterrupted (a 400 in a real stack)."""
    from importlib import import_module

    store_class = import_module(engine).SessionStore
    existing = store_class()
    existing["x"] = 1
    existing.save()
    key = existing.session_key

    async def adelete_and_set(request):
        await request.session.aset("x", 2)
        await store_class(key).adelete()

    @with_async(adelete_and_set)
    def delete_and_set(request):
        request.session["x"] = 2
        store_class(key).delete()

    msg = (
        "The request's session was deleted before the request completed. The user may have logged out in a "
        "concurrent request, for example."
    )
    with pytest.raises(SessionInterrupted, match=re.escape(msg)):
        run(mode, delete_and_set, cookie=key)
    assert not store_class().exists(key)


def test_session_delete_on_end(engine, mode, settings):
    _, response = run(mode, flush, cookie="abc")
    assert str(response.cookies[settings.SESSION_COOKIE_NAME]) == (
        f'Set-Cookie: {settings.SESSION_COOKIE_NAME}=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; '
        f"Max-Age=0; Path=/; SameSite={settings.SESSION_COOKIE_SAMESITE}"
    )
    assert response.headers["Vary"] == "Cookie"


def test_session_delete_on_end_with_custom_domain_and_path(engine, mode, settings):
    settings.SESSION_COOKIE_DOMAIN = ".example.local"
    settings.SESSION_COOKIE_PATH = "/example/"
    _, response = run(mode, flush, cookie="abc")
    assert str(response.cookies[settings.SESSION_COOKIE_NAME]) == (
        f'Set-Cookie: {settings.SESSION_COOKIE_NAME}=""; Domain=.example.local; expires=Thu, 01 Jan 1970 00:00:00 GMT; '
        f"Max-Age=0; Path=/example/; SameSite={settings.SESSION_COOKIE_SAMESITE}"
    )


def test_flush_empty_without_session_cookie_doesnt_set_cookie(engine, mode):
    _, response = run(mode, flush)
    assert response.cookies == {}
    assert response.headers["Vary"] == "Cookie"


def test_flush_deletes_the_stored_session(engine, mode):
    from importlib import import_module

    store_class = import_module(engine).SessionStore
    existing = store_class()
    existing["user"] = "alice"
    existing.save()
    key = existing.session_key
    _, response = run(mode, flush, cookie=key)
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert not store_class().exists(key)


def test_empty_session_saved(engine, mode):
    """A session emptied of data but still with a key is still saved, and its cookie set again."""
    request, response = run(mode, set_hello)
    key = request.session.session_key
    assert tuple(request.session.items()) == (("hello", "world"),)
    assert f"Set-Cookie: sessionid={key}" in str(response.cookies)
    assert response.headers["Vary"] == "Cookie"
    assert stored(engine, key) == {"hello": "world"}

    async def aempty(request):
        await request.session.apop("hello")

    @with_async(aempty)
    def empty(request):
        del request.session["hello"]

    request, response = run(mode, empty, cookie=key)
    assert request.session.session_key == key and dict(request.session.items()) == {}
    assert stored(engine, key) == {}
    assert f"Set-Cookie: sessionid={key}" in str(response.cookies)
    assert response.headers["Vary"] == "Cookie"


# --- More of Django's behaviour ------------------------------------------------------------------------------------


def test_untouched_session_sets_nothing_and_does_not_load(engine, mode):
    with mock.patch.object(SessionBase, "_get_session", side_effect=AssertionError("loaded")):
        request, response = run(mode, lambda request: None, cookie="a" * 32)
    assert response.cookies == {} and not response.has_header("Vary")
    assert not request.session.accessed


def test_read_only_access_varies_on_cookie_without_saving(engine, mode):
    request, response = run(mode, set_hello)
    key = request.session.session_key

    async def aread(request):
        assert await request.session.aget("hello") == "world"

    @with_async(aread)
    def read(request):
        assert request.session["hello"] == "world"

    with mock.patch.object(type(request.session), "save", side_effect=AssertionError("saved")):
        _, response = run(mode, read, cookie=key)
    assert response.cookies == {}
    assert response.headers["Vary"] == "Cookie"


def test_save_every_request_saves_and_sets_the_cookie_of_an_unread_session(engine, mode, settings):
    request, _ = run(mode, set_hello)
    key = request.session.session_key
    settings.SESSION_SAVE_EVERY_REQUEST = True
    request, response = run(mode, lambda request: None, cookie=key)
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == key
    assert int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) == settings.SESSION_COOKIE_AGE
    assert response.headers["Vary"] == "Cookie"
    assert request.session.session_key == key and stored(engine, key) == {"hello": "world"}


def test_expire_at_browser_close_gives_a_session_cookie(engine, mode, settings):
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    _, response = run(mode, set_hello)
    morsel = response.cookies[settings.SESSION_COOKIE_NAME]
    assert morsel["max-age"] == "" and morsel["expires"] == ""


def test_set_expiry_sets_max_age(engine, mode):
    async def aset_expiry(request):
        await request.session.aset("a", 1)
        await request.session.aset_expiry(300)

    @with_async(aset_expiry)
    def set_expiry(request):
        request.session["a"] = 1
        request.session.set_expiry(300)

    _, response = run(mode, set_expiry)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 300


# --- Byte for byte the same as Django's middleware --------------------------------------------------------------

COOKIE_SETTINGS = [
    {},
    {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": False, "SESSION_COOKIE_SAMESITE": "None"},
    {"SESSION_COOKIE_DOMAIN": ".example.com", "SESSION_COOKIE_PATH": "/app/", "SESSION_COOKIE_NAME": "sk"},
    {"SESSION_COOKIE_SAMESITE": False, "SESSION_COOKIE_AGE": 3600},
    {"SESSION_EXPIRE_AT_BROWSER_CLOSE": True},
]


@pytest.mark.parametrize("overrides", COOKIE_SETTINGS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("scenario", ["set", "flush", "read"])
def test_headers_are_djangos_to_the_byte(engine, mode, settings, overrides, scenario):
    for name, value in overrides.items():
        setattr(settings, name, value)
    seed, _ = run("sync", set_hello, middleware_class=DjangoSessionMiddleware)
    key = seed.session.session_key

    async def aread(request):
        await request.session.aget("hello")

    @with_async(aread)
    def read(request):
        request.session.get("hello")

    touch = {"set": set_hello, "flush": flush, "read": read}[scenario]
    cookie = None if scenario == "set" else key

    def headers(middleware_class, mode):
        with mock.patch("time.time", return_value=1_900_000_000.0):
            request, response = run(mode, touch, cookie=cookie, middleware_class=middleware_class)
        text = "\n".join(c.output() for c in response.cookies.values())
        if request.session.session_key:
            text = text.replace(request.session.session_key, "<key>")
        return text, response.get("Vary")

    django_sync = headers(DjangoSessionMiddleware, "sync")
    assert headers(SessionMiddleware, mode) == django_sync
    if scenario != "read":
        assert django_sync[0]  # a Set-Cookie was compared


# --- The async path: no thread hop for native engines -----------------------------------------------------------


def test_native_async_save_detection():
    from django.contrib.sessions.backends import db, signed_cookies

    from sessionkit.django import cached_db, redis

    assert has_native_async_save(redis.SessionStore) is ASYNC_API
    assert has_native_async_save(cached_db.SessionStore) is ASYNC_API
    assert has_native_async_save(db.SessionStore) is ASYNC_API
    assert has_native_async_save(signed_cookies.SessionStore) is ASYNC_API

    class Wrapped(db.SessionStore):
        if ASYNC_API:
            asave = SessionBase.asave

    assert not has_native_async_save(Wrapped)
    assert not has_native_async_save(SessionBase)


@pytest.mark.skipif(not ASYNC_API, reason="Django 4.2 has no async session API")
def test_async_mode_on_sessionkit_runs_in_the_event_loop(settings, redis_client):
    """Load and save are awaited in the event loop's thread: the sync load/save are never called and no
    sync_to_async runs (Django's middleware runs two per request)."""
    settings.SESSION_ENGINE = "sessionkit.django.redis"
    from sessionkit.django.redis import SessionStore

    seen = []

    async def acount(request):
        seen.append(threading.get_ident())
        await request.session.aset("n", await request.session.aget("n", 0) + 1)

    @with_async(acount)
    def count(request):
        raise AssertionError("async mode ran the sync view")

    with (
        mock.patch.object(SessionStore, "load", side_effect=AssertionError("sync load")),
        mock.patch.object(SessionStore, "save", side_effect=AssertionError("sync save")),
        mock.patch("asgiref.sync.SyncToAsync.__call__", side_effect=AssertionError("sync_to_async")),
    ):
        request, response = run("async", count)
        key = request.session.session_key
        request, response = run("async", count, cookie=key)
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == key
    assert SessionStore(key).load() == {"n": 2}


def test_async_mode_falls_back_to_one_sync_to_async_save(settings, db, mode):
    """An engine whose asave is Django's wrapper (and every engine on Django 4.2) is saved as Django does: sync
    save() through sync_to_async, once, not in the event loop's thread."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    from django.contrib.sessions.backends import db as db_engine

    class Wrapped(db_engine.SessionStore):
        if ASYNC_API:
            asave = SessionBase.asave

    saves = []

    def save(self, must_create=False):
        if not must_create:  # a new session's save() calls save(must_create=True) through create()
            saves.append(threading.get_ident())
        return db_engine.SessionStore.save(self, must_create)

    with mock.patch.object(Wrapped, "save", save):
        request, response = run(mode, set_hello, store_class=Wrapped)
    assert saves == [threading.get_ident()]  # sync mode: here; async mode: sync_to_async's thread-sensitive call
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == request.session.session_key
    assert Wrapped(request.session.session_key).load() == {"hello": "world"}  # (its signing salt is its class name)


# --- A whole ASGI stack: admin login, async views, auser() -----------------------------------------------------


@pytest.fixture
def our_middleware(settings):
    settings.MIDDLEWARE = [OURS if m.endswith("sessions.middleware.SessionMiddleware") else m for m in settings.MIDDLEWARE]
    assert OURS in settings.MIDDLEWARE


@pytest.mark.parametrize("engine_name", ["sessionkit.django.redis", "sessionkit.django.cached_db"])
def test_admin_login_through_an_async_stack(our_middleware, settings, db, engine_name):
    """The real admin login page through AsyncClient (Django's ASGI request path, async middleware chain) with CSRF
    checks on: the session the login writes is in the store, the admin then shows the index, an async view sees
    the user through request.auser(), and the logout deletes the session."""
    from django.contrib.auth.models import User

    settings.SESSION_ENGINE = engine_name
    User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")

    async def scenario():
        client = AsyncClient(enforce_csrf_checks=True)
        page = await client.get("/admin/login/?next=/admin/")
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        response = await client.post(
            "/admin/login/?next=/admin/",
            {"username": "admin", "password": "s3cret-pass", "csrfmiddlewaretoken": token, "next": "/admin/"},
        )
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert response.cookies["sessionid"]["httponly"] and "Cookie" in response["Vary"]
        key = client.cookies["sessionid"].value
        index = await client.get("/admin/")
        assert index.status_code == 200 and b"Site administration" in index.content
        whoami = (await client.get("/awhoami/")).json() if ASYNC_API else None
        return client, key, whoami

    client, key, whoami = async_to_sync(scenario)()
    user = User.objects.get(username="admin")
    assert stored(engine_name, key)["_auth_user_id"] == str(user.pk)
    if ASYNC_API:
        assert whoami == {"user": "admin", "ws": None}

    async def logout():
        page = await client.get("/admin/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        return await client.post("/admin/logout/", {"csrfmiddlewaretoken": token})

    assert async_to_sync(logout)().status_code == 200
    assert stored(engine_name, key) == {}


@pytest.mark.skipif(not ASYNC_API, reason="Django 4.2 has no async session API")
def test_session_deleted_meanwhile_is_a_400_through_the_asgi_stack(our_middleware, db):
    """SessionInterrupted from the async save becomes Django's 400, and the deleted session is not re-created."""

    async def scenario():
        client = AsyncClient()
        assert (await client.get("/acounter/")).status_code == 200
        key = client.cookies["sessionid"].value
        return key, await client.get("/aloggedout/")

    key, response = async_to_sync(scenario)()
    assert response.status_code == 400
    assert stored("sessionkit.django.redis", key) == {}


def test_sync_views_through_the_sync_client(our_middleware, db):
    from django.test import Client

    client = Client()
    assert client.get("/counter/").json()["n"] == 1
    response = client.get("/counter/")
    assert response.json()["n"] == 2 and response["Vary"] == "Cookie"
    assert stored("sessionkit.django.redis", client.cookies["sessionid"].value) == {"n": 2}
