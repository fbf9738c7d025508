// Validates Kubernetes manifests against the API's own schemas without a cluster: each YAML
// document is checked by the model of its apiVersion and kind from kubernetes-models (the
// OpenAPI schemas of Kubernetes, compiled for ajv). Kinds it has no model for (Kustomization)
// are named and skipped. Usage: node validate.mjs <node_modules dir> FILE...
import { readFileSync, existsSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const yaml = await import(pathToFileURL(`${modules}/yaml/dist/index.js`).href);
let failures = 0;
let checked = 0;
for (const file of files) {
  const docs = yaml.parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      console.error(`${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      failures++;
      continue;
    }
    const object = doc.toJS();
    if (object === null) continue;
    const { apiVersion, kind } = object;
    const name = `${file}: ${kind} ${object.metadata?.name ?? "(no name)"}`;
    if (apiVersion === "kustomize.config.k8s.io/v1beta1") {
      for (const resource of object.resources ?? []) {
        if (!files.some((f) => f.endsWith(`/${resource}`) || f === resource)) {
          console.error(`${name}: lists ${resource}, which is not among the files checked`);
          failures++;
        }
      }
      console.log(`${name}: resources listed exist (no schema for a Kustomization)`);
      continue;
    }
    const group = apiVersion.includes("/") ? apiVersion : `v1`;
    const model = `${modules}/kubernetes-models/${group}/${kind}.js`;
    if (!existsSync(model)) {
      console.error(`${name}: no schema for ${apiVersion} ${kind}`);
      failures++;
      continue;
    }
    const { [kind]: Model } = await import(pathToFileURL(model).href);
    try {
      new Model(object).validate();
      checked++;
      console.log(`${name}: valid ${apiVersion} ${kind}`);
    } catch (error) {
      console.error(`${name}: ${error.message}`);
      failures++;
    }
  }
}
console.log(`${checked} objects valid, ${failures} problems`);
process.exit(failures === 0 && checked > 0 ? 0 : 1);
