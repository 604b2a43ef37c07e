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


def cpu_seconds(pid):
    """CPU time (user + system, all threads) a process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        if only and name not in (DJANGO_ON_REDIS, DJANGO_ON_SK, SK_ON_SK) and not any(o in name for o in only):
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
                pid = servers[name].process.pid
                before, cpu_before = int(client.info("stats")["total_commands_processed"]), cpu_seconds(pid)
                rate, p50, p99, requests, errors = wrk(servers[name].port, scripts[name], seconds, connections, threads)
                after, cpu_after = int(client.info("stats")["total_commands_processed"]), cpu_seconds(pid)
                per_request = (after - before - 1) / requests if requests else 0.0
                cpu_us = (cpu_after - cpu_before) / requests * 1e6 if requests else 0.0
                results[name].append((rate, p50, p99, per_request, errors, cpu_us))
                print(f"asgi round {round_number + 1}: {name:<80} {rate:>8.0f} req/s  p99 {p99 * 1e3:6.1f} ms  "
                      f"server CPU {cpu_us:7.0f} µs/request" + (f"  ({errors} errors)" if errors else ""), flush=True)
    finally:
        for server in servers.values():
            server.close()
        shutil.rmtree(log_dir, ignore_errors=True)
    return results, skipped


def ratio(results, name, ref, field=0, invert=False):
    """Median over rounds of (name's value ÷ ref's value in the same round), and its range; ``field`` 0 is req/s,
    5 is server CPU per request (``invert``: ref ÷ name, so that more than 1 means better)."""
    pairs = [(b[field] / a[field]) if invert else (a[field] / b[field]) for a, b in zip(results[name], results[ref])]
    return statistics.median(pairs), min(pairs), max(pairs)


def cpu_ratio(results, name, ref):
    """How many requests ``name`` serves per CPU second, relative to ``ref`` (server CPU per request, inverted)."""
    return ratio(results, name, ref, field=5, invert=True)


def section(results, skipped, *, rounds, seconds, connections, threads, sessions, machine, load_text, command):
    lines = [
        MARK_START,
        "## ASGI: Django under uvicorn (sessionkit-py)",
        "",
        f"uvicorn (one worker, asyncio, h11) serving a Django project whose async view loads the session "
        f"(`await request.session.aget(\"visits\", 0)`) and increments a counter (`aset`); the session middleware "
        f"saves it. wrk, {connections} connections, {threads} threads, replays the cookies of {sessions:,} existing "
        "logged-in-sized sessions (each request the next cookie; ~330 bytes of JSON, with `_auth_user_id`, so "
        "sessionkit also keeps its per-user index), created by the row's own engine before the run. One uvicorn "
        "process per row, all against one fresh redis-server (own, loopback TCP, no persistence); the only "
        f"middleware is the session middleware. {rounds} rounds of {seconds} s; the rounds interleave the rows. "
        "Medians over the rounds.",
        "",
        "Two measures: requests/s at saturation, and the **server's CPU time per request** (user + system of the "
        "uvicorn process, all its threads: the event loop, asgiref's worker threads, sessionkit's Tokio threads; "
        "from `/proc/PID/stat` around each wrk run). On a machine shared with other work the requests/s move with "
        "the neighbours' load, the CPU time per request much less, so the factors are given on both; "
        "\"requests per CPU second\" is 1 ÷ CPU per request.",
        "",
        "| stack | req/s (median) | rounds min–max | p50 ms | p99 ms | server CPU µs/request | Redis commands/request | "
        "vs Django middleware + django-redis: req/s¹ | per CPU second² |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, samples in results.items():
        rates = [s[0] for s in samples]
        p50 = statistics.median(s[1] for s in samples) * 1e3
        p99 = statistics.median(s[2] for s in samples) * 1e3
        cmds = statistics.median(s[3] for s in samples)
        errors = sum(s[4] for s in samples)
        cpu = statistics.median(s[5] for s in samples)
        versus = versus_cpu = ""
        if DJANGO_ON_REDIS in results:
            versus = "{:.2f}× ({:.2f}–{:.2f})".format(*ratio(results, name, DJANGO_ON_REDIS))
            versus_cpu = "{:.2f}× ({:.2f}–{:.2f})".format(*cpu_ratio(results, name, DJANGO_ON_REDIS))
        lines.append(
            f"| {name}{f' ({errors} errors)' if errors else ''} | {statistics.median(rates):,.0f} | "
            f"{min(rates):,.0f}–{max(rates):,.0f} | {p50:.1f} | {p99:.1f} | {cpu:,.0f} | {cmds:.1f} | {versus} | "
            f"{versus_cpu} |"
        )
    for name, reason in skipped.items():
        lines.append(f"| {name} | skipped: the store refused the option (`{reason[:120]}`) | | | | | | | |")
    lines += [
        "",
        "¹ Median over the rounds of (this row's req/s ÷ the Django middleware + django-redis row's req/s in the "
        "same round), and its range. ² The same for requests per server CPU second (the reference's CPU µs/request "
        "÷ this row's).",
        "",
    ]
    results_lines = []
    for label, name, ref, target in [
        ("sessionkit's middleware vs Django's middleware, both on sessionkit.django.redis", SK_ON_SK, DJANGO_ON_SK,
         "target ≥ 1.5×"),
        ("sessionkit (middleware + engine) vs Django's middleware + cache engine + django-redis", SK_ON_SK,
         DJANGO_ON_REDIS, "target ≥ 3×"),
        ("the same with `client_cache=on`", SK_CLIENT_CACHE, DJANGO_ON_REDIS, "target ≥ 3×"),
    ]:
        if name in results and ref in results:
            r, lo, hi = ratio(results, name, ref)
            c, clo, chi = cpu_ratio(results, name, ref)
            results_lines.append(
                f"{label}: {r:.2f}× the requests/s (per round {lo:.2f}–{hi:.2f}×), {c:.2f}× the requests per CPU "
                f"second ({clo:.2f}–{chi:.2f}×); {target}"
            )
    if results_lines:
        lines += ["**Result:**", ""] + [f"- {line}." for line in results_lines] + [""]
    lines += [
        f"Machine: {machine}. Load: {load_text}.",
        "",
        f"Command: `{command}` (the ASGI run follows the engine cycles in `scripts/bench-django`; `--no-asgi` skips "
        "it, `--asgi-only` runs only it; `--asgi-rounds`, `--asgi-seconds`, `--asgi-sessions`).",
        MARK_END,
    ]
    return "\n".join(lines)
