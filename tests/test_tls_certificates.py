"""MQTT over TLS with X.509 client certificates the node issued or that were registered
through the API: boto3 for the certificate routes, paho-mqtt over TLS
for the devices."""

import os
import queue
import ssl
import subprocess
import time

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest

from conftest import aws_client


def tls_client(node, cert_pem, key_pem, tmp_path, client_id="device-1"):
    """A paho MQTT 3.1.1 client over TLS trusting the node's development CA; returns
    (client, connack queue, disconnect queue) after the CONNECT answer arrived."""
    cert, key = tmp_path / f"{client_id}.pem", tmp_path / f"{client_id}.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=node.ca_path, certfile=str(cert), keyfile=str(key))
    connack, disconnects = queue.Queue(), queue.Queue()
    c.on_connect = lambda c_, u, flags, rc, props: connack.put(rc)
    c.on_disconnect = lambda c_, u, flags, rc, props: disconnects.put(rc)
    c.connect("localhost", node.mqtts_port, keepalive=30)
    c.loop_start()
    return c, connack, disconnects


ALLOW_ALL = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}'


def allow_all(iot, certificate_arn):
    """Attaches an allow-everything policy: without a policy, AWS IoT (and Ferrite) refuse
    even a valid certificate's CONNECT."""
    if "AllowAll" not in [p["policyName"] for p in iot.list_policies()["policies"]]:
        iot.create_policy(policyName="AllowAll", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName="AllowAll", target=certificate_arn)



def openssl_ca(tmp_path, stem, common_name):
    """A self-signed P-256 CA made by openssl: (key path, certificate path)."""
    key, pem = tmp_path / f"{stem}.key", tmp_path / f"{stem}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(pem), "-days", "30", "-subj", f"/CN={common_name}",
                    "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)
    return key, pem


def verification(iot, tmp_path, ca_key, ca_pem):
    """The verification certificate RegisterCACertificate wants (DEFAULT mode): signed by the
    CA's key, with the account's registration code as its common name."""
    code = iot.get_registration_code()["registrationCode"]
    return openssl_device(tmp_path, "verify", code, ca_key, ca_pem, "basicConstraints=CA:FALSE\n")[1].read_text()


def openssl_device(tmp_path, stem, common_name, ca_key, ca_pem, extensions):
    """A P-256 device certificate signed by the given CA: (key path, certificate path)."""
    key, csr, pem = tmp_path / f"{stem}.key", tmp_path / f"{stem}.csr", tmp_path / f"{stem}.pem"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}"],
                   check=True, capture_output=True)
    ext = tmp_path / f"{stem}.ext"
    ext.write_text(extensions)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(pem), "-days", "10", "-extfile", str(ext)],
                   check=True, capture_output=True)
    return key, pem

