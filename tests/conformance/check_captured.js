#!/usr/bin/env node
// Checks every request the simulator captured (GET /_sim/requests, JSON on
// stdin) against Huawei's Node.js SDK signer: for each, the headers named
// in its SignedHeaders, the request-line path and the Host are signed
// again with the SDK, and the result must equal the Authorization sent.
//
//   node check_captured.js [AK SK] < requests.json
//
// AK and SK come from the arguments or from RECGATE_AK / RECGATE_SK
// (else HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK).  Exits 1 on any mismatch
// or when nothing was captured.
'use strict';

const { sign, readStdin } = require('./sdk_sign');

function credentials() {
  const [ak, sk] = process.argv.slice(2);
  const env = process.env;
  return {
    ak: ak || env.RECGATE_AK || env.HUAWEICLOUD_SDK_AK,
    sk: sk || env.RECGATE_SK || env.HUAWEICLOUD_SDK_SK,
  };
}

// Rebuilds one captured request for the SDK; throws when it cannot be.
function rebuild(req, creds) {
  const values = (name) => req.headers
    .filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  const auth = values('authorization');
  if (auth.length !== 1) {
    throw new Error(`${auth.length} Authorization headers`);
  }
  const m = /SignedHeaders=([^,\s]+)/.exec(auth[0]);
  if (!m) throw new Error(`no SignedHeaders in ${auth[0]}`);
  const headers = {};
  for (const name of m[1].split(';')) {
    const v = values(name);
    if (v.length !== 1) {
      throw new Error(`signed header ${name} sent ${v.length} times`);
    }
    headers[name] = v[0];
  }
  if (headers.host === undefined) throw new Error('host is not signed');
  return {
    sent: auth[0],
    request: {
      ak: creds.ak,
      sk: creds.sk,
      method: req.method,
      url: 'https://' + headers.host + req.path,
      headers,
    },
  };
}

function main() {
  const creds = credentials();
  if (!creds.ak || !creds.sk) {
    process.stderr.write('check_captured: AK and SK needed (argv or env)\n');
    return 2;
  }
  const captured = JSON.parse(readStdin());
  let passed = 0;
  let failed = 0;
  for (const req of captured) {
    const label = `${req.method} ${req.path}`;
    try {
      const { sent, request } = rebuild(req, creds);
      const want = sign(request).authorization;
      if (want === sent) {
        passed += 1;
        process.stdout.write(`ok ${label}\n`);
      } else {
        failed += 1;
        process.stdout.write(
          `MISMATCH ${label}\n  sent: ${sent}\n  sdk:  ${want}\n`);
      }
    } catch (e) {
      failed += 1;
      process.stdout.write(`FAIL ${label}: ${e.message}\n`);
    }
  }
  if (captured.length === 0) {
    process.stdout.write('no requests were captured\n');
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 && captured.length > 0 ? 0 : 1;
}

try {
  process.exitCode = main();
} catch (e) {
  process.stderr.write(`check_captured: ${e.message}\n`);
  process.exitCode = 2;
}
