"""``manage.py sessionkit`` takes Django's standard options before or after the subcommand, and its ``--help``
is the embedded command's (no ``--secret-file``, no environment variables, no repository files) plus Django's
options."""

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
from django.core.management import CommandError, call_command

from sessionkit.django.redis import SessionStore

TESTS = os.path.dirname(os.path.abspath(__file__))
DJANGO_FLAGS = ("--settings", "--pythonpath", "--verbosity", "--traceback", "--no-color", "--force-color")
DJANGO_FLAGS += ("--skip-checks", "-v {0,1,2,3}")


def sessionkit(*args, **options):
    """``manage.py sessionkit ARGS`` through ``call_command``; returns its stdout."""
    out = io.StringIO()
    call_command("sessionkit", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def sessions(n):
    for i in range(n):
        s = SessionStore()
        s["n"] = i
        s.save()


@pytest.mark.parametrize(
    "line, django, command",
    [
        (["count", "--settings", "site.settings"], ["--settings", "site.settings"], ["count"]),
        (["--settings", "s", "-v", "2", "count"], ["--settings", "s", "-v", "2"], ["count"]),
        (["--settings=s", "--pythonpath=/p", "-v3", "list", "--json"], ["--settings=s", "--pythonpath=/p", "-v3"],
         ["list", "--json"]),
        (["list", "--user", "3", "--traceback", "--no-color", "--force-color", "--skip-checks", "--verbosity", "0"],
         ["--traceback", "--no-color", "--force-color", "--skip-checks", "--verbosity", "0"], ["list", "--user", "3"]),
        # -v without a verbosity after it is clear-expired's --verbose.
        (["clear-expired", "-v"], [], ["clear-expired", "-v"]),
        (["clear-expired", "-v", "--settings", "s"], ["--settings", "s"], ["clear-expired", "-v"]),
        (["-v", "1", "clear-expired", "-v"], ["-v", "1"], ["clear-expired", "-v"]),
        # The sessionkit command's own options, and everything after --, are left alone.
        (["--store", "redis://h", "show", "--", "-v", "2"], [], ["--store", "redis://h", "show", "--", "-v", "2"]),
        (["--help"], [], ["--help"]),
    ],
)
def test_split_args(line, django, command):
    from sessionkit.django.management.commands.sessionkit import split_args

    assert split_args(line) == (django, command)


def test_django_options_before_and_after_the_subcommand():
    sessions(2)
    assert sessionkit("count", "--settings", "settings", "--pythonpath", TESTS) == "2\n"
    assert sessionkit("--settings", "settings", "-v", "2", "count") == "2\n"
    assert sessionkit("count", "-v", "0", "--no-color", "--traceback", "--skip-checks") == "2\n"
    counted = sessionkit("--verbosity=3", "--force-color", "--json", "count", "--settings=settings")
    assert json.loads(counted)["count"] == 2
    # Django's parser checks the values: a verbosity is 0-3.
    with pytest.raises(CommandError, match="invalid choice"):
        sessionkit("count", "--verbosity", "9")


def test_verbosity_applies_to_clear_expired():
    assert sessionkit("clear-expired") == ""  # quiet, for cron
    assert sessionkit("-v", "0", "clear-expired") == ""
    assert "removed 0 expired session(s)" in sessionkit("clear-expired", "-v", "2")
    assert "removed 0 expired session(s)" in sessionkit("clear-expired", verbosity=2)
    assert "removed 0 expired session(s)" in sessionkit("clear-expired", "-v")  # the command's own -v (--verbose)


def assert_embedded_help(text):
    assert "Usage: manage.py sessionkit [OPTIONS] <COMMAND>" in text
    for subcommand in ("list", "show", "count", "clear-expired", "migrate", "stats", "doctor"):
        assert f"\n  {subcommand} " in text, subcommand
    assert "--store <URL>" in text and "--json" in text
    assert "Django options (before or after the subcommand):" in text
    for flag in DJANGO_FLAGS:
        assert flag in text, flag
    for absent in ("secret-file", "SECRET_FILE", "SESSIONKIT_STORE", "docs/", ".md"):
        assert absent not in text, absent


def test_help_shows_the_subcommands_and_django_options_and_no_repository_files():
    assert_embedded_help(sessionkit("--help"))
    assert_embedded_help(sessionkit("--settings", "settings", "-h"))
    listing = sessionkit("list", "--help")
    assert "Usage: manage.py sessionkit list" in listing and "--user" in listing and "--settings" in listing
    from sessionkit.django.management.commands.sessionkit import Command

    assert "docs/" not in Command.help


# -- the real manage.py ------------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path, redis_server):
    """A project directory with manage.py, and settings modules (on the test run's Redis) in ``config/``, which only
    --pythonpath makes importable: ``sitesettings`` and ``brokensettings`` (an admin system check error)."""
    (tmp_path / "manage.py").write_text(
        "import sys\n\nfrom django.core.management import execute_from_command_line\n\n"
        "execute_from_command_line(sys.argv)\n"
    )
    config = tmp_path / "config"
    config.mkdir()
    (config / "sitesettings.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            sys.path.insert(0, {TESTS!r})
            from settings import *  # the tests' settings

            SESSIONKIT = {{"URL": {redis_server.url!r}}}
            """
        )
    )
    (config / "brokensettings.py").write_text(
        "from sitesettings import *\n"
        "MIDDLEWARE = [m for m in MIDDLEWARE if 'MessageMiddleware' not in m]  # admin.E409\n"
    )
    return tmp_path


def manage(site, *args):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=site, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_takes_django_options_anywhere(site):
    sessions(1)
    paths = ["--pythonpath", str(site / "config")]
    run = manage(site, "sessionkit", "count", "--settings", "sitesettings", *paths)
    assert (run.returncode, run.stdout) == (0, "1\n"), run.stderr
    run = manage(site, "sessionkit", "--settings", "sitesettings", *paths, "-v", "2", "count")
    assert (run.returncode, run.stdout) == (0, "1\n"), run.stderr

    # --traceback: Django re-raises the CommandError (a traceback, exit code 1) instead of printing one line.
    run = manage(site, "sessionkit", "show", "nosuchkey1234567", "--settings", "sitesettings", *paths)
    assert run.returncode == 3 and "CommandError: no session with this key" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    run = manage(site, "sessionkit", "--traceback", "show", "nosuchkey1234567", "--settings=sitesettings", *paths)
    assert run.returncode == 1 and "Traceback (most recent call last)" in run.stderr, run.stderr

    # --no-color / --force-color reach Django's execute(), which refuses the two together.
    run = manage(site, "sessionkit", "--no-color", "count", "--settings", "sitesettings", *paths)
    assert (run.returncode, run.stdout) == (0, "1\n"), run.stderr
    run = manage(site, "sessionkit", "--no-color", "count", "--force-color", "--settings", "sitesettings", *paths)
    assert run.returncode == 1 and "can't be used together" in run.stderr, run.stderr

    # --skip-checks: a system check error stops the command unless the checks are skipped.
    run = manage(site, "sessionkit", "count", "--settings", "brokensettings", *paths)
    assert run.returncode == 1 and "admin.E409" in run.stderr, run.stderr
    run = manage(site, "sessionkit", "count", "--skip-checks", "--settings", "brokensettings", *paths)
    assert (run.returncode, run.stdout) == (0, "1\n"), run.stderr


def test_manage_py_help(site):
    paths = ["--pythonpath", str(site / "config")]
    run = manage(site, "sessionkit", "--help", "--settings", "sitesettings", *paths)
    assert run.returncode == 0, run.stderr
    assert_embedded_help(run.stdout)
    # `manage.py help sessionkit` shows the same.
    run = manage(site, "help", "sessionkit", "--settings", "sitesettings", *paths)
    assert run.returncode == 0, run.stderr
    assert_embedded_help(run.stdout)
