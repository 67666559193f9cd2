#!/usr/bin/env python3
"""Writes the realistic seed inputs of every fuzz target into fuzz/corpus/<target>/.

Run from anywhere: `python3 fuzz/seeds/make_seeds.py`. The committed corpus is
these seeds plus what the fuzzer found, minimized (`cargo +nightly fuzz cmin`).
"""
import hashlib
import json
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


# ---- config: the shipped config, the README's, the tests' JSON literals ----
ecds = json.loads((ROOT / "envoy/ecds/turnout.json").read_text())
put("config", ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"])
readme = (ROOT / "README.md").read_text()
for block in re.findall(r"```json\n(.*?)```", readme, re.S):
    put("config", block)
for test in sorted((ROOT / "filter/tests").glob("*.rs")):
    # br#"..."# literals that look like JSON documents.
    for lit in re.findall(r'br#"(\{.*?)"#', test.read_text(), re.S):
        put("config", lit)
for text in [
    "",
    "{}",
    '{"version": 1.0, "retry_after_s": 120.0, "splits": [{"name": "a", "match": {"prefix": "/"}, "stable": "s", "targets": [{"cluster": "t", "weight": 12.5}]}]}',
    '{"splits": [{"name": "s", "match": {"path": "/x", "methods": ["GET"]}, "stable": "a", "targets": [{"cluster": "b", "schedule": [{"at": "2026-12-01T09:00:00Z", "weight": 5}, {"at": "2026-12-01T10:00:00.5+01:00", "weight": 25}]}]}]}',
    '{"mode": "maintenance", "allow_paths": ["/health"], "maintenance_body": "down", "splits": []}',
    '{"splits": [{"name": "a", "match": {"route": "r"}, "stable": "s", "targets": [{"cluster": "t", "weight": 60}, {"cluster": "u", "weight": 40.01}]}]}',
    '{"trace": {"response_header": "x-trace-id", "tracestate": true}, "debug": true}',
    '{"splits": [{"name": "a", "match": {"route": "r"}, "stable": "s", "targets": [], "guard": {"window_s": 60}}]}',
]:
    put("config", text)

# ---- cookie: <name length byte><name><cookie header> ----
for name, header in [
    (b"uid", b"uid=42"),
    (b"uid", b"theme=dark; uid=user-7; junk"),
    (b"uid", b'a=1;uid="quoted"; b=2'),
    (b"session", b"  session = abc ; session=second"),
    (b"uid", b"garbage; ;;=; =x; uid=7"),
    (b"uid", b"a=\xff\xfe; uid=\xc3\x28"),
    (b"uid", b"; ".join(b"junk%d" % i for i in range(50)) + b"; uid=9"),
]:
    put("cookie", bytes([len(name)]) + name + header)

# ---- query: <name length byte><name><path> ----
for name, path in [
    (b"uid", b"/users?uid=42"),
    (b"uid", b"/users?a=1&uid=a%20b+c&b=2#frag"),
    (b"uid", b"/users?u%69d=%E2%9C%93"),
    (b"u", b"/?&&=&u=%zz%4&u=second"),
    (b"uid", b"/users"),
    (b"uid", b"/users?uid"),
]:
    put("query", bytes([len(name)]) + name + path)

# ---- traceparent: a traceparent or a tracestate ----
for tp in [
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra",
    b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    b"\x07fastapirojo=00f067aa0ba902b7, congo=t61rcWkgMzE,turnout=old,,b=2",
    b"\x03a,b" + b",".join(b"k%d=v" % i for i in range(40)),
]:
    put("traceparent", tp)

# ---- wire: serialized header maps as proxy_get_header_map_pairs gives them ----
def serialize(pairs):
    out = struct.pack("<I", len(pairs))
    for n, v in pairs:
        out += struct.pack("<II", len(n), len(v))
    for n, v in pairs:
        out += n + b"\0" + v + b"\0"
    return out


for pairs in [
    [(b":path", b"/users?uid=1"), (b":method", b"GET"), (b"x-user-id", b"alice"), (b"cookie", b"uid=7")],
    [(b"x-user-id", b"\xff\xfe"), (b"empty", b""), (b"x-user-id", b"second")],
    [],
]:
    put("wire", serialize(pairs))
put("wire", b"\xff\xff\xff\xff")
put("wire", b"x-user-id\xffalice\xffcookie\xffuid=1")
