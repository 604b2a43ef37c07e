"""create → load → modify → save cycles per second of Django session engines, in one process, on one Redis.

Engines: sessionkit.django.redis (layouts string / hash / django-cache), sessionkit.django.cached_db on PostgreSQL,
django.contrib.sessions.backends.cache with django-redis and with Django's built-in RedisCache, and
django.contrib.sessions.backends.db on PostgreSQL. Starts its own redis-server on a free loopback port and creates
(and drops) a throwaway PostgreSQL database. Run it with scripts/bench-django.
"""

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import asgi_bench  # noqa: E402
from payload import LOGIN  # noqa: E402
from redis_server import RedisServer  # noqa: E402

BASELINE = "django cache engine + django-redis 7.0"
#: The string layout with per-thread connections off: every sync call hands its round trip to the shared Tokio
#: runtime and back (the design before per-thread connections), same build, same process.
SHARED_ONLY = "sessionkit.django.redis (layout string, THREAD_CONNECTIONS=0)"
#: The default engine and layout.
MAIN = "sessionkit.django.redis (layout string)"
#: The string layout without the per-user index: what the index's scripts cost.
NO_INDEX = "sessionkit.django.redis (layout string, USER_INDEX=False)"
#: The default engine with Redis server-assisted client-side caching (zero-round-trip loads of sessions this process
#: has seen), an opt-in store-URL option; skipped (with the store's reason) while the store refuses the option.
CLIENT_CACHE = "sessionkit.django.redis (layout string, client_cache=on)"
CLIENT_CACHE_OPTIONS = "client_cache=on"
#: Column headings of the placement table.
SHORT = {
    MAIN: "sessionkit, string",
    SHARED_ONLY: "sessionkit, string, `THREAD_CONNECTIONS=0`",
    NO_INDEX: "sessionkit, string, `USER_INDEX=False`",
    BASELINE: "django-redis",
}
MARK_START = "<!-- sessionkit-py:django-bench:start -->"
MARK_END = "<!-- sessionkit-py:django-bench:end -->"

def configure(redis_url, pg_name):
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-secret",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": pg_name,
                "USER": "root",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "CONN_MAX_AGE": None,
            }
        },
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "django-redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url},
            "rediscache": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
        },
        SESSIONKIT={"URL": redis_url},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def cycle(store_class):
    session = store_class()
    session.update(LOGIN)
    session.save()  # create
    loaded = store_class(session.session_key)
    loaded["visits"] = loaded.get("visits", 0) + 1  # load + modify
    loaded.save()  # save


def read_cycle(store_class, key):
    """A request that reads its session and changes nothing: ``SessionStore(key)``, read one key, no save."""
    return store_class(key).get("visits", 0)


def measure_reads(store_class, overrides, redis_client, cycles, sessions=100):
    """One timed round of read-only requests over ``sessions`` existing sessions: (reads per second, Redis
    commands per read)."""
    from django.test import override_settings

    with override_settings(**overrides):
        keys = []
        for _ in range(sessions):
            session = store_class()
            session.update(LOGIN)
            session.save()
            keys.append(session.session_key)
        for i in range(min(200, cycles)):  # warm up: the first read of each session
            read_cycle(store_class, keys[i % sessions])
        before = int(redis_client.info("stats")["total_commands_processed"])
        started = time.perf_counter()
        for i in range(cycles):
            read_cycle(store_class, keys[i % sessions])
        elapsed = time.perf_counter() - started
        after = int(redis_client.info("stats")["total_commands_processed"])
    return cycles / elapsed, (after - before - 1) / cycles


