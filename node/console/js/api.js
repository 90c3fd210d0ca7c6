// The node's HTTP API as the console uses it: every AWS operation signed with SigV4 in the
// browser by the key the user signed in with. The key lives in this module's memory only
// (never localStorage, sessionStorage, cookies or IndexedDB): a reload signs out.

import { signRequest, uriEncode, canonicalQuery } from "./sigv4.js";

/** An AWS error answer: `status`, `type` (`ResourceNotFoundException`, ...) and `message`. */
export class ApiError extends Error {
  constructor(status, type, message) {
    super(message || `${type || "Error"} (HTTP ${status})`);
    this.status = status;
    this.type = type || "";
  }
}

const state = { key: null, config: null, skewMs: 0 };

/** The node's `/console/config.json`: version, region, account id and endpoints. */
export async function loadConfig() {
  if (!state.config) state.config = await getJson("/console/config.json");
  return state.config;
}

export function config() {
  return state.config;
}

/** The signed-in key (`{accessKeyId, secretAccessKey}`), or null. */
export function currentKey() {
  return state.key;
}

/** Signs in: keeps the key if a cheap signed call (ListThings, one result) accepts it. */
export async function signIn(accessKeyId, secretAccessKey) {
  const key = { accessKeyId: accessKeyId.trim(), secretAccessKey: secretAccessKey.trim() };
  await call("iot", "GET", "/things", { query: { maxResults: 1 }, key });
  state.key = key;
}

export function signOut() {
  state.key = null;
}

/** A path with each interpolated value URI-encoded as one segment: path`/things/${name}`. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? uriEncode(String(values[i])) : ""), "");
}

/** Plain GET of a JSON document that needs no signature (`/cluster/status`, ...). */
export async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  const text = await r.text();
  const doc = text ? JSON.parse(text) : {};
  if (!r.ok && r.status !== 503) throw errorOf(r, doc, text);
  return doc;
}

/** Plain GET of a text document (`/metrics`, `/console/ca.pem`). */
export async function getText(url) {
  const r = await fetch(url, { cache: "no-store" });
  const text = await r.text();
  if (!r.ok) throw new ApiError(r.status, "", text || r.statusText);
  return text;
}

function errorOf(response, doc, text) {
  const header = (response.headers.get("x-amzn-errortype") || "").split(":")[0];
  const type = header || doc.__type || doc.code || doc.Code || "";
  const message = doc.message || doc.Message || (text && !text.startsWith("{") ? text : "") || response.statusText;
  return new ApiError(response.status, String(type).split("#").pop(), message);
}

/**
 * One signed API call. `service` is the SigV4 service (`iot`, `iotdata`, `iot-jobs-data`);
 * `path` is already encoded (use path``); `query` an object; `body` an object (sent as JSON)
 * or a string. Answers the parsed JSON (or `{}` for an empty body); throws ApiError.
 */
export async function call(service, method, urlPath, { query, body, headers = {}, key = state.key, retried = false } = {}) {
  if (!key) throw new ApiError(403, "NotSignedIn", "sign in first");
  const cfg = await loadConfig();
  const qs = canonicalQuery(query || {});
  const text = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  const signed = signRequest({
    method, host: location.host, path: urlPath, query: qs, body: text, extraHeaders: headers,
    region: cfg.region || "us-east-1", service, key, now: new Date(Date.now() + state.skewMs),
  });
  const init = { method, headers: { ...headers, ...signed }, cache: "no-store" };
  if (body !== undefined) {
    init.body = text;
    init.headers["content-type"] = "application/json";
  }
  const r = await fetch(urlPath + (qs ? "?" + qs : ""), init);
  const answer = await r.text();
  let doc = {};
  try {
    doc = answer ? JSON.parse(answer) : {};
  } catch {
    doc = { raw: answer };
  }
  if (r.ok) return doc;
  const err = errorOf(r, doc, answer);
  // A browser whose clock is off by more than AWS's 15 minutes: sign again on the node's time.
  if (r.status === 403 && !retried && /expired|15 minutes/i.test(err.message) && r.headers.get("date")) {
    state.skewMs = Date.parse(r.headers.get("date")) - Date.now();
    return call(service, method, urlPath, { query, body, headers, key, retried: true });
  }
  throw err;
}

const iot = (method, p, opts) => call("iot", method, p, opts);
const data = (method, p, opts) => call("iotdata", method, p, opts);

/** Every page of a nextToken list, concatenated (`field` names the list). */
export async function all(list, field, limit = 10000) {
  const out = [];
  let nextToken;
  do {
    const page = await list(nextToken);
    out.push(...(page[field] || []));
    nextToken = page.nextToken;
  } while (nextToken && out.length < limit);
  return out;
}

// Things, types, groups.
export const listThings = (query) => iot("GET", "/things", { query });
export const describeThing = (name) => iot("GET", path`/things/${name}`);
export const createThing = (name, body) => iot("POST", path`/things/${name}`, { body });
export const deleteThing = (name) => iot("DELETE", path`/things/${name}`);
export const listThingTypes = (query) => iot("GET", "/thing-types", { query });
export const listThingGroups = (query) => iot("GET", "/thing-groups", { query });
export const listThingsInThingGroup = (group, query) => iot("GET", path`/thing-groups/${group}/things`, { query });
export const listThingGroupsForThing = (name, query) => iot("GET", path`/things/${name}/thing-groups`, { query });
export const listThingPrincipals = (name, query) => iot("GET", path`/things/${name}/principals`, { query });

// Certificates and policies.
export const createKeysAndCertificate = () => iot("POST", "/keys-and-certificate", { query: { setAsActive: true }, body: {} });
export const attachThingPrincipal = (name, principal) =>
  iot("PUT", path`/things/${name}/principals`, { headers: { "x-amzn-principal": principal } });
export const createPolicy = (name, policyDocument) => iot("POST", path`/policies/${name}`, { body: { policyDocument } });
export const attachPolicy = (name, target) => iot("PUT", path`/target-policies/${name}`, { body: { target } });
export const listAttachedPolicies = (target) => iot("POST", path`/attached-policies/${target}`, { body: {} });

// Shadows (iot-data).
export const getThingShadow = (name, shadowName) =>
  data("GET", path`/things/${name}/shadow`, { query: shadowName ? { name: shadowName } : {} });
export const listNamedShadowsForThing = (name, query) =>
  data("GET", path`/api/things/shadow/ListNamedShadowsForThing/${name}`, { query });

// Rules.
export const listTopicRules = (query) => iot("GET", "/rules", { query });
export const getTopicRule = (name) => iot("GET", path`/rules/${name}`);
export const createTopicRule = (name, payload) => iot("POST", path`/rules/${name}`, { body: payload });
export const deleteTopicRule = (name) => iot("DELETE", path`/rules/${name}`);
export const enableTopicRule = (name) => iot("POST", path`/rules/${name}/enable`, { body: {} });
export const disableTopicRule = (name) => iot("POST", path`/rules/${name}/disable`, { body: {} });

// Fleet indexing and jobs.
export const getIndexingConfiguration = () => iot("GET", "/indexing/config");
export const updateIndexingConfiguration = (body) => iot("POST", "/indexing/config", { body });
export const searchIndex = (body) => iot("POST", "/indices/search", { body: { indexName: "AWS_Things", ...body } });
export const listJobs = (query) => iot("GET", "/jobs", { query });
export const describeJob = (id) => iot("GET", path`/jobs/${id}`);

// The node's own routes.
export const statsHistory = () => iot("GET", "/stats/history");
export const getStatistics = (body) => iot("POST", "/indices/statistics", { body: { indexName: "AWS_Things", ...body } });
