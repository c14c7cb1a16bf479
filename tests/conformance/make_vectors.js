#!/usr/bin/env node
// Writes tests/unit/data/sign_vectors.json: requests shaped like the ones
// recgate sends upstream, each with the Authorization that Huawei's
// Node.js SDK signer computes for it.  Run `npm ci` here first; the output
// is committed, so the unit tests need no Node.js.
//
//   node make_vectors.js [FILE]          write the vectors (default path)
//   node make_vectors.js --check [FILE]  compare the file with the SDK
'use strict';

const fs = require('fs');
const path = require('path');
const { explain } = require('./sdk_sign');

const DATE = '20261203T101500Z';
const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'HPUAEXAMPLEACCESSKEY';
const SK = 'Ex4mpleSecretKeyForSigningTests0123456789';
const TOKEN = 'gQpjbi1ub3J0aC00' + 'x'.repeat(40) + '+/AbCd==';

function recordUrl(host, project, record) {
  return `https://${host}/v2/${project}/script-execution-records/${record}`;
}

// One request as recgate builds it: the headers it signs, lower-case.
function vector(name, opts) {
  const host = opts.host || 'workspace.cn-north-4.myhuaweicloud.com';
  const project = opts.project || PROJECT;
  const headers = {
    'content-type': 'application/json',
    host,
    'x-project-id': project,
    'x-sdk-date': opts.date || DATE,
  };
  if (opts.token) headers['x-security-token'] = opts.token;
  return {
    name,
    ak: opts.ak || AK,
    sk: opts.sk || SK,
    method: 'GET',
    url: recordUrl(host, project, opts.record || 'rec-success-1'),
    headers,
  };
}

const requests = [
  vector('plain-record', {}),
  vector('host-with-port', { host: 'localhost:8443' }),
  vector('ipv6-host-with-port', {
    host: '[::1]:8443', record: 'rec-failed-1',
  }),
  vector('record-id-needs-encoding', { record: 'rec:1~a.b@x' }),
  vector('long-record-id', {
    host: 'workspace.ap-southeast-1.myhuaweicloud.com',
    project: 'fedcba9876543210fedcba9876543210',
    record: 'A'.repeat(20) + '_b-' + '0123456789'.repeat(4) + 'z',
  }),
  vector('security-token', { token: TOKEN }),
  vector('security-token-with-port', {
    ak: 'HSTAEXAMPLETEMPORARYAK', host: 'localhost:8443', token: TOKEN,
    record: 'rec-running-1',
  }),
  vector('sk-unusual-characters', {
    sk: 'sk with spaces/+=&%?#"\'\\;:,~!@$^*()[]{}|<>`',
  }),
  vector('leap-day-date', { date: '20240229T235959Z' }),
];

function main() {
  const out = requests.map((r) => {
    const e = explain(r);
    return {
      name: r.name,
      ak: r.ak,
      sk: r.sk,
      method: r.method,
      url: r.url,
      headers: r.headers,
      signed_headers: e.signedHeaders,
      authorization: e.authorization,
      canonical_uri: e.canonicalUri,
      canonical_request: e.canonicalRequest,
      string_to_sign: e.stringToSign,
    };
  });

  const encoded = out.find((v) => v.name === 'record-id-needs-encoding');
  if (!/%[0-9A-F]{2}/.test(encoded.canonical_uri)) {
    throw new Error(
      `no %XX in ${encoded.canonical_uri}: pick other characters`);
  }
  const names = Object.keys(requests[0].headers).sort().join(';');
  if (out[0].signed_headers !== names) {
    throw new Error(`SDK signed ${out[0].signed_headers}, expected ${names}`);
  }

  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const dest = args.find((a) => a !== '--check') ||
    path.join(__dirname, '..', 'unit', 'data', 'sign_vectors.json');
  const text = JSON.stringify(out, null, 2) + '\n';
  if (check) {
    return compare(dest, out);
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, text);
  process.stdout.write(`wrote ${out.length} vectors to ${dest}\n`);
  return 0;
}

// --check: the committed file must hold what the SDK gives today.
function compare(dest, out) {
  const committed = JSON.parse(fs.readFileSync(dest, 'utf8'));
  const byName = new Map(committed.map((v) => [v.name, v]));
  let passed = 0;
  let failed = 0;
  for (const v of out) {
    const old = byName.get(v.name);
    if (old && JSON.stringify(old) === JSON.stringify(v)) {
      passed += 1;
      process.stdout.write(`ok ${v.name}\n`);
    } else {
      failed += 1;
      process.stdout.write(`DIFFERS ${v.name}\n`);
    }
  }
  if (committed.length !== out.length) {
    failed += 1;
    process.stdout.write(
      `file has ${committed.length} vectors, expected ${out.length}\n`);
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = main();