def engines(redis_url):
    from django.contrib.sessions.backends import cache, db

    from sessionkit.django import cached_db as sk_cached_db
    from sessionkit.django import redis as sk_redis

    sk = {"URL": redis_url}
    return [
        (MAIN, sk_redis.SessionStore, {"SESSIONKIT": dict(sk, LAYOUT="string")}),
        (
            CLIENT_CACHE,
            sk_redis.SessionStore,
            {"SESSIONKIT": dict(sk, URL=asgi_bench.with_options(redis_url, CLIENT_CACHE_OPTIONS), LAYOUT="string")},
        ),
        (
            SHARED_ONLY,
            sk_redis.SessionStore,
            {"SESSIONKIT": dict(sk, LAYOUT="string", THREAD_CONNECTIONS=0)},
        ),
        (
            NO_INDEX,
            sk_redis.SessionStore,
            {"SESSIONKIT": dict(sk, LAYOUT="string", USER_INDEX=False)},
        ),
        ("sessionkit.django.redis (layout hash)", sk_redis.SessionStore, {"SESSIONKIT": dict(sk, LAYOUT="hash")}),
        (
            "sessionkit.django.redis (layout django-cache)",
            sk_redis.SessionStore,
            {"SESSIONKIT": dict(sk, LAYOUT="django-cache")},
        ),
        (BASELINE, cache.SessionStore, {"SESSION_CACHE_ALIAS": "django-redis"}),
        ("django cache engine + Django RedisCache", cache.SessionStore, {"SESSION_CACHE_ALIAS": "rediscache"}),
        ("sessionkit.django.cached_db (PostgreSQL)", sk_cached_db.SessionStore, {"SESSIONKIT": sk}),
        ("django db engine (PostgreSQL)", db.SessionStore, {}),
    ]


def measure_round(store_class, overrides, redis_client, cycles):
    """One timed round: (cycles per second, Redis commands per cycle)."""
    from django.test import override_settings

    with override_settings(**overrides):
        for _ in range(min(100, cycles)):  # warm up: connections, imports, caches
            cycle(store_class)
        before = int(redis_client.info("stats")["total_commands_processed"])
        started = time.perf_counter()
        for _ in range(cycles):
            cycle(store_class)
        elapsed = time.perf_counter() - started
        after = int(redis_client.info("stats")["total_commands_processed"])
    return cycles / elapsed, (after - before - 1) / cycles


def profile(store_class, overrides, cycles):
    import cProfile
    import io
    import pstats

    from django.test import override_settings

    with override_settings(**overrides):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(cycles):
            cycle(store_class)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


