#!/usr/bin/env python3
"""Fixtures for sessionkit's pickle and Django cache value codecs, made by real CPython.

The Rust tests read the committed output files, so Python is only needed to regenerate them:

    python3 -m venv /tmp/picklevenv
    /tmp/picklevenv/bin/pip install lz4 zstandard msgpack
    /tmp/picklevenv/bin/python crates/sessionkit/tests/data/gen_cache_fixtures.py

writes, next to this script:

- ``pickle_cases.json.zlib``: zlib-compressed JSON, a fixed list of session dicts (as JSON text) with
  ``pickle.dumps(json.loads(text), 4)`` and ``(..., 5)`` in hex. Compressed because two cases hold strings larger
  than 64 KiB (CPython writes those outside pickle frames).
- ``cache_values.json``: what django-redis stores for a few sessions with every serializer x compressor,
  made with the same calls as django-redis 7.0 (``pickle.dumps(v, 4)``, ``json.dumps(v)``, ``msgpack.dumps(v)``;
  ``zlib.compress(b, 6)``, ``gzip.compress(b)``, ``lz4.frame.compress(b)``, zstd level 3, ``lzma.compress(b, preset=4)``,
  each only above its ``min_length``), plus pickles of values a session codec must refuse (datetime, set, ...).
  gzip output uses a fixed mtime so the fixture is reproducible; django-redis uses the current time.

``--check-rust DIR`` decodes, django-redis' way, the values the ignored Rust test
``write_cache_values_for_python`` wrote to DIR (``SESSIONKIT_CACHE_VALUES_OUT=DIR``) and compares them with the
sessions written beside them; uncompressed pickles must also equal ``pickle.dumps`` byte for byte.

``--random N PATH [SEED]`` instead writes N random JSON-shaped session dicts with their pickles as JSON lines, for the
ignored Rust test ``random_python_pickles`` (run it with ``SESSIONKIT_PICKLE_RANDOM_CASES=PATH``).

Every dict is built by ``json.loads`` (as Django builds a session dict from its JSON), so its pickle shows
``json.loads``' sharing of repeated dict keys.
"""

import collections
import datetime
import decimal
import gzip
import json
import lzma
import pickle
import random
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
GZIP_MTIME = 1700000000


def case(name, obj):
    text = json.dumps(obj)
    d = json.loads(text)
    p4 = pickle.dumps(d, 4)
    p5 = pickle.dumps(d, 5)
    return {"name": name, "json": text, "p4": p4.hex(), "p5": p5.hex()}


