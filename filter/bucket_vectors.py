#!/usr/bin/env python3
"""Regenerates filter/src/bucket_vectors.in with an independent XXH64 (pip install xxhash).

The vectors pin the frozen bucketing function of the contract:
bucket = XXH64(seed=0, salt + ":" + key) mod 10000.
"""
import xxhash

CASES = [
    ("users", "alice"), ("users", "bob"), ("users", ""), ("users", "qa-1"),
    ("users", "user-0"), ("users", "user-9999"), ("checkout", "alice"),
    ("checkout", "42"), ("", "alice"),
    ("migration-2026", "550e8400-e29b-41d4-a716-446655440000"),
    ("users", "ünïcødé"), ("a:b", "c:d"), ("users", "x" * 300),
    ("salt with spaces", "key with spaces"),
]

print("&[")
for salt, key in CASES:
    bucket = xxhash.xxh64((salt + ":" + key).encode(), seed=0).intdigest() % 10000
    print(f'    ("{salt}", "{key}", {bucket}),')
print("]")
