"""The ASGI run of scripts/bench-django: uvicorn serving asgi_app.py (async views touching the session), one server
process per row, all against one fresh redis-server, driven by wrk (64 connections replaying existing session
cookies); rounds interleave the rows. Requests/s, p50/p99 latency and Redis commands per request."""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

DJANGO_MW = "django.contrib.sessions.middleware.SessionMiddleware"
SK_MW = "sessionkit.django.middleware.SessionMiddleware"
SK_ENGINE = "sessionkit.django.redis"
CACHE_ENGINE = "django.contrib.sessions.backends.cache"

#: (name, middleware, engine, extra store-URL options, path). The names the result lines compare.
DJANGO_ON_SK = "Django `SessionMiddleware` + sessionkit.django.redis"
SK_ON_SK = "sessionkit `SessionMiddleware` + sessionkit.django.redis"
SK_CLIENT_CACHE = "sessionkit `SessionMiddleware` + sessionkit.django.redis, `client_cache=on`"
DJANGO_ON_REDIS = "Django `SessionMiddleware` + cache engine + django-redis"
SK_ON_REDIS = "sessionkit `SessionMiddleware` + cache engine + django-redis"
CEILING = "no session (view does not touch it; ceiling)"
ROWS = [
    (CEILING, "none", SK_ENGINE, "", "/plain/"),
    (DJANGO_ON_SK, DJANGO_MW, SK_ENGINE, "", "/counter/"),
    (SK_ON_SK, SK_MW, SK_ENGINE, "", "/counter/"),
    (SK_CLIENT_CACHE, SK_MW, SK_ENGINE, "client_cache=on", "/counter/"),
    (DJANGO_ON_REDIS, DJANGO_MW, CACHE_ENGINE, "", "/counter/"),
    (SK_ON_REDIS, SK_MW, CACHE_ENGINE, "", "/counter/"),
]
MARK_START = "<!-- sessionkit-py:asgi-bench:start -->"
MARK_END = "<!-- sessionkit-py:asgi-bench:end -->"

