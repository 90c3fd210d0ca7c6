// AWS Signature Version 4, as botocore signs the `iot`, `iotdata` and `iot-jobs-data`
// requests (a header signature) and as the AWS IoT SDKs presign the MQTT WebSocket upgrade
// (a query signature for `iotdevicegateway`). Pure functions: a request, a key and a time in,
// the headers or URL to send out. selftest.js checks them against AWS's published vector.

import { sha256, hmacSha256, hex } from "./sha256.js";

/** AWS's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (and `/` kept in paths). */
export function uriEncode(text, keepSlash = false) {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return keepSlash ? encoded.replace(/%2F/g, "/") : encoded;
}

/** `20150830T123600Z` for a Date. */
export function amzDate(date) {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** The encoded, sorted `k=v&...` of query pairs (an object or `[key, value]` pairs;
 * undefined and null values are left out). */
export function canonicalQuery(query) {
  const pairs = (Array.isArray(query) ? query : Object.entries(query || {}))
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => [uriEncode(String(k)), uriEncode(String(v))]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** The signing key for a day, region and service. */
function signingKey(secret, day, region, service) {
  let key = hmacSha256("AWS4" + secret, day);
  for (const part of [region, service, "aws4_request"]) key = hmacSha256(key, part);
  return key;
}

/**
 * The signature of a request. `path` is the path as sent (already URI-encoded; it is encoded
 * once more, as every AWS service but S3 expects), `query` the canonical query string,
 * `headers` the headers to sign (name -> value), `payloadHash` the body's hex SHA-256.
 */
export function signature({ method, path, query, headers, payloadHash, region, service, secret, amzDate: when }) {
  const names = Object.keys(headers).map((n) => n.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonicalHeaders = names.map((n) => `${n}:${String(lower[n]).trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [method, uriEncode(path || "/", true), query, canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const day = when.slice(0, 8);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", when, scope, hex(sha256(canonicalRequest))].join("\n");
  const sig = hex(hmacSha256(signingKey(secret, day, region, service), stringToSign));
  return { signature: sig, signedHeaders, scope, canonicalRequest, stringToSign };
}

/**
 * Signs an API request: the headers to add (`x-amz-date`, `x-amz-content-sha256`,
 * `authorization`). `host` is the Host header the browser will send; `extraHeaders` (such as
 * `x-amzn-principal`) are signed and must be sent unchanged.
 */
export function signRequest({ method, host, path, query = "", body = "", extraHeaders = {}, region, service, key, now = new Date() }) {
  const when = amzDate(now);
  const payloadHash = hex(sha256(body));
  const headers = { host, "x-amz-content-sha256": payloadHash, "x-amz-date": when, ...extraHeaders };
  const s = signature({ method, path, query, headers, payloadHash, region, service, secret: key.secretAccessKey, amzDate: when });
  return {
    "x-amz-date": when,
    "x-amz-content-sha256": payloadHash,
    authorization: `AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/${s.scope}, SignedHeaders=${s.signedHeaders}, Signature=${s.signature}`,
  };
}

/**
 * A presigned WebSocket URL (`ws://` or `wss://`), as the AWS IoT SDKs sign the upgrade to
 * `/mqtt`: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders=host`
 * and `X-Amz-Signature` in the query, `host` the only signed header, the empty body's hash.
 */
export function presignUrl({ scheme, host, path = "/mqtt", region, service = "iotdevicegateway", key, now = new Date() }) {
  const when = amzDate(now);
  const scope = `${when.slice(0, 8)}/${region}/${service}/aws4_request`;
  const params = [
    ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"],
    ["X-Amz-Credential", `${key.accessKeyId}/${scope}`],
    ["X-Amz-Date", when],
    ["X-Amz-SignedHeaders", "host"],
  ];
  const query = canonicalQuery(params);
  const s = signature({
    method: "GET", path, query, headers: { host: hostHeader(scheme, host) }, payloadHash: hex(sha256("")),
    region, service, secret: key.secretAccessKey, amzDate: when,
  });
  return `${scheme}://${host}${path}?${query}&X-Amz-Signature=${s.signature}`;
}

/** The Host header a browser sends for `scheme://host`: without the scheme's default port. */
export function hostHeader(scheme, host) {
  const defaults = { ws: "80", http: "80", wss: "443", https: "443" };
  const m = host.match(/^(.*):(\d+)$/);
  return m && defaults[scheme] === m[2] ? m[1] : host;
}