def test_the_first_start_writes_a_development_ca_that_signs_the_server_certificate(node):
    assert os.path.exists(node.ca_path)
    ctx = ssl.create_default_context(cafile=node.ca_path)
    import socket
    with socket.create_connection(("127.0.0.1", node.https_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_an_active_certificate_connects_and_revoking_it_disconnects_within_a_second(node, tmp_path):
    iot = aws_client(node, "iot")
    created = iot.create_keys_and_certificate(setAsActive=True)
    cert_id = created["certificateId"]
    assert len(cert_id) == 64
    assert created["certificateArn"].endswith(f":cert/{cert_id}")
    described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    allow_all(iot, created["certificateArn"])
    c, connack, disconnects = tls_client(node, created["certificatePem"], created["keyPair"]["PrivateKey"], tmp_path)
    assert connack.get(timeout=10) == 0
    start = time.time()
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    disconnects.get(timeout=5)
    assert time.time() - start < 1.5
    c.loop_stop()
    assert node.metric("certificate_disconnects_total") >= 1


def test_inactive_and_unregistered_certificates_are_refused_with_a_logged_reason(node, tmp_path):
    iot = aws_client(node, "iot")
    inactive = iot.create_keys_and_certificate(setAsActive=False)
    c, connack, _ = tls_client(node, inactive["certificatePem"], inactive["keyPair"]["PrivateKey"], tmp_path, "d-inactive")
    assert connack.get(timeout=10) != 0
    c.loop_stop()
    # A certificate the node issued but then deleted is no longer registered.
    iot.delete_certificate(certificateId=inactive["certificateId"])
    c, connack, _ = tls_client(node, inactive["certificatePem"], inactive["keyPair"]["PrivateKey"], tmp_path, "d-gone")
    assert connack.get(timeout=10) != 0
    c.loop_stop()
    log = node.log()
    assert "Connect.AuthError" in log and "is INACTIVE" in log and "not registered" in log
    assert node.metric("connect_auth_errors_total") >= 2


def test_certificate_lifecycle_errors_are_aws_errors(node):
    iot = aws_client(node, "iot")
    created = iot.create_keys_and_certificate(setAsActive=True)
    cert_id = created["certificateId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_certificate(certificateId=cert_id)
    assert e.value.response["Error"]["Code"] == "CertificateStateException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.register_certificate_without_ca(certificatePem=created["certificatePem"])
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.describe_certificate(certificateId="0" * 64)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = iot.list_certificates()["certificates"]
    assert [c["certificateId"] for c in listed] == [cert_id]


def test_things_and_certificates_are_attached_as_principals(node):
    iot = aws_client(node, "iot")
    iot.create_thing(thingName="lamp")
    arn = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_thing_principal(thingName="lamp", principal=arn)
    assert iot.list_thing_principals(thingName="lamp")["principals"] == [arn]
    assert iot.list_principal_things(principal=arn)["things"] == ["lamp"]
    iot.detach_thing_principal(thingName="lamp", principal=arn)
    assert iot.list_thing_principals(thingName="lamp")["principals"] == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.attach_thing_principal(thingName="nope", principal=arn)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_certificate_from_a_csr_and_a_registered_ca(node, tmp_path):
    """CreateCertificateFromCsr signs the caller's key; RegisterCACertificate +
    RegisterCertificate accept a device certificate signed by the caller's own CA."""
    iot = aws_client(node, "iot")
    key, csr = tmp_path / "csr.key", tmp_path / "req.csr"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", "/CN=csr-device"], check=True, capture_output=True)
    made = iot.create_certificate_from_csr(certificateSigningRequest=csr.read_text(), setAsActive=True)
    allow_all(iot, made["certificateArn"])
    c, connack, _ = tls_client(node, made["certificatePem"], key.read_text(), tmp_path, "csr-device")
    assert connack.get(timeout=10) == 0
    c.loop_stop()
    # The caller's own CA.
    ca_key, ca_pem = openssl_ca(tmp_path, "ca", "my-ca")
    dev_key, dev_pem = openssl_device(tmp_path, "dev", "own-ca-device", ca_key, ca_pem,
                                      "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.register_certificate(certificatePem=dev_pem.read_text(), setAsActive=True)
    assert e.value.response["Error"]["Code"] == "CertificateValidationException"
    ca = iot.register_ca_certificate(caCertificate=ca_pem.read_text(), setAsActive=True,
                                     verificationCertificate=verification(iot, tmp_path, ca_key, ca_pem))
    reg = iot.register_certificate(certificatePem=dev_pem.read_text(), setAsActive=True)
    assert iot.describe_certificate(certificateId=reg["certificateId"])["certificateDescription"]["caCertificateId"] \
        == ca["certificateId"]
    allow_all(iot, reg["certificateArn"])
    c, connack, disconnects = tls_client(node, dev_pem.read_text(), dev_key.read_text(), tmp_path, "own-ca-device")
    assert connack.get(timeout=10) == 0
    # Deactivating the CA disconnects the certificates it signed.
    iot.update_ca_certificate(certificateId=ca["certificateId"], newStatus="INACTIVE")
    disconnects.get(timeout=5)
    c.loop_stop()


def test_secure_websocket_and_the_443_style_alpn_port_take_certificates(node, tmp_path):
    """The same certificate works on MQTT over secure WebSocket (path /mqtt) and on the HTTPS
    port with ALPN x-amzn-mqtt-ca, where HTTPS clients still reach the API."""
    iot = aws_client(node, "iot")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    allow_all(iot, cert["certificateArn"])
    certfile, keyfile = tmp_path / "ws.pem", tmp_path / "ws.key"
    certfile.write_text(cert["certificatePem"])
    keyfile.write_text(cert["keyPair"]["PrivateKey"])
    for port, transport, alpn in ((node.wss_port, "websockets", None), (node.https_port, "tcp", "x-amzn-mqtt-ca")):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{transport}", transport=transport)
        ctx = ssl.create_default_context(cafile=node.ca_path)
        ctx.load_cert_chain(str(certfile), str(keyfile))
        if alpn:
            ctx.set_alpn_protocols([alpn])
        c.tls_set_context(ctx)
        if transport == "websockets":
            c.ws_set_options(path="/mqtt")
        connack = queue.Queue()
        c.on_connect = lambda c_, u, flags, rc, props: connack.put(rc)
        c.connect("localhost", port, keepalive=30)
        c.loop_start()
        assert connack.get(timeout=10) == 0, transport
        c.disconnect()
        c.loop_stop()
    import urllib.request
    https = ssl.create_default_context(cafile=node.ca_path)
    with urllib.request.urlopen(f"https://localhost:{node.https_port}/health", context=https, timeout=5) as r:
        assert r.status == 200


def test_ca_certificate_routes(node, tmp_path):
    iot = aws_client(node, "iot")
    ca_key, ca_pem = openssl_ca(tmp_path, "ca", "routes-ca")
    ca = iot.register_ca_certificate(caCertificate=ca_pem.read_text(), setAsActive=True, allowAutoRegistration=True,
                                     verificationCertificate=verification(iot, tmp_path, ca_key, ca_pem))
    desc = iot.describe_ca_certificate(certificateId=ca["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["autoRegistrationStatus"] == "ENABLE"
    assert [c["certificateId"] for c in iot.list_ca_certificates()["certificates"]] == [ca["certificateId"]]
    _, dev_pem = openssl_device(tmp_path, "d", "routes-dev", ca_key, ca_pem, "basicConstraints=CA:FALSE\n")
    dev = iot.register_certificate(certificatePem=dev_pem.read_text(), caCertificatePem=ca_pem.read_text(),
                                   status="PENDING_TRANSFER")
    assert iot.describe_certificate(certificateId=dev["certificateId"])["certificateDescription"]["status"] \
        == "PENDING_TRANSFER"
    by_ca = iot.list_certificates_by_ca(caCertificateId=ca["certificateId"])["certificates"]
    assert [c["certificateId"] for c in by_ca] == [dev["certificateId"]]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_ca_certificate(certificateId=ca["certificateId"])
    assert e.value.response["Error"]["Code"] == "CertificateStateException"
    iot.update_ca_certificate(certificateId=ca["certificateId"], newStatus="INACTIVE",
                              newAutoRegistrationStatus="DISABLE")
    iot.delete_ca_certificate(certificateId=ca["certificateId"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.describe_ca_certificate(certificateId=ca["certificateId"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # The device certificate outlives its CA's record; deleted, it can come back without a CA.
    iot.delete_certificate(certificateId=dev["certificateId"])
    without = iot.register_certificate_without_ca(certificatePem=dev_pem.read_text(), status="ACTIVE")
    desc = iot.describe_certificate(certificateId=without["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc.get("caCertificateId") is None
