#!/usr/bin/env node
// Prints the Authorization header Huawei's Node.js SDK computes for each
// request given on stdin as JSON: {"ak","sk","method","url","headers"} or
// an array of them.  With --json, prints a JSON array with the canonical
// request and string to sign as well.
'use strict';

const { sign, explain, readStdin } = require('./sdk_sign');

function main() {
  const asJson = process.argv.includes('--json');
  const input = JSON.parse(readStdin());
  const requests = Array.isArray(input) ? input : [input];
  if (asJson) {
    const out = requests.map((r) => {
      const e = explain(r);
      return {
        authorization: e.authorization,
        signed_headers: e.signedHeaders,
        canonical_request: e.canonicalRequest,
        string_to_sign: e.stringToSign,
      };
    });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return;
  }
  for (const r of requests) {
    process.stdout.write(sign(r).authorization + '\n');
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`oracle: ${e.message}\n`);
  process.exit(1);
}
