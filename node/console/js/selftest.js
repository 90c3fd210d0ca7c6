// Checks of the console's pure parts against known answers: SHA-256 (FIPS 180-4 examples),
// HMAC-SHA-256 (RFC 4231), SigV4 (AWS's get-vanilla test vector), the MQTT codec, topic
// matching, error positions and the SQL tokenizer. The Python tests run it in the browser:
//   const { runSelfTest } = await import("/console/js/selftest.js"); runSelfTest()

import { sha256, hmacSha256, hex, bytes } from "./sha256.js";
import { signature, canonicalQuery, uriEncode, presignUrl } from "./sigv4.js";
import { encode, encodeLength, splitPackets, decodePublish, topicMatches } from "./mqtt.js";
import { positionOf, offsetOf } from "./ui.js";
import { tokenize } from "./sql.js";

function checks() {
  const out = [];
  const eq = (name, got, want) => out.push({ name, ok: JSON.stringify(got) === JSON.stringify(want), got, want });

  eq("sha256 empty", hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  eq("sha256 abc", hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  eq("sha256 two blocks", hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  eq("sha256 utf-8", hex(sha256("é")), "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c");
  eq("hmac rfc4231 1", hex(hmacSha256(new Uint8Array(20).fill(0x0b), "Hi There")),
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  eq("hmac rfc4231 2", hex(hmacSha256("Jefe", "what do ya want for nothing?")),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  eq("hmac rfc4231 6 (long key)", hex(hmacSha256(new Uint8Array(131).fill(0xaa), "Test Using Larger Than Block-Size Key - Hash Key First")),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

  // AWS's SigV4 test suite, get-vanilla.
  const vanilla = signature({
    method: "GET", path: "/", query: "",
    headers: { Host: "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z" },
    payloadHash: hex(sha256("")), region: "us-east-1", service: "service",
    secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", amzDate: "20150830T123600Z",
  });
  eq("sigv4 get-vanilla", vanilla.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  eq("sigv4 signed headers", vanilla.signedHeaders, "host;x-amz-date");
  eq("uri encoding", uriEncode("a b/c+d=é*~"), "a%20b%2Fc%2Bd%3D%C3%A9%2A~");
  eq("canonical query", canonicalQuery({ b: "2", a: "x y", c: undefined }), "a=x%20y&b=2");
  const url = presignUrl({ scheme: "ws", host: "localhost:8083", region: "us-east-1", key: { accessKeyId: "AKID", secretAccessKey: "s" }, now: new Date(0) });
  eq("presigned url", url.replace(/Signature=[0-9a-f]{64}$/, "Signature=…"),
    "ws://localhost:8083/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F19700101%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=19700101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=…");

  eq("remaining length 0", encodeLength(0), [0]);
  eq("remaining length 127", encodeLength(127), [0x7f]);
  eq("remaining length 128", encodeLength(128), [0x80, 0x01]);
  eq("remaining length 16383", encodeLength(16383), [0xff, 0x7f]);
  eq("remaining length 16384", encodeLength(16384), [0x80, 0x80, 0x01]);
  eq("remaining length max", encodeLength(268435455), [0xff, 0xff, 0xff, 0x7f]);
  eq("connect", [...encode.connect({ clientId: "c", keepalive: 30 })], [0x10, 13, 0, 4, 77, 81, 84, 84, 4, 2, 0, 30, 0, 1, 99]);
  eq("subscribe", [...encode.subscribe(1, [{ filter: "a/#", qos: 1 }])], [0x82, 8, 0, 1, 0, 3, 97, 47, 35, 1]);
  const big = new Uint8Array(300).fill(7);
  const packetBytes = encode.publish({ topic: "t/1", payload: big, qos: 1, retain: true, id: 9 });
  const half = splitPackets(packetBytes.subarray(0, 100));
  eq("split waits for the rest", [half.packets.length, half.rest.length], [0, 100]);
  const joined = new Uint8Array(packetBytes.length + 2);
  joined.set(packetBytes);
  joined.set([0xd0, 0x00], packetBytes.length);
  const split = splitPackets(joined);
  const p = decodePublish(split.packets[0]);
  eq("publish round trip", [split.packets.length, p.topic, p.qos, p.retain, p.id, p.payload.length, p.payload[299], split.packets[1].type],
    [2, "t/1", 1, true, 9, 300, 7, 13]);
  eq("utf-8 bytes", [...bytes("é")], [0xc3, 0xa9]);

  eq("filter +", topicMatches("a/+/c", "a/b/c"), true);
  eq("filter # parent", topicMatches("a/#", "a"), true);
  eq("filter # deep", topicMatches("a/#", "a/b/c"), true);
  eq("filter mismatch", topicMatches("a/+", "a/b/c"), false);
  eq("filter $ topics", topicMatches("#", "$aws/things/x"), false);
  eq("filter $ named", topicMatches("$aws/things/x/shadow/name/+/update/documents", "$aws/things/x/shadow/name/n1/update/documents"), true);

  eq("policy position", positionOf('The policy document is invalid: line 3, column 17: statement has no "Action"'), { line: 3, column: 17 });
  eq("sql position", positionOf("Line 2:19: expected an expression, found end of input"), { line: 2, column: 19 });
  eq("no position", positionOf("something else"), null);
  eq("offset of line and column", offsetOf("ab\ncde\nf", 2, 3), 5);

  eq("sql tokens", tokenize("SELECT upper(a) AS b FROM 't/+' WHERE x > 2.5").filter((t) => t.type !== "ws").map((t) => t.type),
    ["kw", "fn", "op", "id", "op", "kw", "id", "kw", "str", "kw", "id", "op", "num"]);
  eq("sql comments", tokenize("a /* b */ -- c").filter((t) => t.type !== "ws").map((t) => t.type), ["id", "comment", "comment"]);
  return out;
}

/** Runs every check: `{ok, count, failures}`. */
export function runSelfTest() {
  const results = checks();
  const failures = results.filter((r) => !r.ok);
  return { ok: failures.length === 0, count: results.length, failures };
}
