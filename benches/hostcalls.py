#!/usr/bin/env python3
"""Counts a proxy-wasm filter's hostcalls for one request.

A small proxy-wasm ABI 0.2.1 host on wasmtime (PyPI `wasmtime`): it loads a
module, configures it, runs one HTTP request through it the way Envoy does
(context create, request headers, response headers, one response body
chunk, log, done, delete; like Envoy, it skips a callback the module does
not export) and prints, as JSON, every call into the VM (`callbacks`,
including `proxy_on_memory_allocate`, which the host calls to hand the
module a buffer) and every call out of it (`calls`), in order.

    hostcalls.py MODULE.wasm [CONFIGURATION [REQUESTS [END]]]

It runs REQUESTS requests (default 2: the first warms lazily initialized
state) and reports the last one's calls; then the calls the root context
makes at END (`end_calls`): `tick` (default: its timer), `configure` (the
same configuration applied again, as a push does) or `done` (the VM
stopping). There a filter publishes what its requests held back. The
calls of the first configuration are reported too (`configure_calls`).

The request: `GET /users` on route `users` with `x-user-id: u1`, the
headers Envoy's connection manager holds when filters run, no
`traceparent`; the response: 200 with a small body, 1 ms later.
"""
import json
import struct
import sys

import wasmtime

REQUEST_HEADERS = [
    (":authority", "127.0.0.1:10000"),
    (":path", "/users"),
    (":method", "GET"),
    (":scheme", "http"),
    ("user-agent", "wrk"),
    ("x-user-id", "u1"),
    ("x-forwarded-proto", "http"),
    ("x-request-id", "6b3a1f0e-9a57-4c1e-8a52-1d2e3f405162"),
]
RESPONSE_HEADERS = [
    (":status", "200"),
    ("content-length", "7"),
    ("content-type", "text/plain"),
    ("x-upstream", "legacy"),
    ("date", "Sat, 22 Nov 2025 20:00:00 GMT"),
    ("server", "envoy"),
    ("x-envoy-upstream-service-time", "0"),
]
PROPERTIES = {
    ("xds", "route_name"): b"users",
    ("response", "code"): struct.pack("<Q", 200),
    ("response", "code_details"): b"via_upstream",
    ("request", "duration"): struct.pack("<Q", 1_000_000),
}
NOW_NS = 1_764_000_000_000_000_000

# Map types of the ABI.
REQUEST, RESPONSE = 0, 2


def serialize(pairs):
    out = struct.pack("<I", len(pairs))
    for n, v in pairs:
        out += struct.pack("<II", len(n), len(v))
    for n, v in pairs:
        out += n.encode() + b"\0" + v.encode() + b"\0"
    return out