def fixed_cases():
    rng = random.Random(20261122)
    cases = []
    cases.append(case("empty", {}))
    cases.append(case("one_item", {"k": "v"}))
    cases.append(case("two_items", {"a": 1, "b": 2}))
    cases.append(case("scalars", {"none": None, "t": True, "f": False, "zero": 0, "one": 1}))
    cases.append(case("ints", {
        "b1": 255, "b2": 256, "b2max": 65535, "b4": 65536, "neg1": -1, "neg": -129,
        "i32max": 2**31 - 1, "i32min": -2**31, "over": 2**31, "under": -2**31 - 1,
        "l127": 127, "m128": -128, "m256": -256, "m32768": -32768, "p32767": 32767,
        "i64": 2**63 - 1, "u64": 2**64, "big": 12345678901234567890123456789,
        "negbig": -(10**40), "huge": 3**1000, "neghuge": -(7**700),
    }))
    cases.append(case("floats", {
        "a": 1.5, "b": -0.0, "c": 1e16, "d": 1e-05, "e": 2.5e-07, "f": 1.7976931348623157e308,
        "g": 5e-324, "h": 0.1, "i": 1.0, "j": -123.456,
    }))
    cases.append(case("unicode", {
        "latin": "b\u00e4r", "del": "\x7f", "bmp": "\u30bb\u30c3\u30b7\u30e7\u30f3", "astral": "\U0001f600",
        "one_latin1": "\u00e9", "one_bmp": "\u0100", "ctrl": "\x00\n\t", "": "",
    }))
    cases.append(case("strings_255_256", {"s255": "x" * 255, "s256": "y" * 256, "u256": "\u00e9" * 128,
                                          "long": "z" * 5000}))
    cases.append(case("big_string_value", {"before": "b", "big": "a" * 70000, "after": [1, "c", "after"]}))
    cases.append(case("big_strings_at_frame_edges", {
        "exact": "e" * 65536, "below": "f" * 65535, "small": "g", "list": ["h" * 65540, "i", 1],
    }))
    cases.append(case("frames_split_many_items", {
        "items": ["%05d" % i + "x" * (300 + i % 50) for i in range(400)],
        "tail": {"k%d" % i: i for i in range(40)},
    }))
    cases.append(case("nested", {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}, "e": [[], {}, [[]], [{}]]}))
    cases.append(case("list_sizes", {
        "l0": [], "l1": [1], "l2": [1, 2], "l999": list(range(999)), "l1000": list(range(1000)),
        "l1001": list(range(1001)),
    }))
    cases.append(case("dict_1000", {"d": {"k%d" % i: i for i in range(1000)}}))
    cases.append(case("dict_1001", {"k%d" % i: i % 7 for i in range(1001)}))
    cases.append(case("dict_2000", {"d2000": {str(i): None for i in range(2000)}}))
    cases.append(case("shared_keys", {
        "rows": [{"product_name": "p%d" % i, "qty": i, "a": "a"} for i in range(300)],
        "product_name": "product_name",
    }))
    cases.append(case("singletons", {"x": "x", "y": ["x", "", "", "\u00ff", "\u00ff", "\u0100", "\u0100"],
                                     "": {"": ""}}))
    cases.append(case("auth", {
        "_auth_user_id": "1", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "%064x" % rng.getrandbits(256), "_session_expiry": 300,
        "cart": [{"sku": "A-%d" % i, "qty": i, "price": i * 1.25} for i in range(5)],
    }))
    cases.append(case("memo_over_256", {"k%03d" % i: ["v%03d" % i, {"n": i}] for i in range(200)}))
    return cases


# ----------------------------------------------------------------------------------------------- random

def random_string(rng, key_pool, long_ok):
    r = rng.random()
    if r < 0.08:
        return ""
    if r < 0.2:
        return rng.choice("ab\u00e9\u00ff\x00\n\u0100\u20ac\U0001f600")
    if r < 0.35:
        return rng.choice(key_pool)
    if long_ok and r < 0.37:
        return "L%d" % rng.randrange(10**6) + "q" * rng.choice([200, 300, 70000, 65536, 65530, 131072])
    alphabet = "abcxyz _-/\\\"'\u00e4\u00e9\u00ff\u0100\u30bb\u20ac\U0001f600\x01\x7f"
    n = rng.choice([1, 2, 3, 5, 8, 20, 100, 255, 256, 300])
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_number(rng):
    r = rng.random()
    if r < 0.3:
        return rng.randrange(-300, 300)
    if r < 0.45:
        return rng.randrange(-2**32, 2**32)
    if r < 0.55:
        return rng.randrange(-2**70, 2**70)
    if r < 0.6:
        return rng.choice([255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31, -2**31 - 1, -128, -129, -256, -257,
                           2**63, -2**63, 2**64, -(2**64), 10**100, -(10**100)])
    if r < 0.85:
        return rng.uniform(-1e6, 1e6)
    return rng.choice([0.0, -0.0, 1e16, 1e-05, 2.5e-07, 1e300, -1e-300, 0.1, 1.0, 5e-324])


def random_value(rng, depth, key_pool, budget):
    r = rng.random()
    if depth > 0 and r < 0.18:
        if rng.random() < 0.03:
            # Big lists hold scalars only, so sizes stay bounded.
            return [random_value(rng, 0, key_pool, budget) for _ in range(rng.choice([999, 1000, 1001]))]
        n = rng.choice([0, 1, 2, 3, 5, 10])
        return [random_value(rng, depth - 1, key_pool, budget) for _ in range(n)]
    if depth > 0 and r < 0.33:
        return random_dict(rng, depth - 1, key_pool, budget)
    if r < 0.6:
        budget[0] -= 1
        return random_string(rng, key_pool, budget[0] > 0)
    if r < 0.85:
        return random_number(rng)
    return rng.choice([None, True, False])


