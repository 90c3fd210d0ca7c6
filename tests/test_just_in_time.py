"""Just-in-time registration (JITR) and just-in-time provisioning (JITP) of device
certificates signed by a CA registered with a verification certificate for the account's
registration code: the first TLS connection of an unknown device certificate registers it
(PENDING_ACTIVATION and a `$aws/events/certificates/registered/{caCertificateId}` event), or
provisions it from the CA's template; devices are openssl-made and connect with paho-mqtt."""

import json
import queue
import socket
import ssl
import subprocess
import time

import botocore.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from conftest import Client, aws_client, next_json_on
from test_tls_certificates import allow_all, openssl_ca, openssl_device, tls_client

DEVICE_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})

JITP_TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Country": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                "AttributePayload": {"country": {"Ref": "AWS::IoT::Certificate::Country"}},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": ALLOW_ALL}},
    },
}


# ---------------------------------------------------------------------------------------------
# Helpers


def iot(node):
    return aws_client(node, "iot")


def device_cert(tmp_path, stem, subject, ca_key, ca_pem):
    """A P-256 device certificate with `subject` ("/CN=x/C=DE") signed by the CA: (key, cert) paths."""
    key, csr, pem, ext = (tmp_path / f"{stem}.{s}" for s in ("key", "csr", "pem", "ext"))
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", subject], check=True, capture_output=True)
    ext.write_text(DEVICE_EXT)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(pem), "-days", "10", "-extfile", str(ext)],
                   check=True, capture_output=True)
    return key, pem


