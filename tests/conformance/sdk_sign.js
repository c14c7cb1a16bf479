// Signs requests with Huawei Cloud's own Node.js SDK signer, so the other
// scripts here can use it as the reference for recgate's signing.
'use strict';

const crypto = require('crypto');
const url = require('url');
const { AKSKSigner } =
  require('@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner');

// The SDK looks the date up under the exact key 'X-Sdk-Date' (and invents
// a fresh date when it is absent), the host under the exact key 'host'
// (falling back to the URL), and the payload hash override under
// 'X-Sdk-Content-Sha256'.  Every other key is signed as given, lower-cased
// in the canonical form.  So callers may pass any case: keys are put into
// the shape the SDK expects here.
const SDK_KEYS = {
  'x-sdk-date': 'X-Sdk-Date',
  'x-sdk-content-sha256': 'X-Sdk-Content-Sha256',
};

function sdkHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers || {})) {
    const lower = name.toLowerCase();
    const key = SDK_KEYS[lower] || lower;
    if (Object.prototype.hasOwnProperty.call(out, key)) {
      throw new Error(`header ${lower} given twice`);
    }
    out[key] = String(value);
  }
  if (!out['X-Sdk-Date']) {
    throw new Error('x-sdk-date is required (the SDK would invent one)');
  }
  return out;
}

// Splits a raw query string into the SDK's queryParams (decoded; a
// repeated key becomes an array).
function queryParams(query) {
  const params = {};
  for (const part of (query || '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (key in params) {
      params[key] = [].concat(params[key], value);
    } else {
      params[key] = value;
    }
  }
  return params;
}

// sign({ak, sk, method, url, headers}) -> the SDK's result for it:
// { authorization, signedHeaders, signature, allHeaders }.
function sign(req) {
  const q = req.url.indexOf('?');
  const request = {
    method: req.method || 'GET',
    endpoint: q < 0 ? req.url : req.url.slice(0, q),
    headers: sdkHeaders(req.headers),
    queryParams: queryParams(q < 0 ? '' : req.url.slice(q + 1)),
  };
  const credential = { getAk: () => req.ak, getSk: () => req.sk };
  const allHeaders = AKSKSigner.sign(request, credential);
  const authorization = allHeaders.Authorization;
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]+)$/
    .exec(authorization);
  if (!m) throw new Error(`unexpected Authorization ${authorization}`);
  return { authorization, signedHeaders: m[1], signature: m[2], allHeaders };
}

// The intermediate strings, rebuilt from the SDK's own helpers the way its
// sign() chains them; explain() checks they give sign()'s signature.
function explain(req) {
  const result = sign(req);
  const headers = sdkHeaders(req.headers);
  const parsed = url.parse(req.url.split('?')[0], true);
  headers.host = headers.host || parsed.host;
  const q = req.url.indexOf('?');
  const canonicalUri = AKSKSigner.CanonicalURI(parsed.pathname);
  const canonicalQuery = AKSKSigner.CanonicalQueryString({
    queryParams: queryParams(q < 0 ? '' : req.url.slice(q + 1)),
  });
  const canonicalRequest = AKSKSigner.buildCanonicalRequest(
    req.method || 'GET', canonicalUri, canonicalQuery,
    AKSKSigner.buildCanonicalHeaders(headers), result.signedHeaders,
    AKSKSigner.buildPayloadHash({ headers }));
  const stringToSign = AKSKSigner.getStringToSign(
    AKSKSigner.SDK_SIGNING_ALGORITHM, headers['X-Sdk-Date'],
    AKSKSigner.Hex(canonicalRequest));
  const check = crypto.createHmac('sha256', req.sk)
    .update(stringToSign).digest('hex');
  if (check !== result.signature) {
    throw new Error(
      'rebuilt canonical request does not give the SDK signature');
  }
  return { ...result, canonicalUri, canonicalRequest, stringToSign };
}

function readStdin() {
  return require('fs').readFileSync(0, 'utf8');
}

module.exports = { sign, explain, sdkHeaders, queryParams, readStdin };