LUA = """
-- Replays existing session cookies: each request takes the next key of the list (each wrk thread starts at its
-- own offset), so 64 connections spread over many sessions.
local keys = {}
for line in io.lines("%(keys)s") do keys[#keys + 1] = line end
local i = 0
function setup(thread)
  thread:set("offset", math.random(#keys))
end
function init(args)
  i = offset or 0
end
function request()
  i = i %% #keys + 1
  return wrk.format("GET", "%(path)s", { ["Cookie"] = "sessionid=" .. keys[i] })
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_options(url, options):
    if not options:
        return url
    return url + ("&" if "?" in url else "?") + options


def refused(url):
    """Why the sessionkit store refuses this URL (an unknown option such as ``client_cache`` before it exists), or
    None."""
    from sessionkit._native import Store

    try:
        Store.connect(url)
    except Exception as err:  # ConfigurationError for an unknown option
        return f"{type(err).__name__}: {err}"
    return None


class Server:
    """One uvicorn process serving asgi_app for one row."""

    def __init__(self, name, middleware, engine, url, log_dir):
        self.name = name
        self.port = free_port()
        env = dict(
            os.environ,
            SK_BENCH_MIDDLEWARE=middleware,
            SK_BENCH_ENGINE=engine,
            SK_BENCH_REDIS=url.split("?", 1)[0],
            SK_BENCH_SESSIONKIT_URL=url,
            PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        self.log = open(os.path.join(log_dir, f"uvicorn-{self.port}.log"), "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "asgi_app:application", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
            cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/plain/")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"uvicorn for {name!r} did not start; see {self.log.name}")
                time.sleep(0.2)

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=120) as response:
            return response.read().decode()

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _seconds(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(port, script, seconds, connections, threads):
    """Runs wrk; returns (requests/s, p50 seconds, p99 seconds, requests, non-2xx + socket errors)."""
    run = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    )
    out = run.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _seconds(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = _seconds(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return rate, p50, p99, requests, errors


def ensure_wrk():
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk; scripts/bench-django installs it)")


def run(redis_url, client, *, rounds, seconds, connections=64, threads=2, sessions=2000, only=()):
    """Runs every row; returns (results, skipped): results = {name: [(rate, p50, p99, commands/request, errors)]
    per round}, skipped = {name: reason}."""
    ensure_wrk()
    log_dir = tempfile.mkdtemp(prefix="sessionkit-asgi-bench-")
    rows, skipped = [], {}
    for name, middleware, engine, options, path in ROWS:
        if only and name not in (DJANGO_ON_REDIS, SK_ON_SK) and not any(o in name for o in only):
            continue
        url = with_options(redis_url, options)
        if options and (reason := refused(url)):
            skipped[name] = reason
            print(f"asgi: skipping {name}: the store refuses {options!r} ({reason})", flush=True)
            continue
        rows.append((name, middleware, engine, url, path))
    servers = {}
    results = {name: [] for name, *_ in rows}
    try:
        for name, middleware, engine, url, path in rows:
            servers[name] = Server(name, middleware, engine, url, log_dir)
        scripts = {}
        for name, _, _, _, path in rows:
            keys = servers[name].get(f"/seed/?n={sessions}").split()
            assert len(keys) == sessions, (name, len(keys))
            keys_file = os.path.join(log_dir, f"keys-{servers[name].port}.txt")
            with open(keys_file, "w") as f:
                f.write("\n".join(keys) + "\n")
            scripts[name] = os.path.join(log_dir, f"replay-{servers[name].port}.lua")
            with open(scripts[name], "w") as f:
                f.write(LUA % {"keys": keys_file, "path": path})
            wrk(servers[name].port, scripts[name], 2, connections, threads)  # warm up
        for round_number in range(rounds):
            for name, *_ in rows:
                before = int(client.info("stats")["total_commands_processed"])
                rate, p50, p99, requests, errors = wrk(servers[name].port, scripts[name], seconds, connections, threads)
                after = int(client.info("stats")["total_commands_processed"])
                per_request = (after - before - 1) / requests if requests else 0.0
                results[name].append((rate, p50, p99, per_request, errors))
                print(f"asgi round {round_number + 1}: {name:<80} {rate:>8.0f} req/s  p99 {p99 * 1e3:6.1f} ms"
                      + (f"  ({errors} errors)" if errors else ""), flush=True)
    finally:
        for server in servers.values():
            server.close()
        shutil.rmtree(log_dir, ignore_errors=True)
    return results, skipped


def ratio(results, name, ref):
    """Median over rounds of (name's req/s ÷ ref's req/s in the same round)."""
    pairs = [a[0] / b[0] for a, b in zip(results[name], results[ref])]
    return statistics.median(pairs), min(pairs), max(pairs)


def section(results, skipped, *, rounds, seconds, connections, threads, sessions, machine, load_text, command):
    lines = [
        MARK_START,
        "## ASGI: Django under uvicorn (sessionkit-py)",
        "",
        f"uvicorn (one worker, asyncio, h11) serving a Django project whose async view loads the session "
        f"(`await request.session.aget(\"visits\", 0)`), increments a counter (`aset`), and the session middleware "
        f"saves it; driven by wrk, {connections} connections, {threads} threads, replaying the cookies of "
        f"{sessions:,} existing logged-in-sized sessions (each request the next cookie; ~330 bytes of JSON each, "
        f"created by the row's own engine before the run). One uvicorn process per row, all against one fresh "
        f"redis-server (own, loopback TCP, no persistence); {rounds} rounds of {seconds} s, the rounds "
        "interleave the rows, so a busy neighbour slows all rows alike. The only middleware is the session "
        "middleware. Medians over the rounds.",
        "",
        "| stack | req/s (median) | rounds min–max | p50 ms | p99 ms | Redis commands/request | "
        "vs Django middleware + django-redis¹ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, samples in results.items():
        rates = [s[0] for s in samples]
        p50 = statistics.median(s[1] for s in samples) * 1e3
        p99 = statistics.median(s[2] for s in samples) * 1e3
        cmds = statistics.median(s[3] for s in samples)
        errors = sum(s[4] for s in samples)
        versus = ""
        if DJANGO_ON_REDIS in results:
            r, lo, hi = ratio(results, name, DJANGO_ON_REDIS)
            versus = f"{r:.2f}× ({lo:.2f}–{hi:.2f})"
        lines.append(
            f"| {name}{f' ({errors} errors)' if errors else ''} | {statistics.median(rates):,.0f} | "
            f"{min(rates):,.0f}–{max(rates):,.0f} | {p50:.1f} | {p99:.1f} | {cmds:.1f} | {versus} |"
        )
    for name, reason in skipped.items():
        lines.append(f"| {name} | skipped: the store refused the option (`{reason[:120]}`) | | | | | |")
    lines += [
        "",
        "¹ Median over the rounds of (this row's req/s ÷ the Django middleware + django-redis row's req/s in the "
        "same round), and its range.",
        "",
    ]
    results_lines = []
    if SK_ON_SK in results and DJANGO_ON_SK in results:
        r, lo, hi = ratio(results, SK_ON_SK, DJANGO_ON_SK)
        results_lines.append(
            f"sessionkit's middleware serves {r:.2f}× the requests/s of Django's middleware on the same engine "
            f"(sessionkit.django.redis; per-round range {lo:.2f}–{hi:.2f}×; target ≥ 1.5×)"
        )
    if SK_ON_SK in results and DJANGO_ON_REDIS in results:
        r, lo, hi = ratio(results, SK_ON_SK, DJANGO_ON_REDIS)
        results_lines.append(
            f"sessionkit (middleware + engine) serves {r:.2f}× the requests/s of Django's middleware with the cache "
            f"engine and django-redis ({lo:.2f}–{hi:.2f}×; target ≥ 3×)"
        )
    if SK_CLIENT_CACHE in results and DJANGO_ON_REDIS in results:
        r, lo, hi = ratio(results, SK_CLIENT_CACHE, DJANGO_ON_REDIS)
        results_lines.append(f"with `client_cache=on`, {r:.2f}× ({lo:.2f}–{hi:.2f}×)")
    if results_lines:
        lines += ["**Result:** " + "; ".join(results_lines) + ".", ""]
    lines += [
        "Why: under ASGI Django runs a middleware's sync hooks through `sync_to_async`, so Django's "
        "`SessionMiddleware` costs two hand-offs to a worker thread per request (`process_request`, "
        "`process_response`), and its save is the sync `save()`; Django's cache engine also runs each cache call "
        "of `aload`/`asave` through `sync_to_async` (django-redis has no async client), and makes two round trips "
        "per save. sessionkit's middleware creates the session in the event loop and awaits the engine's `asave`, "
        "which sessionkit's engine completes from Rust without a thread: one `GET` and one `SET` (or the index "
        "script) per request, no thread hop.",
        "",
        f"Machine: {machine}. Load: {load_text}.",
        "",
        f"Command: `{command}` (the ASGI run is part of it; `--no-asgi` skips it, `--asgi-only` runs only it; "
        "`--asgi-seconds`, `--asgi-rounds`).",
        MARK_END,
    ]
    return "\n".join(lines)