class Timed:
    """Wraps a sessionkit ``Store``: counts its method calls and the time spent in them."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.seconds = 0.0

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        return timed


def breakdown(name, store_class, overrides, cycles):
    """Where a cycle's time goes: (µs per cycle, store calls per cycle, µs in those calls per cycle). A store call is
    one call into the Rust extension (sessionkit: JSON conversion, encoding, the Redis round trip) or one redis-py
    ``execute_command`` (Django's cache engines: serialization is outside, in the cache backend)."""
    import redis as redis_py
    from django.test import override_settings

    import sessionkit.django.redis as sk_redis

    with override_settings(**overrides):
        for _ in range(min(100, cycles)):
            cycle(store_class)
        if name.startswith("sessionkit.django.redis"):
            timed = Timed(sk_redis.get_store("redis"))
            original = sk_redis.get_store
            sk_redis.get_store = lambda engine: timed
            restore = lambda: setattr(sk_redis, "get_store", original)  # noqa: E731
        else:
            timed = Timed(None)
            original = redis_py.Redis.execute_command

            def execute_command(self, *args, **options):
                started = time.perf_counter()
                try:
                    return original(self, *args, **options)
                finally:
                    timed.seconds += time.perf_counter() - started
                    timed.calls += 1

            redis_py.Redis.execute_command = execute_command
            restore = lambda: setattr(redis_py.Redis, "execute_command", original)  # noqa: E731
        try:
            started = time.perf_counter()
            for _ in range(cycles):
                cycle(store_class)
            elapsed = time.perf_counter() - started
        finally:
            restore()
    return elapsed / cycles * 1e6, timed.calls / cycles, timed.seconds / cycles * 1e6


def round_trips(redis_url, client, calls=2000, batches=5):
    """µs per single round trip from Python: redis-py GET, and sessionkit ``Store.exists`` with its own per-thread
    connection and with the shared runtime (THREAD_CONNECTIONS=0). The three alternate in batches; median batch."""
    from sessionkit._native import Store

    own = Store.connect(redis_url)
    shared = Store.connect(redis_url, "error", 0)
    client.set("bench:k", b"x" * 300)
    key = own.create_new({"a": 1}, 600)
    cases = [
        ("redis-py `GET`", lambda: client.get("bench:k")),
        ("sessionkit, own connection", lambda: own.exists(key)),
        ("sessionkit, shared runtime", lambda: shared.exists(key)),
    ]
    times = {label: [] for label, _ in cases}
    for _ in range(batches):
        for label, call in cases:
            for _ in range(200):
                call()
            started = time.perf_counter()
            for _ in range(calls):
                call()
            times[label].append((time.perf_counter() - started) / calls * 1e6)
    return {label: statistics.median(v) for label, v in times.items()}


def placements(server):
    """CPU placements of this (Python) thread and the redis-server: as the scheduler likes, both on one core, on
    two cores. On a VM a round trip between two cores pays for waking an idle virtual CPU."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    found = [("as scheduled", None)]
    if len(cpus) >= 2:
        found += [("one core", (cpus[0], cpus[0])), ("two cores", (cpus[0], cpus[1]))]
    return found


class Pinned:
    """Pins this thread and the redis-server to CPUs for a ``with`` block (no-op for ``None``)."""

    def __init__(self, server, where):
        self.server, self.where = server, where

    def __enter__(self):
        if self.where is not None:
            self.saved = (os.sched_getaffinity(0), os.sched_getaffinity(self.server.process.pid))
            os.sched_setaffinity(0, {self.where[0]})
            os.sched_setaffinity(self.server.process.pid, {self.where[1]})
        return self

    def __exit__(self, *exc):
        if self.where is not None:
            os.sched_setaffinity(0, self.saved[0])
            os.sched_setaffinity(self.server.process.pid, self.saved[1])


def wait_for_quiet(limit, max_seconds, poll=30):
    """Waits until the 1-minute load average is below ``limit`` (at most ``max_seconds``). Returns (load, waited
    seconds, quiet)."""
    started = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - started
        if load < limit:
            return load, waited, True
        if waited >= max_seconds:
            return load, waited, False
        print(f"load average {load:.2f} >= {limit}: waiting for a quiet machine ({waited:.0f}s so far)", flush=True)
        time.sleep(poll)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_doc(path, section, start=MARK_START, end=MARK_END):
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def machine_text():
    import django
    import django_redis
    import redis as redis_py

    return (
        f"{os.cpu_count()} cores ({cpu_model()}), Linux {platform.release()}, {platform.python_implementation()} "
        f"{platform.python_version()}, Django {django.get_version()}, "
        f"django-redis {'.'.join(map(str, django_redis.VERSION)) if hasattr(django_redis, 'VERSION') else '?'}, "
        f"redis-py {redis_py.__version__}"
    )


def run_asgi(args, quiet):
    """The ASGI run (asgi_bench.py) against a fresh redis-server of its own; prints and returns its doc section."""
    import uvicorn

    server = RedisServer()
    try:
        client = server.client()
        loads = [os.getloadavg()[0]]
        started = time.monotonic()
        results, skipped = asgi_bench.run(
            server.url, client, rounds=args.asgi_rounds, seconds=args.asgi_seconds, sessions=args.asgi_sessions,
            only=args.only,
        )
        loads.append(os.getloadavg()[0])
        redis_version = client.info("server")["redis_version"]
        client.close()
    finally:
        server.close()
    if quiet is None:
        waited = "no wait for a quiet machine was asked for"
    else:
        waited = f"waited {quiet[1]:.0f} s for a quiet machine{'' if quiet[2] else ', in vain'}"
    load_text = (f"1-minute load average {loads[0]:.2f} at the start, {loads[-1]:.2f} at the end ({waited}); wrk, "
                 "uvicorn and redis-server share the 2 cores (with other work), so compare rows of one run; the "
                 f"run took {time.monotonic() - started:.0f} s")
    machine = f"{machine_text()}, uvicorn {uvicorn.__version__}, wrk, Redis {redis_version}"
    section = asgi_bench.section(
        results, skipped, rounds=args.asgi_rounds, seconds=args.asgi_seconds, connections=64, threads=2,
        sessions=args.asgi_sessions, machine=machine, load_text=load_text, command=args.command,
    )
    print()
    print(section)
    return section


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=2000, help="cycles per round for Redis engines")
    parser.add_argument("--db-cycles", type=int, default=600, help="cycles per round for database engines")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", action="append", default=[], help="only engines whose name contains this "
                        "(repeatable; django-redis, the reference, always runs; in the ASGI run the three stacks the "
                        "targets compare always run: Django's and sessionkit's middleware on sessionkit's engine, "
                        "Django's with django-redis)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the sessionkit engine")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="first wait (polling every 30 s, at most SECONDS) until the load average is low")
    parser.add_argument("--quiet-load", type=float, default=0.7, help="what --wait-quiet calls low")
    parser.add_argument("--doc", default=None, help="replace the benchmark section of this markdown file")
    parser.add_argument("--command", default="scripts/bench-django", help="the command line to show in the doc")
    parser.add_argument("--no-asgi", action="store_true", help="skip the ASGI run (uvicorn + wrk)")
    parser.add_argument("--asgi-only", action="store_true", help="only the ASGI run (uvicorn + wrk)")
    parser.add_argument("--asgi-rounds", type=int, default=3, help="rounds of the ASGI run")
    parser.add_argument("--asgi-seconds", type=int, default=10, help="seconds of wrk per row and round")
    parser.add_argument("--asgi-sessions", type=int, default=2000, help="sessions whose cookies wrk replays")
    args = parser.parse_args()

    quiet = None
    if args.wait_quiet > 0:
        quiet = wait_for_quiet(args.quiet_load, args.wait_quiet)
        print(f"load average {quiet[0]:.2f} after waiting {quiet[1]:.0f}s "
              f"({'quiet' if quiet[2] else 'NOT quiet: gave up waiting'})", flush=True)

    if not args.no_asgi:
        asgi_bench.ensure_wrk()
    if args.asgi_only:
        asgi_section = run_asgi(args, quiet)
        if args.doc:
            write_doc(args.doc, asgi_section, asgi_bench.MARK_START, asgi_bench.MARK_END)
            print(f"\nwrote {args.doc}")
        return

    import psycopg

    pg_name = f"sessionkit_bench_{os.getpid()}"
    admin = psycopg.connect("host=127.0.0.1 port=5432 user=root dbname=postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{pg_name}"')
    server = RedisServer()
    try:
        configure(server.url, pg_name)
        import django
        import django_redis
        import redis as redis_py
        from django.core.management import call_command

        import sessionkit

        print(f"sessionkit from {os.path.dirname(sessionkit.__file__)}", flush=True)
        call_command("migrate", "sessions", verbosity=0)
        client = server.client()
        all_engines = [
            e for e in engines(server.url) if not args.only or e[0] == BASELINE or any(o in e[0] for o in args.only)
        ]
        # A row whose store-URL option the store does not know (yet) is skipped, saying why.
        skipped = {}
        for name, _, overrides in list(all_engines):
            url = overrides.get("SESSIONKIT", {}).get("URL", "")
            if name == CLIENT_CACHE and (reason := asgi_bench.refused(url)):
                skipped[name] = reason
                all_engines = [e for e in all_engines if e[0] != name]
                print(f"skipping {name}: the store refuses {CLIENT_CACHE_OPTIONS!r} ({reason})", flush=True)
        samples = {name: [] for name, _, _ in all_engines}
        commands = {}
        loads = [os.getloadavg()[0]]
        started_run = time.monotonic()
        # Rounds interleave the engines, so a noisy neighbour slows every engine alike.
        for round_number in range(args.rounds):
            for name, store_class, overrides in all_engines:
                cycles = args.db_cycles if "PostgreSQL" in name else args.cycles
                client.flushall()
                rate, per_cycle = measure_round(store_class, overrides, client, cycles)
                samples[name].append(rate)
                commands[name] = per_cycle
                print(f"round {round_number + 1}: {name:<62} {rate:>9.0f} cycles/s", flush=True)
            loads.append(os.getloadavg()[0])
        # Read-only requests (load, read, no save): what zero-round-trip loads buy.
        read_engines = [e for e in all_engines if e[0] in (MAIN, CLIENT_CACHE, BASELINE)]
        read_samples = {name: [] for name, _, _ in read_engines}
        read_commands = {}
        for _ in range(args.rounds):
            for name, store_class, overrides in read_engines:
                client.flushall()
                rate, per_read = measure_reads(store_class, overrides, client, args.cycles)
                read_samples[name].append(rate)
                read_commands[name] = per_read
                print(f"reads: {name:<62} {rate:>9.0f} reads/s", flush=True)
        # Where the time goes (an extra, instrumented round per Redis engine; not part of the table above).
        split = []
        for name, store_class, overrides in all_engines:
            if "PostgreSQL" in name or "django-cache" in name or "hash" in name or name == NO_INDEX:
                continue
            client.flushall()
            split.append((name, *breakdown(name, store_class, overrides, args.cycles)))
        # The same per placement: single round trips, and cycles of the three engines that matter here.
        placed = []
        placed_engines = [e for e in all_engines if e[0] in (MAIN, SHARED_ONLY, NO_INDEX, BASELINE)]
        for where_name, where in placements(server):
            with Pinned(server, where):
                client.flushall()
                trips = round_trips(server.url, client)
                rates = {name: [] for name, _, _ in placed_engines}
                for _ in range(3):
                    for name, store_class, overrides in placed_engines:
                        client.flushall()
                        rates[name].append(measure_round(store_class, overrides, client, 1000)[0])
            placed.append((where_name, trips, {name: statistics.median(v) for name, v in rates.items()}))
        loads.append(os.getloadavg()[0])
        run_seconds = time.monotonic() - started_run

        rows = [(name, statistics.median(samples[name]), commands[name]) for name, _, _ in all_engines]
        spread = {name: (min(v), max(v)) for name, v in samples.items()}
        medians = {n: r for n, r, _ in rows}
        baseline = medians[BASELINE]
        # Each round's rate over django-redis' rate in the same round: a busy neighbour slows both alike.
        ratios = {
            name: [rate / ref for rate, ref in zip(samples[name], samples[BASELINE])] for name, _, _ in all_engines
        }
        from django.db import connection

        pg_version = connection.cursor().connection.info.server_version
        redis_version = client.info("server")["redis_version"]
        if quiet is None:
            waited = "no wait for a quiet machine was asked for (`--wait-quiet`)"
        elif quiet[2]:
            waited = f"waited {quiet[1]:.0f} s for the 1-minute load average to drop below {args.quiet_load}"
        else:
            waited = (f"waited {quiet[1]:.0f} s for the 1-minute load average to drop below {args.quiet_load}, "
                      "in vain (**not a quiet machine**)")
        load_text = (f"1-minute load average {loads[0]:.2f} at the start, {max(loads):.2f} at most (sampled after "
                     f"each round; the benchmark itself keeps about one core busy), {loads[-1]:.2f} at the end ({waited}); "
                     "2 cores shared with other work, so "
                     "the numbers move between runs: compare rows of one run, not runs")
        lines = [
            MARK_START,
            "## Django engines (sessionkit-py)",
            "",
            "create → load → modify → save cycles of Django session engines, measured by `scripts/bench-django` "
            "in one Python process against one redis-server (own, loopback TCP, no persistence) and one "
            "PostgreSQL database: one cycle = `SessionStore()` + a login-sized session (6 keys, ~330 bytes JSON, "
            "with `_auth_user_id`, so sessionkit also updates its per-user index) + `save()` (create), "
            "`SessionStore(key)` + read + write one key, `save()`. Median of "
            f"{args.rounds} rounds of {args.cycles:,} cycles ({args.db_cycles} for PostgreSQL engines), single "
            "thread; the rounds interleave the engines (round 1 of every engine, then round 2, …), so a busy "
            "neighbour slows all engines alike.",
            "",
            "| engine | cycles/s (median) | rounds min–max | µs/cycle | Redis commands/cycle¹ | vs django-redis² "
            "| per round² (min–max) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, rate, cmds in rows:
            redis_cmds = f"{cmds:.1f}" if "db engine" not in name else "-"
            low, high = spread[name]
            r = ratios[name]
            lines.append(
                f"| {name} | {rate:,.0f} | {low:,.0f}–{high:,.0f} | {1e6 / rate:,.0f} | {redis_cmds} | "
                f"{statistics.median(r):.2f}× | {min(r):.2f}–{max(r):.2f}× |"
            )
        for name, reason in skipped.items():
            lines.append(f"| {name} | skipped: the store refused the option (`{reason[:120]}`) | | | | | |")
        main_name = MAIN
        lines += [
            "",
            "¹ `total_commands_processed` per cycle; commands inside a script count too. Round trips per cycle: "
            "sessionkit 3 (create = `SET NX` or, for a logged-in session, one script that also updates the "
            "per-user index; load = `GET`; save = `SET XX` or the script), Django's cache engine 5 (create = "
            "`exists` + `add`, load = `GET`, save = `GET` + `SET`). `THREAD_CONNECTIONS=0`: every sync call goes "
            "through the shared Tokio runtime (how all calls worked before per-thread connections; same build). "
            "`USER_INDEX=False`: no per-user index, so create and save are a plain `SET NX` / `SET XX`.",
            "",
            "² Median over the rounds of (this engine's cycles/s ÷ django-redis' cycles/s in the same round), and "
            "its range; robust against a neighbour that is busy during some rounds only.",
            "",
            f"**Result:** `{main_name}` runs {statistics.median(ratios[main_name]):.2f}× the cycles per second of "
            f"Django's cache engine with django-redis (median of the per-round ratios; ratio of the medians: "
            f"{medians[main_name] / baseline:.2f}×)"
            + (
                f"; with per-thread connections off, {statistics.median(ratios[SHARED_ONLY]):.2f}×"
                if SHARED_ONLY in ratios
                else ""
            )
            + (
                f"; with `client_cache=on` (zero-round-trip loads of sessions this process has seen), "
                f"{statistics.median(ratios[CLIENT_CACHE]):.2f}× (target ≥ 3×)."
                if CLIENT_CACHE in ratios
                else "; `client_cache=on` (zero-round-trip loads) was not measured: the store refused the option."
            ),
            "",
            "### Read-only requests",
            "",
            "Most requests read the session and change nothing: `SessionStore(key)` + read one key, no save, over "
            f"100 existing sessions; median of {args.rounds} interleaved rounds of {args.cycles:,} reads. With "
            "`client_cache=on` such a load is answered from memory while Redis has reported no change "
            "(docs/redis.md, *Client-side cache*).",
            "",
            "| engine | reads/s (median) | rounds min–max | µs/read | Redis commands/read | vs django-redis |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in read_samples:
            rate = statistics.median(read_samples[name])
            ref = statistics.median(read_samples[BASELINE])
            lines.append(
                f"| {name} | {rate:,.0f} | {min(read_samples[name]):,.0f}–{max(read_samples[name]):,.0f} | "
                f"{1e6 / rate:,.1f} | {read_commands[name]:.2f} | {rate / ref:.2f}× |"
            )
        lines += [
            "",
            "By CPU placement (see *Placement* below): "
            + "; ".join(
                f"{where_name}: {rates[MAIN] / rates[BASELINE]:.2f}× "
                f"(`THREAD_CONNECTIONS=0`: {rates[SHARED_ONLY] / rates[BASELINE]:.2f}×, "
                f"`USER_INDEX=False`: {rates[NO_INDEX] / rates[BASELINE]:.2f}×)"
                for where_name, _, rates in placed
                if all(n in rates for n in (MAIN, SHARED_ONLY, NO_INDEX, BASELINE))
            )
            + ".",
            "",
            "### Where the time goes",
            "",
            "One more round per engine, instrumented: the time inside the engine's store calls (sessionkit: the "
            "calls into the Rust extension — dict → JSON, encoding, the Redis round trip, JSON → dict; Django's "
            "cache engines: redis-py's `execute_command`, i.e. the round trip; pickling happens outside it) and "
            "everything else (Django's `SessionBase`, the engine's Python code, the benchmark loop).",
            "",
            "| engine | µs/cycle | store calls/cycle | µs per store call | µs in store calls | µs elsewhere |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, per_cycle, calls, in_calls in split:
            lines.append(
                f"| {name} | {per_cycle:.0f} | {calls:.1f} | {in_calls / calls if calls else 0:.1f} | "
                f"{in_calls:.0f} | {per_cycle - in_calls:.0f} |"
            )
        lines += [
            "",
            "**Placement.** A round trip costs far more when the Python thread and redis-server run on different "
            "cores (on this VM: waking an idle virtual CPU) than on one; the scheduler's choice changes between "
            "and within runs, and it moves every row above. Here the same measurements with both pinned "
            "(`sched_setaffinity`): one round trip from Python (median of 5 interleaved batches of 2,000 calls; "
            "sessionkit: `Store.exists`), and cycles/s (median of 3 interleaved rounds of 1,000 cycles).",
            "",
            "| placement | redis-py `GET` µs | sessionkit, own connection µs | sessionkit, shared runtime µs |",
            "|---|---:|---:|---:|",
        ]
        for where_name, trips, _ in placed:
            lines.append(
                f"| {where_name} | {trips['redis-py `GET`']:.1f} | {trips['sessionkit, own connection']:.1f} | "
                f"{trips['sessionkit, shared runtime']:.1f} |"
            )
        shown = [name for name, _, _ in placed_engines]
        lines += [
            "",
            "| placement (cycles/s, vs django-redis) | " + " | ".join(SHORT.get(name, name) for name in shown) + " |",
            "|---|" + "---:|" * len(shown),
        ]
        for where_name, _, rates in placed:
            ref = rates[BASELINE]
            lines.append(
                f"| {where_name} | "
                + " | ".join(f"{rates[name]:,.0f} ({rates[name] / ref:.2f}×)" for name in shown)
                + " |"
            )
        lines += [
            "",
            "(Only this Python thread is pinned: with `THREAD_CONNECTIONS=0` the runtime's worker threads still run "
            "where the scheduler puts them, as they would in a server.)",
        ]
        split_by_name = {row[0]: row for row in split}
        lines += [
            "",
            "What this shows: a sessionkit cycle is three calls into Rust and little else, so its speed is the cost "
            "of three Redis round trips: create runs a script that writes the session and its per-user index entry, "
            "save runs the same script, which stops after one `ZSCORE` because the entry still covers the session "
            "(`INDEX_REFRESH`, docs/redis.md); `USER_INDEX=False` shows what the index still costs. With `THREAD_CONNECTIONS=0` every sync call "
            "`block_on`s the process-wide multi-thread Tokio runtime, whose worker thread owns the connection: the "
            "command is handed to the worker and the reply handed back, two cross-thread wake-ups (futex, eventfd) "
            "per round trip. By default each Python thread has its own current-thread runtime and connection "
            "(crates/sessionkit-py/src/local.rs): the calling thread writes the command, waits in `epoll` and reads "
            "the reply itself, with the GIL released, as redis-py does on its blocking socket. The hand-off costs "
            "most when the round trip itself is cheap (one core); when every round trip already pays a cross-core "
            "wake-up, it adds less."
            + (
                f" Django's cache engine with django-redis makes five round trips per cycle and spends "
                f"{split_by_name[BASELINE][1] - split_by_name[BASELINE][3]:.0f} µs outside them (pickling, "
                "django-redis' client layer, `SessionBase`); sessionkit spends "
                f"{split_by_name[MAIN][1] - split_by_name[MAIN][3]:.0f} µs outside its calls. The ratio therefore "
                "grows as round trips get cheaper and shrinks towards 5/3 as they get dearer (a Redis on another "
                "host)."
                if BASELINE in split_by_name and MAIN in split_by_name
                else ""
            ),
            "",
            f"Machine: {os.cpu_count()} cores ({cpu_model()}), Linux {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}, Django {django.get_version()}, "
            f"django-redis {'.'.join(map(str, django_redis.VERSION)) if hasattr(django_redis, 'VERSION') else '?'}, "
            f"redis-py {redis_py.__version__}, Redis {redis_version}, PostgreSQL {pg_version // 10000}. "
            f"Load: {load_text}. The run took {run_seconds:.0f} s.",
            "",
            f"Command: `{args.command}` (builds the wheel, installs it into .venv, runs "
            "crates/sessionkit-py/bench/bench_django.py; `UPDATE_DOC=1` also waits up to 15 minutes for a quiet "
            "machine and rewrites this section).",
            MARK_END,
        ]
        section = "\n".join(lines)
        print()
        print(section)
        if args.profile:
            name, store_class, overrides = engines(server.url)[0]
            print(profile(store_class, overrides, 2000))
        if args.doc:
            write_doc(args.doc, section)
            print(f"\nwrote {args.doc}")
        client.close()
        if not args.no_asgi:
            asgi_section = run_asgi(args, quiet)
            if args.doc:
                write_doc(args.doc, asgi_section, asgi_bench.MARK_START, asgi_bench.MARK_END)
                print(f"\nwrote {args.doc}")
    finally:
        from django.db import connections

        try:
            connections.close_all()
        except Exception:
            pass
        server.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