def random_dict(rng, depth, key_pool, budget):
    n = rng.choice([0, 1, 2, 3, 4, 6, 10])
    if rng.random() < 0.02:
        # Big dicts hold scalars only, so sizes stay bounded.
        n, depth = rng.choice([999, 1000, 1001]), 0
    out = {}
    for _ in range(n):
        key = rng.choice(key_pool) if rng.random() < 0.5 else random_string(rng, key_pool, False)
        out[key] = random_value(rng, depth, key_pool, budget)
    return out


def random_cases(count, path, seed=1234):
    rng = random.Random(seed)
    with open(path, "w") as out:
        for i in range(count):
            key_pool = ["k", "name", "product_name", "", "\u00e9", "_auth_user_id", "cart", "x" * 300, "q%d" % i]
            budget = [1]  # at most one string may be very long per case, to keep the file small
            d = random_dict(rng, 4, key_pool, budget)
            out.write(json.dumps(case("random_%d" % i, d)) + "\n")


# ------------------------------------------------------------------------------------------ cache values

def cache_values():
    import lz4.frame
    import msgpack
    import zstandard

    sessions = [
        ("empty", {}),
        ("tiny", {"a": 1}),
        ("auth", {
            "_auth_user_id": "42", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": "ab" * 32, "_session_expiry": 1209600, "testcookie": "worked",
        }),
        ("mixed", {
            "name": "b\u00e4r \U0001f600", "cart": [{"sku": "A-1", "qty": 2, "price": 9.99}, {"sku": "B-2", "qty": 1}],
            "flags": [True, False, None], "n": -12345, "u64": 2**64 - 1, "i64": -2**63, "f": 1e16,
            "nested": {"a": {"b": {"c": []}}}, "text": "lorem ipsum " * 20,
        }),
        ("bigint", {"big": 2**64, "x": "y" * 40}),
    ]

    serializers = {
        "pickle4": lambda v: pickle.dumps(v, 4),
        "pickle5": lambda v: pickle.dumps(v, 5),
        "json": lambda v: json.dumps(v).encode(),
        "msgpack": lambda v: msgpack.dumps(v),
    }

    def over(limit, f):
        return lambda b: f(b) if len(b) > limit else b

    compressors = {
        "none": lambda b: b,
        "zlib": over(15, lambda b: zlib.compress(b, 6)),
        "gzip": over(15, lambda b: gzip.compress(b, mtime=GZIP_MTIME)),
        "lz4": over(15, lambda b: lz4.frame.compress(b)),
        "zstd": over(15, lambda b: zstandard.ZstdCompressor(level=3).compress(b)),
        "lzma": over(100, lambda b: lzma.compress(b, preset=4)),
    }

    out_sessions = []
    values = []
    for index, (name, obj) in enumerate(sessions):
        text = json.dumps(obj)
        d = json.loads(text)
        out_sessions.append({"name": name, "json": text})
        for sname, ser in serializers.items():
            try:
                raw = ser(d)
            except OverflowError:
                values.append({"session": index, "serializer": sname, "error": "OverflowError"})
                continue
            for cname, comp in compressors.items():
                values.append({"session": index, "serializer": sname, "compressor": cname, "hex": comp(raw).hex()})

    class Point(object):
        def __init__(self):
            self.x = 1

    globals()["Point"] = Point
    Point.__module__ = "myapp.models"
    Point.__qualname__ = "Point"
    sys.modules["myapp.models"] = sys.modules[__name__]
    sys.modules.setdefault("myapp", sys.modules[__name__])

    recursive = []
    recursive.append(recursive)
    refused = [
        ("datetime", {"when": datetime.datetime(2030, 1, 2, 3, 4, 5)}, "datetime.datetime"),
        ("date", {"when": datetime.date(2030, 1, 2)}, "datetime.date"),
        ("decimal", {"price": decimal.Decimal("9.99")}, "decimal.Decimal"),
        ("ordered_dict", {"o": collections.OrderedDict(a=1)}, "collections.OrderedDict"),
        ("instance", {"p": Point()}, "myapp.models.Point"),
        ("set", {"s": {1, 2}}, "set"),
        ("frozenset", {"s": frozenset([1])}, "frozenset"),
        ("bytes", {"b": b"\x00\x01"}, "bytes"),
        ("int_key", {1: "a"}, "key:int"),
        ("tuple_key", {("a", 1): "a"}, "key:tuple"),
        ("none_key", {None: "a"}, "key:NoneType"),
        ("recursive", {"r": recursive}, "recursive"),
        ("top_level_list", [1, 2], "not_an_object"),
    ]
    pickles = []
    for name, obj, expect in refused:
        for proto in (2, 4, 5):
            pickles.append({"name": "%s_p%d" % (name, proto), "hex": pickle.dumps(obj, proto).hex(), "error": expect})
    pickles.append({"name": "bytearray_p5", "hex": pickle.dumps({"b": bytearray(b"ab")}, 5).hex(),
                    "error": "bytearray"})

    accepted = {"s": "t\u00e9\U0001f600", "i": [1, -2, 300, 70000, -(2**40), 2**80], "f": 1.25, "n": None,
                "b": [True, False], "t": (1, "two", [3]), "t1": (1,), "t0": (), "t4": (1, 2, 3, 4),
                "d": {"x": {"y": "z"}}}
    expected = json.dumps(accepted)
    for proto in range(0, 6):
        pickles.append({"name": "accepted_p%d" % proto, "hex": pickle.dumps(accepted, proto).hex(), "ok": expected})
    # Python's own pure-Python pickler batches differently (SETITEMS of 1000 items), also valid.
    pickles.append({"name": "accepted_pure_python_p4", "hex": pickle._dumps(accepted, 4).hex(), "ok": expected})

    return {
        "generator": "tests/data/gen_cache_fixtures.py",
        "python": sys.version.split()[0],
        "lz4": lz4.__version__,
        "zstandard": zstandard.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "gzip_mtime": GZIP_MTIME,
        "sessions": out_sessions,
        "values": values,
        "pickles": pickles,
    }


