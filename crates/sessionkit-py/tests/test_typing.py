"""sessionkit ships types (PEP 561): ``py.typed``, the stub of the extension ``sessionkit/_native.pyi`` and
annotations on the public Python API. Checked with mypy (requirements-test.txt; skipped where it is not installed,
as in the Django 4.2 venv)."""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy")

CLIENT = '''
import datetime
from typing import Any, Literal, assert_type

from django.core.checks import CheckMessage
from django.http import HttpRequest

from sessionkit import ConfigurationError, SessionkitError, Store, StoreContended, StoreUnavailable, session_id
from sessionkit._native import Snapshot, parse_redis_url, run_cli
from sessionkit.conf import current_engine, get_store, problems, store_url
from sessionkit.django.cached_db import SessionStore as CachedDBSessionStore
from sessionkit.django.redis import SessionStore
from sessionkit.django.users import (
    UserSession,
    logout_all,
    logout_others,
    logout_session,
    record_client,
    user_sessions,
)
from sessionkit.exceptions import StoreUnavailable as Unavailable


def sync_api(store: Store, key: str) -> None:
    assert_type(store.load(key), dict[str, Any] | None)
    loaded = store.load_versioned(key)
    if isinstance(loaded, tuple):
        data, snapshot = loaded
        assert_type(snapshot, Snapshot)
        saved = store.save_changes(key, {**data, "n": 1}, 60, snapshot)
        assert_type(saved, tuple[dict[str, Any] | None, Snapshot] | None)
    assert_type(store.create_new({"a": 1}, 60), str)
    assert_type(store.create_fresh({"a": 1}, 60), tuple[str, Snapshot])
    assert_type(store.exists(key), bool)
    assert_type(store.count(), int)
    assert_type(store.layout, Literal["string", "hash", "django-cache"])
    for item in store.user_sessions("1"):
        assert_type(item["expires_at"], float)
        assert_type(item["user_agent"], str | None)
    assert_type(store.delete_user_sessions("1", keep=key), int)
    assert_type(Store.connect("redis://127.0.0.1:6379/0", "empty", 8, merge=False), Store)
    assert_type(run_cli(["sessionkit", "count"], "redis://h", {"SECRET_KEY": "x"}), tuple[int, str, str])
    assert_type(parse_redis_url("redis://h")["layout"], Literal["string", "hash", "django-cache"])


async def async_api(store: Store, key: str) -> None:
    assert_type(await store.aload(key), dict[str, Any] | None)
    assert_type(await store.acreate_new({}, 60), str)
    assert_type(await store.aexists(key), bool)
    assert_type(await store.aclear_expired(), int)


def django_api(request: HttpRequest) -> None:
    session = SessionStore()
    session["x"] = 1
    session.save()
    assert_type(session.load(), dict[str, Any])
    assert_type(CachedDBSessionStore(session.session_key).exists(session.session_key), bool)
    assert_type(get_store("redis"), Store)
    assert_type(current_engine(), Literal["redis", "cached_db"] | None)
    assert_type(store_url({"LAYOUT": "hash", "BUCKETS": 64}, "cached_db"), str)
    assert_type(problems({"BUCKETS": "many"}), list[CheckMessage])
    sessions = user_sessions(request.user, request)
    assert_type(sessions, list[UserSession])
    assert_type(sessions[0].expires_at, datetime.datetime)
    assert_type(sessions[0].last_seen, datetime.datetime | None)
    assert_type(logout_session(request.user, sessions[0].id), bool)
    assert_type(logout_all(request.user, keep=request.session.session_key), int)
    assert_type(logout_others(request), int)
    record_client(request)
    assert_type(session_id("k" * 32), str)


def errors() -> None:
    try:
        get_store()
    except (StoreUnavailable, StoreContended, ConfigurationError) as err:
        assert_type(err, StoreUnavailable | StoreContended | ConfigurationError)
    assert issubclass(Unavailable, SessionkitError)
'''

MISUSE = '''
from sessionkit import Store
from sessionkit.conf import get_store
from sessionkit.django.users import logout_all

get_store("memcached")
Store.connect("redis://h", failure_policy="ignore")
get_store().load(1)
n: str = logout_all(object())
'''


def mypy(*args, cwd):
    """Runs mypy (the installed sessionkit, as a user's project sees it); returns (exit code, output)."""
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.path.join(cwd, ".mypy_cache"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return run.returncode, run.stdout + run.stderr


def stub_names():
    """The stub's top-level names, and the members of each class it defines."""
    import sessionkit._native as native

    path = os.path.join(os.path.dirname(native.__file__), "_native.pyi")
    assert os.path.isfile(path), f"no stub next to {native.__file__}"
    with open(path) as f:
        tree = ast.parse(f.read())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {
                n.name if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else n.target.id
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
            }
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names, members


def test_every_name_the_extension_exports_is_in_the_stub():
    import sessionkit._native as native

    names, members = stub_names()
    exported = {name for name in dir(native) if not name.startswith("__")} | {"__all__"}
    assert exported - names == set(), "exported by sessionkit._native but missing from _native.pyi"
    assert set(native.__all__) <= names
    for name in exported:
        runtime = getattr(native, name)
        if not isinstance(runtime, type):
            continue
        inherited = dir(BaseException) if issubclass(runtime, BaseException) else dir(object)
        public = {m for m in dir(runtime) if not m.startswith("_") and m not in inherited}
        assert public - members[name] == set(), f"members of {name} missing from _native.pyi"


def test_the_native_stub_matches_the_extension(tmp_path):
    """stubtest: the stub's classes, functions and constants exist at runtime with the runtime's parameters."""
    stub_names()  # stubtest passes without any stub: make sure there is one
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "sessionkit._native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success" in run.stdout


def test_typed_client_code_passes_mypy_strict(tmp_path):
    (tmp_path / "client.py").write_text(CLIENT)
    code, output = mypy("--strict", "client.py", cwd=str(tmp_path))
    assert code == 0, output


def test_the_annotations_catch_misuse(tmp_path):
    (tmp_path / "misuse.py").write_text(textwrap.dedent(MISUSE))
    code, output = mypy("--strict", "misuse.py", cwd=str(tmp_path))
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error: " in line]
    assert [line.split(":")[1] for line in errors] == ["6", "7", "8", "9"], output
    assert "'memcached'" in errors[0] and "'ignore'" in errors[1] and '"int"' in errors[2] and '"int"' in errors[3]


def test_the_package_passes_mypy_strict(tmp_path):
    code, output = mypy("--strict", "-p", "sessionkit", cwd=str(tmp_path))
    assert code == 0, output