class Host:
    def __init__(self, path, configuration):
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        self.store.set_wasi(wasi)
        self.module = wasmtime.Module.from_file(self.engine, path)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.configuration = configuration.encode()
        self.maps = {REQUEST: list(REQUEST_HEADERS), RESPONSE: list(RESPONSE_HEADERS)}
        self.calls = []
        self.callbacks = []
        self.metrics = 0
        own = {
            "proxy_get_buffer_bytes": self.get_buffer_bytes,
            "proxy_get_header_map_pairs": self.get_header_map_pairs,
            "proxy_get_header_map_value": self.get_header_map_value,
            "proxy_replace_header_map_value": self.replace_header_map_value,
            "proxy_add_header_map_value": self.add_header_map_value,
            "proxy_remove_header_map_value": self.remove_header_map_value,
            "proxy_get_property": self.get_property,
            "proxy_define_metric": self.define_metric,
            "proxy_get_current_time_nanoseconds": self.current_time,
            "proxy_call_foreign_function": self.call_foreign_function,
            "proxy_log": self.log,
        }
        # WASI's clock is a hostcall too (Envoy serves it): counted, the
        # rest of WASI is wasmtime's.
        self.linker.allow_shadowing = True
        for imp in self.module.imports:
            if imp.module == "wasi_snapshot_preview1" and imp.name == "clock_time_get":
                self.linker.define_func(
                    imp.module,
                    imp.name,
                    imp.type,
                    self.counted("wasi:clock_time_get", self.clock_time_get, imp.type),
                    access_caller=True,
                )
            if imp.module != "env":
                continue
            name = imp.name
            handler = own.get(name, lambda caller, *args: 0)
            self.linker.define_func(
                "env", name, imp.type, self.counted(name, handler, imp.type), access_caller=True
            )
        self.instance = self.linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)
        self.memory = self.exports["memory"]

    def counted(self, name, handler, ty):
        returns = len(ty.results) > 0

        def call(caller, *args):
            self.calls.append(name)
            result = handler(caller, *args)
            return result if returns else None

        return call

    # Memory helpers.
    def read(self, caller, ptr, size):
        return bytes(self.memory.read(caller, ptr, ptr + size))

    def give(self, caller, data, ptr_ptr, size_ptr):
        """Hands `data` to the module as the ABI does: in a buffer the module
        allocates (a call into the VM)."""
        self.callbacks.append("proxy_on_memory_allocate")
        ptr = self.exports["proxy_on_memory_allocate"](caller, len(data))
        self.memory.write(caller, data, ptr)
        self.memory.write(caller, struct.pack("<I", ptr), ptr_ptr)
        self.memory.write(caller, struct.pack("<I", len(data)), size_ptr)
        return 0

    # The imports with results.
    def get_buffer_bytes(self, caller, kind, start, size, ptr_ptr, size_ptr):
        start, size = start & 0xFFFFFFFF, size & 0xFFFFFFFF
        data = self.configuration[start : start + size]
        if not data:
            return 1  # NotFound
        return self.give(caller, data, ptr_ptr, size_ptr)

    def get_header_map_pairs(self, caller, kind, ptr_ptr, size_ptr):
        return self.give(caller, serialize(self.maps.get(kind, [])), ptr_ptr, size_ptr)

    def get_header_map_value(self, caller, kind, kptr, klen, ptr_ptr, size_ptr):
        key = self.read(caller, kptr, klen).decode()
        for n, v in self.maps.get(kind, []):
            if n == key:
                return self.give(caller, v.encode(), ptr_ptr, size_ptr)
        return 1

    def replace_header_map_value(self, caller, kind, kptr, klen, vptr, vlen):
        key = self.read(caller, kptr, klen).decode()
        value = self.read(caller, vptr, vlen).decode("latin-1")
        pairs = [(n, v) for n, v in self.maps.get(kind, []) if n != key]
        self.maps[kind] = pairs + [(key, value)]
        return 0

    def add_header_map_value(self, caller, kind, kptr, klen, vptr, vlen):
        key = self.read(caller, kptr, klen).decode()
        value = self.read(caller, vptr, vlen).decode("latin-1")
        self.maps.setdefault(kind, []).append((key, value))
        return 0

    def remove_header_map_value(self, caller, kind, kptr, klen):
        key = self.read(caller, kptr, klen).decode()
        self.maps[kind] = [(n, v) for n, v in self.maps.get(kind, []) if n != key]
        return 0

    def get_property(self, caller, pptr, plen, ptr_ptr, size_ptr):
        path = tuple(p.decode() for p in self.read(caller, pptr, plen).split(b"\0") if p)
        value = PROPERTIES.get(path)
        if value is None:
            return 1
        return self.give(caller, value, ptr_ptr, size_ptr)

    def log(self, caller, level, ptr, size):
        if level >= 3:  # warn and above
            sys.stderr.write(self.read(caller, ptr, size).decode("utf-8", "replace") + "\n")
        return 0

    def define_metric(self, caller, kind, nptr, nlen, id_ptr):
        self.metrics += 1
        self.memory.write(caller, struct.pack("<I", self.metrics), id_ptr)
        return 0

    def current_time(self, caller, ptr):
        self.memory.write(caller, struct.pack("<Q", NOW_NS), ptr)
        return 0

    def clock_time_get(self, caller, clock, precision, ptr):
        self.memory.write(caller, struct.pack("<Q", NOW_NS), ptr)
        return 0

    def call_foreign_function(self, caller, nptr, nlen, aptr, alen, ptr_ptr, size_ptr):
        return 0

    # Calls into the VM: only those the module exports, as Envoy does.
    def enter(self, name, *args):
        function = self.exports.get(name)
        if function is None:
            return 1
        self.callbacks.append(name)
        return function(self.store, *args)


def main():
    path = sys.argv[1]
    configuration = sys.argv[2] if len(sys.argv) > 2 else ""
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    end = sys.argv[4] if len(sys.argv) > 4 else "tick"
    host = Host(path, configuration)
    if "_initialize" in host.exports:
        host.exports["_initialize"](host.store)
    host.enter("proxy_on_context_create", 1, 0)
    host.enter("proxy_on_vm_start", 1, 0)
    if not host.enter("proxy_on_configure", 1, len(host.configuration)):
        sys.exit("the module refused its configuration")
    configure_calls = list(host.calls)
    # The first request warms lazily initialized state; the last is counted.
    for context in range(2, 2 + max(requests, 1)):
        host.calls.clear()
        host.callbacks.clear()
        host.maps = {REQUEST: list(REQUEST_HEADERS), RESPONSE: list(RESPONSE_HEADERS)}
        host.enter("proxy_on_context_create", context, 1)
        host.enter("proxy_on_request_headers", context, len(REQUEST_HEADERS), 1)
        host.enter("proxy_on_response_headers", context, len(RESPONSE_HEADERS), 0)
        host.enter("proxy_on_response_body", context, 7, 1)
        host.enter("proxy_on_log", context)
        host.enter("proxy_on_done", context)
        host.enter("proxy_on_delete", context)
    request_headers = [list(p) for p in host.maps[REQUEST]]
    calls, callbacks = list(host.calls), list(host.callbacks)
    host.calls.clear()
    if end == "tick":
        host.enter("proxy_on_tick", 1)
    elif end == "configure":
        host.enter("proxy_on_configure", 1, len(host.configuration))
    elif end == "done":
        host.enter("proxy_on_done", 1)
    else:
        sys.exit(f"END is tick, configure or done, not {end!r}")
    end_calls = list(host.calls)
    host.calls, host.callbacks = calls, callbacks
    print(
        json.dumps(
            {
                "callbacks": host.callbacks,
                "calls": host.calls,
                "request_headers": request_headers,
                "configure_calls": configure_calls,
                "end_calls": end_calls,
            }
        )
    )


if __name__ == "__main__":
    main()