def check_rust(directory):
    import lz4.frame
    import msgpack
    import zstandard

    decompressors = {
        "none": lambda b: b,
        "zlib": zlib.decompress,
        "gzip": gzip.decompress,
        "lz4": lz4.frame.decompress,
        "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b, max_output_size=1 << 26),
        "lzma": lzma.decompress,
    }
    loaders = {
        "pickle4": pickle.loads,
        "pickle5": pickle.loads,
        "json": lambda b: json.loads(b.decode()),
        "msgpack": lambda b: msgpack.loads(b, raw=False),
    }
    checked = 0
    failures = []
    for path in sorted(Path(directory).glob("*.bin")):
        name, sname, cname, _ = path.name.split(".")
        expected = json.loads((Path(directory) / (name + ".json")).read_text())
        data = path.read_bytes()
        try:
            # django-redis: int(value) first, then the compressor (errors fall back to the raw bytes).
            try:
                int(data)
                failures.append("%s: looks like an int" % path.name)
                continue
            except ValueError:
                pass
            try:
                raw = decompressors[cname](data)
            except Exception:
                raw = data
            value = loaders[sname](raw)
            if value != expected:
                failures.append("%s: decodes to a different value" % path.name)
            if sname.startswith("pickle") and cname == "none":
                if pickle.dumps(expected, int(sname[-1])) != data:
                    failures.append("%s: differs from pickle.dumps" % path.name)
            checked += 1
        except Exception as e:
            failures.append("%s: %r" % (path.name, e))
    print("checked %d values, %d failures" % (checked, len(failures)))
    for failure in failures:
        print("  " + failure)
    return 1 if failures or not checked else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-rust":
        sys.exit(check_rust(sys.argv[2]))
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--random":
        random_cases(int(sys.argv[2]), sys.argv[3], *[int(a) for a in sys.argv[4:]])
        return
    payload = json.dumps({"python": sys.version.split()[0], "cases": fixed_cases()}, indent=0).encode()
    (HERE / "pickle_cases.json.zlib").write_bytes(zlib.compress(payload, 9))
    (HERE / "cache_values.json").write_text(json.dumps(cache_values(), indent=1) + "\n")


if __name__ == "__main__":
    main()
