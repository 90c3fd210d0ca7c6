"""Custom authorizers and JWT authentication: an authorizer served by the test
over HTTP with AWS's request and response shapes, token signing, and JWTs checked against a
JWKS file, selected per listener in `[auth]`."""

import base64
import json
import queue
import ssl
import time

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import JsonEndpoint, aws_client

ARN = "arn:aws:iot:us-east-1:000000000000"


def client_scoped_policy():
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/${{iot:ClientId}}"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/devices/${{iot:ClientId}}/*"}]}


class Authorizer(JsonEndpoint):
    """An HTTP authorizer: accepts password "open-sesame" and records every event."""

    def __init__(self):
        super().__init__(self.verdict, "/authorize")
        self.events = self.requests

    @staticmethod
    def verdict(event):
        password = base64.b64decode(event["protocolData"]["mqtt"].get("password", "")).decode()
        if password == "open-sesame" or event.get("token") == "good-token":
            return {"isAuthenticated": True, "principalId": "user42",
                    "disconnectAfterInSeconds": 3600, "refreshAfterInSeconds": 600,
                    "policyDocuments": [json.dumps(client_scoped_policy())]}
        return {"isAuthenticated": False}


@pytest.fixture
def authorizer():
    a = Authorizer()
    yield a
    a.close()