def certificate_id(pem_path):
    """AWS's certificate id: the SHA-256 of the certificate's DER, in hex."""
    return x509.load_pem_x509_certificate(pem_path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def verification_cert(c, tmp_path, stem, ca_key, ca_pem, common_name=None):
    """A certificate signed by the CA's key whose CN is the registration code (or `common_name`)."""
    cn = common_name or c.get_registration_code()["registrationCode"]
    return openssl_device(tmp_path, stem, cn, ca_key, ca_pem, "basicConstraints=CA:FALSE\n")[1]


def register_ca(c, tmp_path, stem, **kw):
    """A new openssl CA registered with its verification certificate, active and (unless `kw`
    says otherwise) with auto-registration: (CA key path, CA cert path, CA certificate id)."""
    ca_key, ca_pem = openssl_ca(tmp_path, stem, f"{stem}-root")
    verification = verification_cert(c, tmp_path, f"{stem}-verify", ca_key, ca_pem)
    args = {"setAsActive": True, "allowAutoRegistration": True, **kw}
    made = c.register_ca_certificate(caCertificate=ca_pem.read_text(), verificationCertificate=verification.read_text(),
                                     **args)
    return ca_key, ca_pem, made["certificateId"]


def connack(node, cert_path, key_path, client_id, timeout=10):
    """Connects over TLS presenting the certificate file (a chain is allowed) and sends an MQTT
    3.1.1 CONNECT: the CONNACK's return code, or None when the node closed the connection
    (during or after the handshake) without one."""
    ctx = ssl.create_default_context(cafile=node.ca_path)
    ctx.load_cert_chain(str(cert_path), str(key_path))
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id.encode()
    raw = socket.create_connection(("127.0.0.1", node.mqtts_port), timeout=timeout)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(bytes([0x10, len(body)]) + body)
            answer = tls.recv(4)
    except socket.timeout:
        raise AssertionError(f"{client_id}: neither a CONNACK nor a close within {timeout}s")
    except (ssl.SSLError, OSError):
        return None
    finally:
        raw.close()
    if len(answer) < 4:
        return None
    assert answer[0] == 0x20, answer
    return answer[3]


def publishes_with(node, cert_path, key_path, tmp_path, client_id, topic):
    """Connects with paho over TLS and publishes: whether an anonymous plain-MQTT subscriber
    received it."""
    watcher = Client(node, f"watch-{client_id}")
    watcher.subscribe(topic, qos=1)
    c, connacks, _ = tls_client(node, cert_path.read_text(), key_path.read_text(), tmp_path, client_id)
    try:
        assert connacks.get(timeout=10) == 0, f"{client_id} refused"
        c.publish(topic, b"hello", qos=1)
        try:
            m = watcher.get(timeout=5)
        except queue.Empty:
            return False
        return (m.topic, m.payload) == (topic, b"hello")
    finally:
        c.disconnect()
        c.loop_stop()
        watcher.close()


def wait_for(fn, timeout=10.0):
    """Calls fn() until it returns a true value (ignoring AWS errors meanwhile); that value."""
    deadline = time.time() + timeout
    while True:
        try:
            got = fn()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - not there yet
            if time.time() > deadline:
                raise AssertionError(f"still failing after {timeout}s: {e}")
        if time.time() > deadline:
            raise AssertionError(f"still {got!r} after {timeout}s")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Registration code and CA registration


def test_the_registration_code_is_the_accounts_and_stays_the_same(node):
    """GetRegistrationCode: a non-empty code, the same on every call."""
    c = iot(node)
    code = c.get_registration_code()["registrationCode"]
    assert isinstance(code, str) and code
    assert c.get_registration_code()["registrationCode"] == code


def test_a_ca_needs_a_verification_certificate_for_the_registration_code(node, tmp_path):
    """RegisterCACertificate proves possession of the CA's key: the verification certificate
    must be signed by that key and carry the registration code as its CN. SNI_ONLY mode
    needs no verification certificate."""
    c = iot(node)
    ca_key, ca_pem = openssl_ca(tmp_path, "ca", "verified-ca")
    other_key, other_pem = openssl_ca(tmp_path, "other", "other-ca")
    wrong_cn = verification_cert(c, tmp_path, "wrong-cn", ca_key, ca_pem, common_name="not-the-code")
    wrong_key = verification_cert(c, tmp_path, "wrong-key", other_key, other_pem)
    with pytest.raises(c.exceptions.CertificateValidationException):
        c.register_ca_certificate(caCertificate=ca_pem.read_text(), verificationCertificate=wrong_cn.read_text(),
                                  setAsActive=True, allowAutoRegistration=True)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.register_ca_certificate(caCertificate=ca_pem.read_text(), verificationCertificate=wrong_key.read_text(),
                                  setAsActive=True, allowAutoRegistration=True)
    assert e.value.response["Error"]["Code"] in ("CertificateValidationException", "InvalidRequestException")
    assert c.list_ca_certificates()["certificates"] == []

    good = verification_cert(c, tmp_path, "good", ca_key, ca_pem)
    made = c.register_ca_certificate(caCertificate=ca_pem.read_text(), verificationCertificate=good.read_text(),
                                     setAsActive=True, allowAutoRegistration=True)
    desc = c.describe_ca_certificate(certificateId=made["certificateId"])["certificateDescription"]
    assert (desc["status"], desc["autoRegistrationStatus"], desc["certificateMode"]) == ("ACTIVE", "ENABLE", "DEFAULT")

    sni = c.register_ca_certificate(caCertificate=other_pem.read_text(), certificateMode="SNI_ONLY", setAsActive=True)
    desc = c.describe_ca_certificate(certificateId=sni["certificateId"])["certificateDescription"]
    assert desc["certificateMode"] == "SNI_ONLY" and desc["status"] == "ACTIVE"
    assert sorted(x["certificateId"] for x in c.list_ca_certificates()["certificates"]) == \
        sorted([made["certificateId"], sni["certificateId"]])


# ---------------------------------------------------------------------------------------------
# JITR


def test_jitr_registers_an_unknown_device_certificate_on_its_first_connection(node, tmp_path):
    """A device certificate signed by a CA with auto-registration connects (alone, or as a
    chain with its CA): the connection is refused, the certificate is registered
    PENDING_ACTIVATION and the registered event is published; once activated with a policy
    the device connects and publishes."""
    c = iot(node)
    ca_key, ca_pem, ca_id = register_ca(c, tmp_path, "jitr-ca")
    watcher = Client(node, "jitr-watcher")
    watcher.subscribe("$aws/events/certificates/registered/#", qos=1)
    account = c.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["certificateArn"].split(":")[4]

    alone_key, alone_pem = device_cert(tmp_path, "alone", "/CN=jitr-alone", ca_key, ca_pem)
    chained_key, chained_pem = device_cert(tmp_path, "chained", "/CN=jitr-chained", ca_key, ca_pem)
    chain = tmp_path / "chain.pem"
    chain.write_text(chained_pem.read_text() + ca_pem.read_text())
    for name, key, presented, pem in (("jitr-alone", alone_key, alone_pem, alone_pem),
                                      ("jitr-chained", chained_key, chain, chained_pem)):
        assert connack(node, presented, key, name) != 0, f"{name}'s first connection was accepted"
        event = next_json_on(watcher, f"$aws/events/certificates/registered/{ca_id}", timeout=10)
        cert_id = certificate_id(pem)
        assert {"certificateId", "caCertificateId", "timestamp", "certificateStatus", "awsAccountId",
                "certificateRegistrationTimestamp"} <= set(event), event
        assert (event["certificateId"], event["caCertificateId"], event["certificateStatus"], event["awsAccountId"]) == \
            (cert_id, ca_id, "PENDING_ACTIVATION", account)
        desc = c.describe_certificate(certificateId=cert_id)["certificateDescription"]
        assert (desc["status"], desc["caCertificateId"]) == ("PENDING_ACTIVATION", ca_id)

    by_ca = c.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]
    assert sorted(x["certificateId"] for x in by_ca) == sorted([certificate_id(alone_pem), certificate_id(chained_pem)])
    # The device's operator (a rule or a Lambda function, in AWS) activates it.
    cert_id = certificate_id(alone_pem)
    c.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    allow_all(c, c.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"])
    assert publishes_with(node, alone_pem, alone_key, tmp_path, "jitr-alone", "jitr/alone")
    watcher.close()


def test_a_ca_without_auto_registration_registers_nothing(node, tmp_path):
    """Without allowAutoRegistration the unknown device certificate is refused and neither
    registered nor announced."""
    c = iot(node)
    ca_key, ca_pem, ca_id = register_ca(c, tmp_path, "manual-ca", allowAutoRegistration=False)
    assert c.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["autoRegistrationStatus"] == "DISABLE"
    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/events/certificates/registered/#", qos=1)
    key, pem = device_cert(tmp_path, "dev", "/CN=manual-device", ca_key, ca_pem)
    assert connack(node, pem, key, "manual-device") != 0
    watcher.expect_none(1.5)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_certificate(certificateId=certificate_id(pem))
    assert c.list_certificates_by_ca(caCertificateId=ca_id)["certificates"] == []
    watcher.close()


# ---------------------------------------------------------------------------------------------
# JITP


@pytest.mark.parametrize("source", ["templateBody", "templateName"])
def test_jitp_provisions_a_device_from_its_cas_template_on_first_connection(node, tmp_path, source):
    """A CA registered with a registrationConfig (a template body, or a named template of
    type JITP): the first connection of a device certificate creates the thing from the
    certificate's subject, activates and attaches the certificate with the template's policy;
    the device reconnects and publishes."""
    c = iot(node)
    if source == "templateBody":
        config = {"templateBody": json.dumps(JITP_TEMPLATE), "roleArn": "arn:aws:iam::123456789012:role/JITP"}
    else:
        c.create_provisioning_template(templateName="jitp", templateBody=json.dumps(JITP_TEMPLATE), type="JITP",
                                       provisioningRoleArn="arn:aws:iam::123456789012:role/JITP", enabled=True)
        assert c.describe_provisioning_template(templateName="jitp")["type"] == "JITP"
        config = {"templateName": "jitp"}
    ca_key, ca_pem, ca_id = register_ca(c, tmp_path, "jitp-ca", registrationConfig=config)
    key, pem = device_cert(tmp_path, "dev", "/CN=jitp-device-1/C=DE", ca_key, ca_pem)
    assert connack(node, pem, key, "jitp-device-1") != 0, "the first connection provisions, it is not accepted"

    thing = wait_for(lambda: c.describe_thing(thingName="jitp-device-1"))
    assert thing["attributes"] == {"country": "DE"}
    cert_id = certificate_id(pem)
    desc = c.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert (desc["status"], desc["caCertificateId"]) == ("ACTIVE", ca_id)
    assert c.list_thing_principals(thingName="jitp-device-1")["principals"] == [desc["certificateArn"]]
    assert c.list_attached_policies(target=desc["certificateArn"])["policies"], "the template's policy"
    assert publishes_with(node, pem, key, tmp_path, "jitp-device-1", "jitp/device-1")
