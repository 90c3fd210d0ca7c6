//! The device provisioning MQTT API: CreateKeysAndCertificate and CreateCertificateFromCsr
//! (a new PENDING_ACTIVATION certificate and an ownership token for it), and RegisterThing
//! (a template provisioned for the certificate the token names). Answers go to
//! `{request}/accepted` or `{request}/rejected`, in the request's format, and only to the
//! connection that asked.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{now_s, ProvisioningRuntime, Rejection, Subject};
use crate::broker::message::Message;
use crate::identity::certs::{self, Certificate};
use crate::identity::Command as IdentityCommand;
use crate::meta::Command;
use crate::provisioning::wire::{self, Operation};

/// Most provisioning requests one client may have under way at once; more are rejected
/// with 429 Throttling.
pub const MAX_IN_FLIGHT: usize = 8;

impl ProvisioningRuntime {
    /// Serves one request published by `client` on this node.
    pub fn handle(self: &Arc<Self>, client: Arc<str>, req: wire::Request, payload: &[u8]) {
        if !self.begin_request(&client) {
            let why = format!("More than {MAX_IN_FLIGHT} provisioning requests of this client are under way");
            return self.answer(
                client,
                &req,
                Err(Rejection { status_code: 429, error_code: "Throttling", message: why }),
            );
        }
        let generation = self.broker.get().and_then(|b| b.connection_generation(&client));
        let connection = format!("{client}#{}", generation.unwrap_or(0));
        let body = wire::decode(req.format, payload);
        let me = self.clone();
        actix_rt::spawn(async move {
            let answer = match body {
                Ok(body) => me.serve(&client, &connection, &req, body).await,
                Err(why) => Err(Rejection::bad("InvalidPayload", why)),
            };
            me.end_request(&client);
            me.answer(client, &req, answer);
        });
    }

    /// Counts a request of `client` under way; false when it already has
    /// [`MAX_IN_FLIGHT`] (each one may create a certificate: a client cannot make the node
    /// issue them faster than it commits them).
    fn begin_request(&self, client: &str) -> bool {
        let mut in_flight = self.in_flight.lock();
        let n = in_flight.entry(client.to_string()).or_insert(0);
        if *n >= MAX_IN_FLIGHT {
            return false;
        }
        *n += 1;
        true
    }

    fn end_request(&self, client: &str) {
        let mut in_flight = self.in_flight.lock();
        if let Some(n) = in_flight.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(client);
            }
        }
    }

    async fn serve(
        &self,
        client: &str,
        connection: &str,
        req: &wire::Request,
        body: Map<String, Value>,
    ) -> Result<Value, Rejection> {
        match &req.op {
            Operation::CreateKeysAndCertificate => {
                let issued = self.issuer.issue_with_new_key().map_err(|e| Rejection {
                    status_code: 500,
                    error_code: "InternalFailure",
                    message: format!("Cannot issue a certificate: {e}"),
                })?;
                let id = self.register_pending(&issued.der, issued.certificate_pem.clone()).await?;
                let (_, private) = issued.key_pair.unwrap_or_default();
                Ok(json!({
                    "certificateId": id,
                    "certificatePem": issued.certificate_pem,
                    "privateKey": private,
                    "certificateOwnershipToken": self.tokens.issue(&id, connection, now_s() + self.token_secs),
                }))
            }
            Operation::CreateCertificateFromCsr => {
                let csr = body
                    .get("certificateSigningRequest")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Rejection::bad("InvalidPayload", "certificateSigningRequest is required"))?;
                let issued = self.issuer.issue_for_csr(csr).map_err(|e| Rejection::bad("InvalidCsr", e))?;
                let id = self.register_pending(&issued.der, issued.certificate_pem.clone()).await?;
                Ok(json!({
                    "certificateId": id,
                    "certificatePem": issued.certificate_pem,
                    "certificateOwnershipToken": self.tokens.issue(&id, connection, now_s() + self.token_secs),
                }))
            }
            Operation::RegisterThing { template } => {
                let token = body.get("certificateOwnershipToken").and_then(Value::as_str).unwrap_or("");
                let certificate_id = self
                    .tokens
                    .check(token, connection, now_s())
                    .map_err(|r| Rejection::bad("InvalidCertificateOwnershipToken", r.0))?;
                let record = self.usable_template(template)?;
                let parameters = match body.get("parameters") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(p)) => p.clone(),
                    Some(_) => return Err(Rejection::bad("InvalidParameters", "parameters must be an object")),
                };
                let subject = Subject {
                    certificate_id: Some(certificate_id),
                    pending: None,
                    claim_certificate_id: self.claim_of(client),
                    client_id: Some(client.to_string()),
                };
                let done = self
                    .provision(
                        record.default_body(),
                        Some(&record.template_arn),
                        record.pre_provisioning_hook.as_ref(),
                        parameters,
                        &subject,
                    )
                    .await?;
                let mut answer = json!({ "deviceConfiguration": done.device_configuration });
                if let Some((name, _)) = &done.made.thing {
                    answer["thingName"] = json!(name);
                }
                Ok(answer)
            }
        }
    }

    /// The certificate id the connection of `client` authenticated with, if any (the
    /// hook's `claimCertificateId`).
    fn claim_of(&self, client: &str) -> Option<String> {
        self.claims.lock().get(client).cloned()
    }

    /// Registers a certificate the node just issued as PENDING_ACTIVATION (RegisterThing
    /// activates it); its id.
    async fn register_pending(&self, der: &[u8], pem: String) -> Result<String, Rejection> {
        let parsed = certs::parse_der(der).map_err(Rejection::from)?;
        let record = Certificate::device(&parsed, &self.arn_prefix(), pem, None, "PENDING_ACTIVATION", now_s());
        let id = record.certificate_id.clone();
        self.propose(Command::Identity(IdentityCommand::RegisterCertificate { record })).await?;
        Ok(id)
    }

    /// Publishes the answer to the connection that asked.
    fn answer(&self, client: Arc<str>, req: &wire::Request, answer: Result<Value, Rejection>) {
        let (suffix, doc) = match answer {
            Ok(doc) => ("accepted", doc),
            Err(r) => {
                tracing::info!(client_id = %client, topic = %req.topic, status = r.status_code, error = r.error_code, reason = %r.message, "provisioning request rejected");
                ("rejected", r.document())
            }
        };
        let mut msg = Message::internal(format!("{}/{suffix}", req.topic), Value::Null);
        msg.payload = wire::encode(req.format, &doc).into();
        self.publisher.publish_to(client, Arc::new(msg));
    }
}
