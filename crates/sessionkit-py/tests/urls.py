"""URLs of the test project: the real admin, plus small sync and async views that use the session."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import path

from sessionkit.django import users


def counter(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return JsonResponse({"n": request.session["n"], "key": request.session.session_key})


async def acounter(request):
    n = await request.session.aget("n", 0) + 1
    await request.session.aset("n", n)
    return JsonResponse({"n": n})


async def acycle(request):
    await request.session.acycle_key()
    return JsonResponse({"n": await request.session.aget("n")})


async def awhoami(request):
    """The user through Django 5's async ``request.auser()`` and a session value a WebSocket consumer wrote."""
    user = await request.auser()
    return JsonResponse(
        {"user": user.get_username() if user.is_authenticated else None, "ws": await request.session.aget("ws")}
    )


async def aloggedout(request):
    """Writes to the session after another request (a logout in another tab) deleted it."""
    await request.session.aset("x", 1)
    await type(request.session)(request.session.session_key).adelete()
    return JsonResponse({"x": 1})


def peek(request):
    """Reads the session only (the lifetime tests' read-only request)."""
    return JsonResponse({"n": request.session.get("n"), "key": request.session.session_key})


def my_sessions(request):
    users.record_client(request)
    return JsonResponse({"sessions": [s.id for s in users.user_sessions(request.user, request) if not s.current]})


def logout_others(request):
    return JsonResponse({"deleted": users.logout_others(request)})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("counter/", counter),
    path("acounter/", acounter),
    path("acycle/", acycle),
    path("peek/", peek),
    path("awhoami/", awhoami),
    path("aloggedout/", aloggedout),
    path("my-sessions/", my_sessions),
    path("logout-others/", logout_others),
]
