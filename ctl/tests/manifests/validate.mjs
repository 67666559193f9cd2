// Validates Kubernetes manifests against published schemas, for
// ctl/tests/manifests.rs, which installs the packages beside a copy of
// this file and runs it:
//
//   node validate.mjs SCHEMA_DIR FILE...
//
// Every document against its CRD's published OpenAPI schema (SCHEMA_DIR,
// vendored by tools/vendor-crd-schemas.py) with ajv, where a field the
// schema does not declare is an error, as `kubectl apply --validate=strict`
// makes it (CEL rules, x-kubernetes-validations, are not evaluated); and
// Istio's and Gateway API's kinds also with the models npm publishes
// (@kubernetes-models/istio, /gateway-api: a second reading, though one
// that lets unknown fields through). Prints the documents as a JSON array
// on success; prints every problem and exits 1 otherwise.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

const [schemaDir, ...files] = process.argv.slice(2);

const models = {
  "extensions.istio.io/v1alpha1 WasmPlugin": WasmPlugin,
  "networking.istio.io/v1 VirtualService": VirtualService,
  "gateway.networking.k8s.io/v1 HTTPRoute": HTTPRoute,
};

// Kubernetes' structural schemas prune unknown fields; strict validation
// refuses them: every object that declares properties and does not
// preserve unknown fields gets additionalProperties: false.
function strict(node) {
  if (Array.isArray(node)) return node.map(strict);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) out[key] = strict(value);
  if (node.properties && !node["x-kubernetes-preserve-unknown-fields"] && !("additionalProperties" in node)) {
    out.additionalProperties = false;
  }
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false });
// Formats Kubernetes defines and ajv does not know: accepted, not checked.
for (const format of ["int-or-string", "int32", "int64", "byte", "date-time", "double", "float"]) {
  ajv.addFormat(format, true);
}
const schemas = {};
for (const type of [
  "extensions.istio.io/v1alpha1 WasmPlugin",
  "networking.istio.io/v1 VirtualService",
  "gateway.networking.k8s.io/v1 HTTPRoute",
  "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
  "gateway.envoyproxy.io/v1alpha1 EnvoyProxy",
]) {
  const kind = type.split(" ")[1];
  const schema = JSON.parse(readFileSync(join(schemaDir, `${kind}.json`), "utf8"));
  // The API server takes these on every kind; Istio's CRDs do not list them.
  schema.properties = {
    apiVersion: { type: "string" },
    kind: { type: "string" },
    metadata: { type: "object" },
    ...schema.properties,
  };
  schemas[type] = ajv.compile(strict(schema));
}

const problems = [];
const documents = [];
for (const file of files) {
  for (const parsed of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (parsed.errors.length) {
      problems.push(`${file}: YAML: ${parsed.errors.map(String).join("; ")}`);
      continue;
    }
    const doc = parsed.toJS();
    const type = `${doc.apiVersion} ${doc.kind}`;
    const where = `${file}: ${type} ${doc.metadata?.name}`;
    const validate = schemas[type];
    if (!validate) {
      problems.push(`${where}: no published schema known for this kind`);
    } else if (!validate(doc)) {
      for (const e of validate.errors) {
        const extra = e.params.additionalProperty ? ` (${e.params.additionalProperty})` : "";
        problems.push(`${where}: CRD schema: ${e.instancePath || "/"} ${e.message}${extra}`);
      }
    }
    if (models[type]) {
      try {
        new models[type](doc).validate();
      } catch (e) {
        problems.push(`${where}: npm model: ${e.message}`);
      }
    }
    documents.push({ file, type, doc });
  }
}

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(JSON.stringify(documents));
