#!/usr/bin/env python3
"""Writes the published OpenAPI schemas of the CRDs that ctl/tests/manifests.rs
validates envoy/istio and envoy/envoy-gateway against, from checkouts of the
projects that publish them, at release tags:

    python3 tools/vendor-crd-schemas.py ISTIO_CHECKOUT GATEWAY_API_CHECKOUT ENVOY_GATEWAY_CHECKOUT

Schemas are kept whole, except Envoy Gateway's EnvoyProxy: 1.4 MB (it
embeds Kubernetes' pod spec), cut down to the fields the shipped manifest
sets (each object on the way keeps only the named property; the fields
themselves keep their whole published schema). Needs PyYAML and git.
"""
import json
import subprocess
import sys

import yaml

ISTIO = ("istio/istio", "1.29.6", "manifests/charts/base/files/crd-all.gen.yaml")
GATEWAY_API = ("kubernetes-sigs/gateway-api", "v1.6.1",
               "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml")
EG = "charts/gateway-crds-helm/templates/generated/gateway.envoyproxy.io_{}.yaml"
ENVOY_GATEWAY = ("envoyproxy/gateway", "v1.9.0")
OUT = "ctl/tests/manifests/schemas/{}.json"
# The EnvoyProxy fields envoy/envoy-gateway/native.yaml sets (whole subtrees).
PROXY_PATHS = [
    ["spec", "provider", "type"],
    ["spec", "provider", "kubernetes", "envoyDeployment", "container", "image"],
    ["spec", "dynamicModules"],
    ["spec", "bootstrap"],
    ["apiVersion"],
    ["kind"],
    ["metadata"],
]


def crds(checkout, tag, path):
    text = subprocess.run(
        ["git", "-C", checkout, "show", f"{tag}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout
    # Helm charts wrap CRDs in conditionals.
    body = "\n".join(l for l in text.splitlines() if not l.startswith("{{"))
    return [d for d in yaml.safe_load_all(body) if d]


def schema(docs, kind, version, source):
    (crd,) = [d for d in docs if d["spec"]["names"]["kind"] == kind]
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    out = v["schema"]["openAPIV3Schema"]
    out["$comment"] = f"{kind} {version}, published schema, from {source}"
    return out


def prune(node, paths):
    """`node` with, at each level, only the properties the paths name."""
    heads = {}
    for path in paths:
        heads.setdefault(path[0], []).append(path[1:])
    kept = {k: v for k, v in node.items() if k != "properties"}
    required = [r for r in node.get("required", []) if r in heads]
    kept.pop("required", None)
    if required:
        kept["required"] = required
    # CEL rules may name fields that were cut: they are not checked anyway.
    kept.pop("x-kubernetes-validations", None)
    kept["properties"] = {}
    for name, rests in heads.items():
        child = node["properties"][name]
        whole = any(not rest for rest in rests)
        kept["properties"][name] = child if whole else prune(child, rests)
    return kept


def write(name, doc):
    with open(OUT.format(name), "w") as out:
        json.dump(doc, out, sort_keys=True, separators=(",", ":"))
        out.write("\n")


def main():
    istio, gateway_api, envoy_gateway = sys.argv[1:4]
    repo, tag, path = ISTIO
    docs = crds(istio, tag, path)
    write("WasmPlugin", schema(docs, "WasmPlugin", "v1alpha1", f"{repo} {tag} {path}"))
    write("VirtualService", schema(docs, "VirtualService", "v1", f"{repo} {tag} {path}"))
    repo, tag, path = GATEWAY_API
    docs = crds(gateway_api, tag, path)
    write("HTTPRoute", schema(docs, "HTTPRoute", "v1", f"{repo} {tag} {path}"))
    repo, tag = ENVOY_GATEWAY
    path = EG.format("envoyextensionpolicies")
    docs = crds(envoy_gateway, tag, path)
    write("EnvoyExtensionPolicy",
          schema(docs, "EnvoyExtensionPolicy", "v1alpha1", f"{repo} {tag} {path}"))
    path = EG.format("envoyproxies")
    proxy = schema(crds(envoy_gateway, tag, path), "EnvoyProxy", "v1alpha1", "")
    proxy = prune(proxy, PROXY_PATHS)
    proxy["$comment"] = (f"EnvoyProxy v1alpha1, published schema cut to the fields "
                         f"envoy/envoy-gateway/native.yaml sets by tools/vendor-crd-schemas.py, "
                         f"from {repo} {tag} {path}")
    write("EnvoyProxy", proxy)


if __name__ == "__main__":
    main()