def connect_tls(node, client_id, username=None, password=None, protocol=mqtt.MQTTv5):
    """A paho client over TLS without a client certificate."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    c.tls_set(ca_certs=node.ca_path, cert_reqs=ssl.CERT_REQUIRED)
    if username is not None or password is not None:
        c.username_pw_set(username, password)
    connack, pubacks = queue.Queue(), queue.Queue()
    c.on_connect = lambda c_, u, f, rc, p: connack.put(rc.value)
    c.on_publish = lambda c_, u, mid, rc, p: pubacks.put(rc.value)
    c.connect("localhost", node.mqtts_port, keepalive=30)
    c.loop_start()
    return c, connack.get(timeout=10), pubacks


def test_authorizer_routes(node, authorizer):
    iot = aws_client(node, "iot")
    made = iot.create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url,
                                 signingDisabled=True, status="ACTIVE")
    assert made["authorizerArn"].endswith(":authorizer/http-auth")
    desc = iot.describe_authorizer(authorizerName="http-auth")["authorizerDescription"]
    assert desc["authorizerFunctionArn"] == authorizer.url and desc["signingDisabled"] is True
    assert [a["authorizerName"] for a in iot.list_authorizers()["authorizers"]] == ["http-auth"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url, signingDisabled=True)
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_authorizer(authorizerName="signed", authorizerFunctionArn=authorizer.url)
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_authorizer(authorizerName="http-auth")
    assert e.value.response["Error"]["Code"] == "DeleteConflictException"
    tested = iot.test_invoke_authorizer(authorizerName="http-auth", mqttContext={
        "username": "u", "password": b"open-sesame", "clientId": "c1"})
    assert tested["isAuthenticated"] is True and tested["principalId"] == "user42"
    assert json.loads(tested["policyDocuments"][0]) == client_scoped_policy()
    iot.update_authorizer(authorizerName="http-auth", status="INACTIVE")
    assert iot.describe_authorizer(authorizerName="http-auth")["authorizerDescription"]["status"] == "INACTIVE"
    iot.delete_authorizer(authorizerName="http-auth")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.describe_authorizer(authorizerName="http-auth")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_custom_authorizer_decides_connect_and_its_policies_apply(node, authorizer):
    iot = aws_client(node, "iot")
    iot.create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url, signingDisabled=True)
    name = "alice?x-amz-customauthorizer-name=http-auth"
    c, rc, _ = connect_tls(node, "dev-a", username=name, password="wrong")
    assert rc == 0x87
    c.loop_stop()
    c, rc, pubacks = connect_tls(node, "dev-a", username=name, password="open-sesame")
    assert rc == 0
    c.publish("devices/dev-a/temp", b"1", qos=1)
    assert pubacks.get(timeout=5) == 0
    c.publish("devices/dev-b/temp", b"1", qos=1)
    assert pubacks.get(timeout=5) == 0x87
    c.disconnect()
    c.loop_stop()
    event = authorizer.events[-1]
    assert event["protocolData"]["mqtt"]["username"] == name
    assert base64.b64decode(event["protocolData"]["mqtt"]["password"]) == b"open-sesame"
    assert event["protocolData"]["mqtt"]["clientId"] == "dev-a"
    assert event["protocols"] == ["tls", "mqtt"]
    assert event["connectionMetadata"]["sourceIp"] == "127.0.0.1"
    assert event["signatureVerified"] is False
    # The default authorizer serves clients that do not name one.
    iot.set_default_authorizer(authorizerName="http-auth")
    assert iot.describe_default_authorizer()["authorizerDescription"]["authorizerName"] == "http-auth"
    c, rc, _ = connect_tls(node, "dev-c", username="plain-user", password="open-sesame")
    assert rc == 0
    c.disconnect()
    c.loop_stop()
    # An unknown authorizer is refused with a reason in the log.
    c, rc, _ = connect_tls(node, "dev-d", username="x?x-amz-customauthorizer-name=nope", password="open-sesame")
    assert rc == 0x87
    c.loop_stop()
    assert "no authorizer named nope" in node.log()


def test_signed_tokens_are_verified_before_the_authorizer_is_called(node, authorizer):
    iot = aws_client(node, "iot")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    iot.create_authorizer(authorizerName="signed", authorizerFunctionArn=authorizer.url, tokenKeyName="tok",
                          tokenSigningPublicKeys={"k1": public_pem})
    sig = base64.b64encode(key.sign(b"good-token", padding.PKCS1v15(), hashes.SHA256())).decode()
    from urllib.parse import quote
    good = f"u?x-amz-customauthorizer-name=signed&tok=good-token&x-amz-customauthorizer-signature={quote(sig)}"
    calls = len(authorizer.events)
    c, rc, _ = connect_tls(node, "signed-1", username=good)
    assert rc == 0
    c.disconnect()
    c.loop_stop()
    assert authorizer.events[-1]["token"] == "good-token" and authorizer.events[-1]["signatureVerified"] is True
    forged = good.replace("good-token", "evil-token")
    c, rc, _ = connect_tls(node, "signed-2", username=forged)
    assert rc == 0x87
    c.loop_stop()
    assert len(authorizer.events) == calls + 1  # the forged token never reached the authorizer


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_token(key, claims, kid="k1"):
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_jwt_clients_on_a_listener_configured_for_jwt(make_node, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
                      "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}]}
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    node = make_node(config_text=f"""
[auth]
mqtt = ["jwt"]
[auth.jwt]
jwks_file = "{jwks_file}"
issuer = "https://issuer.example"
policies = ["jwt-devices"]
leeway_secs = 0
""")
    iot = aws_client(node, "iot")
    iot.create_policy(policyName="jwt-devices", policyDocument=json.dumps(client_scoped_policy()))
    now = int(time.time())

    def connect(client_id, password):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set("jwt", password)
        connack, pubacks = queue.Queue(), queue.Queue()
        c.on_connect = lambda c_, u, f, rc, p: connack.put(rc.value)
        c.on_publish = lambda c_, u, mid, rc, p: pubacks.put(rc.value)
        c.connect("127.0.0.1", node.mqtt_port)
        c.loop_start()
        return c, connack.get(timeout=10), pubacks

    good = es256_token(key, {"sub": "jwt-dev", "iss": "https://issuer.example", "exp": now + 600})
    c, rc, pubacks = connect("jwt-dev", good)
    assert rc == 0
    c.publish("devices/jwt-dev/x", b"1", qos=1)
    assert pubacks.get(timeout=5) == 0
    c.publish("elsewhere", b"1", qos=1)
    assert pubacks.get(timeout=5) == 0x87
    c.disconnect()
    c.loop_stop()
    refused = [
        ("jwt-dev", es256_token(key, {"sub": "jwt-dev", "iss": "https://issuer.example", "exp": now - 600})),
        ("someone-else", good),
        ("jwt-dev", es256_token(key, {"sub": "jwt-dev", "iss": "https://other.example", "exp": now + 600})),
        ("jwt-dev", good[:-4] + "AAAA"),
        ("jwt-dev", None),
        ("jwt-dev", es256_token(key, {"sub": "jwt-dev", "iss": "https://issuer.example"})),  # no exp
    ]
    for client_id, token in refused:
        c, rc, _ = connect(client_id, token)
        assert rc == 0x87, client_id
        c.loop_stop()
    log = node.log()
    assert "expired" in log and "does not equal the client id" in log
    assert "no exp claim" in log
    # A connection does not outlive its token.
    short = es256_token(key, {"sub": "jwt-dev", "iss": "https://issuer.example", "exp": int(time.time()) + 3})
    c, rc, _ = connect("jwt-dev", short)
    assert rc == 0
    closed = queue.Queue()
    c.on_disconnect = lambda c_, u, f, rc_, p: closed.put(rc_.value)
    assert closed.get(timeout=10) == 0x87
    c.loop_stop()


def test_listener_auth_config_errors_are_explained(make_node, tmp_path):
    with pytest.raises(RuntimeError) as e:
        make_node(config_text='[auth]\nmqtt = ["certificate"]\n')
    assert "certificate authentication needs a TLS listener" in str(e.value)
    with pytest.raises(RuntimeError) as e:
        make_node(config_text='[auth]\nmqtts = ["jwt"]\n')
    assert "no [auth.jwt] table" in str(e.value)
