//! The connection actor: owns one client socket, decodes packets, applies the MQTT
//! rules that belong to a connection (CONNECT, keep-alive, topic aliases, flow control,
//! packet size) and calls the broker core for everything shared.
//!
//! Invariant: a PUBACK/PUBREC is written only after the storage batch of its publish is
//! durable; acknowledgements leave in the order their publishes arrived.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{WriteHandler, Writer};
use actix::prelude::*;
use actix::WeakAddr;
use bytes::BytesMut;
use ferrite_mqtt::codec;
use ferrite_mqtt::packet::*;
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::{self as listener_auth, Choice, ListenerAuth};
use super::backlog::{Backlog, Counted};
use super::decide::connect::{self as connect_rules, Admission};
use super::decide::outbound::{self, Outbound};
use super::decide::publish::{self as publish_rules, Inbound, Refusal};
use super::decide::subscribe::{self, FilterDecision};
use super::decide::{acks, publish::Limits};
use super::framing::{PacketDecoder, PacketStream, ReadError};
use super::Origin;
use crate::broker::lifecycle::{self, DisconnectReason};
use crate::broker::message::{new_id, now_ms, Message};
use crate::broker::session::Send as SessionSend;
use crate::broker::{Broker, ConnLink, DeferredWakes, Kick, SessionHandle, Wake};
use crate::identity::authz::{Action, ConnectionAuthz, Principal};
use crate::identity::custom_auth;
use crate::services::Services;

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a certificate-authenticated connection checks that its certificate is still
/// ACTIVE (a revoked certificate's connections close within this period).
const CERTIFICATE_CHECK_PERIOD: Duration = Duration::from_millis(500);

/// How long a publisher's reads pause when one of its subscribers is congested.
const BACKPRESSURE_PAUSE: Duration = Duration::from_millis(1);

/// How often a connection whose outbound backlog is over its bound looks at it again.
const BACKLOG_RECHECK: Duration = Duration::from_millis(20);

/// Time to look at the outbound backlog again (see [`BACKLOG_RECHECK`]).
#[derive(Message)]
#[rtype(result = "()")]
struct RecheckBacklog;

/// A storage batch of an inbound publish became durable.
#[derive(Message)]
#[rtype(result = "()")]
struct Committed {
    ticket: u64,
    ok: bool,
}

struct PendingAck {
    ticket: u64,
    packet: Option<Packet>,
    done: bool,
}

/// State that exists once CONNECT was accepted.
struct Attached {
    version: ProtocolVersion,
    client_id: Arc<str>,
    session: Arc<SessionHandle>,
    generation: u64,
    will: Option<Will>,
    client_max_packet: usize,
    /// Inbound topic aliases and unacknowledged publishes.
    inbound: Inbound,
    /// Outbound topic aliases.
    outbound: Outbound,
    problem_info: bool,
}

/// One client connection.
pub struct Connection<W: AsyncWrite + Unpin + 'static> {
    /// The registry, identity and cluster services (policies, authorizers, takeover).
    services: Arc<Services>,
    /// The broker core (`services.broker`), used on every packet.
    broker: Arc<Broker>,
    writer: Writer<Counted<W>, io::Error>,
    /// Bytes handed to `writer` that the socket has not taken yet.
    backlog: Backlog,
    /// A [`RecheckBacklog`] is on its way.
    recheck_pending: bool,
    /// The client's input has ended.
    read_done: bool,
    /// This actor, for the backlog recheck timer.
    me: WeakAddr<Self>,
    peer: SocketAddr,
    transport: &'static str,
    /// How the listener authenticates, and the client certificate from the handshake.
    auth: Arc<ListenerAuth>,
    client_cert: Option<Arc<[u8]>>,
    /// The access key that presigned the WebSocket upgrade (or why it is refused).
    presigned: Option<Result<String, String>>,
    /// The AWS IoT log level of this client, and the logging configuration's generation it
    /// was computed at.
    log_level: (u64, Option<u8>),
    /// The connection's policies and decision cache, once CONNECT is accepted.
    authz: Option<ConnectionAuthz>,
    version: Rc<Cell<Option<ProtocolVersion>>>,
    attached: Option<Attached>,
    keep_alive: Duration,
    last_packet: Instant,
    out: BytesMut,
    pending_acks: VecDeque<PendingAck>,
    next_ticket: u64,
    closing: bool,
    /// Names this connection in lifecycle events.
    session_id: String,
    /// Why the connection ends, once known (the first cause wins; none means the socket was
    /// lost).
    end_reason: Option<DisconnectReason>,
    /// CONNECT must have arrived by then, counted from the socket's accept whatever the
    /// transport (TLS handshake and WebSocket upgrade included).
    connect_deadline: Instant,
    /// When the client last acknowledged a delivery (or connected): a client that takes
    /// its bytes but acknowledges nothing while its in-flight window is full is stuck too.
    delivery_progress: Instant,
    /// Subscribers of the publishes routed since the actor last yielded, woken together.
    deferred_wakes: DeferredWakes,
    /// This socket's place in its listener's count, given back when the actor ends.
    _slot: super::admission::Slot,
}

impl<W: AsyncWrite + Unpin + 'static> Connection<W> {
    /// Starts a connection actor on the current arbiter for an accepted stream.
    pub fn start<R: AsyncRead + Unpin + 'static>(services: Arc<Services>, read: R, write: W, origin: Origin) {
        let broker = services.broker.clone();
        let Origin { peer, transport, auth, client_cert, presigned, accepted, slot } = origin;
        let version = Rc::new(Cell::new(None));
        let decoder = PacketDecoder {
            version: version.clone(),
            max_packet_size: broker.config.max_packet_size(),
            metrics: broker.metrics.clone(),
        };
        Connection::create(move |ctx| {
            ctx.add_stream(PacketStream::new(read, decoder));
            let backlog = Backlog::default();
            let writer = Writer::new(Counted::new(write, &backlog), ctx);
            broker.metrics.connections_open.inc();
            broker.metrics.connections_total.inc();
            Connection {
                services,
                broker,
                writer,
                backlog,
                recheck_pending: false,
                read_done: false,
                me: ctx.address().downgrade(),
                peer,
                transport,
                auth,
                client_cert,
                presigned,
                log_level: (u64::MAX, None),
                authz: None,
                version,
                attached: None,
                keep_alive: Duration::ZERO,
                last_packet: Instant::now(),
                out: BytesMut::new(),
                pending_acks: VecDeque::new(),
                next_ticket: 0,
                closing: false,
                session_id: format!("{:032x}", rand::random::<u128>()),
                end_reason: None,
                connect_deadline: accepted + CONNECT_TIMEOUT,
                delivery_progress: Instant::now(),
                deferred_wakes: DeferredWakes::default(),
                _slot: slot,
            }
        });
    }

    fn send(&mut self, packet: &Packet) {
        let v = self.version.get().unwrap_or(ProtocolVersion::V311);
        codec::encode(packet, v, &mut self.out);
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.broker.metrics.bytes_sent_total.add(self.out.len() as u64);
            self.backlog.handed(self.out.len());
            self.writer.write(&self.out);
            self.out.clear();
        }
    }

    /// Ends the connection; for MQTT 5 a DISCONNECT with `reason` goes first.
    fn close(&mut self, ctx: &mut Context<Self>, reason_code: Option<u8>, reason_text: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        if let (Some(code), Some(ProtocolVersion::V5), true) =
            (reason_code, self.version.get(), self.attached.is_some())
        {
            let mut properties = Properties::default();
            if self.attached.as_ref().is_some_and(|a| a.problem_info) && !reason_text.is_empty() {
                properties.reason_string = Some(reason_text.to_string());
            }
            self.send(&Packet::Disconnect(Disconnect { reason_code: code, properties }));
        }
        self.shutdown(ctx);
    }

    /// Flushes what is buffered, then closes the socket; the actor stops once the
    /// writer has finished (or after a grace period if the peer stops reading).
    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        self.flush();
        // The write side ends after the last packet; input is read (and ignored) until the
        // client closes or the grace period ends, so the kernel does not reset the
        // connection with the DISCONNECT or CONNACK unread.
        self.backlog.shut_down_when_flushed();
        self.writer.close();
        self.detach();
        ctx.run_later(Duration::from_secs(5), |_, ctx| ctx.stop());
    }

    /// Ends the connection's hold on its session, once: the disconnected event, the will (if
    /// still allowed) and the session's release. Runs as soon as the connection decides to
    /// close, so that the session is free (and not listed as connected) while the socket
    /// is still being shut down, and otherwise when the actor stops.
    fn detach(&mut self) {
        if self.attached.is_none() {
            return;
        }
        let reason = self.end_reason.unwrap_or(DisconnectReason::ConnectionLost);
        self.publish_presence(lifecycle::Presence::Disconnected(reason));
        self.iot_event(None, "Disconnect", None, None);
        if let Some(a) = self.attached.take() {
            if self.authz.as_ref().is_some_and(|z| z.certificate_id().is_some()) {
                self.services.provisioning.disconnected(&a.client_id);
            }
            let will = a.will.filter(|w| self.will_still_allowed(&a.client_id, w));
            self.broker.close_session(&a.session, a.generation, will);
        }
    }

    /// Records why the connection ends, unless an earlier cause was recorded.
    fn ending(&mut self, reason: DisconnectReason) {
        self.end_reason.get_or_insert(reason);
    }

    /// Logs an AWS IoT event (`iot_logging`) of `client_id`, or of the attached client, when
    /// its level allows. Costs one atomic load while logging is off for this client.
    fn iot_event(
        &mut self,
        client_id: Option<&str>,
        event_type: &'static str,
        failure: Option<String>,
        topic: Option<&str>,
    ) {
        let generation = self.services.meta.state().logging.generation();
        if self.log_level == (generation, None) {
            return;
        }
        let services = self.services.clone();
        let logging = &services.meta.state().logging;
        let client_id: Arc<str> = match (client_id, &self.attached) {
            (Some(c), _) => c.into(),
            (None, Some(a)) => a.client_id.clone(),
            (None, None) => return,
        };
        if self.log_level.0 != generation {
            let meta = services.meta.state();
            let groups: Vec<String> = if logging.has_group_levels() {
                meta.registry.groups_of_thing(&client_id).into_iter().map(|(g, _)| g).collect()
            } else {
                Vec::new()
            };
            let ip = self.peer.ip().to_string();
            self.log_level = (generation, logging.level_for(&client_id, &ip, self.principal_identifier(), &groups));
        }
        let Some(verbosity) = self.log_level.1 else { return };
        let event = crate::iot_logging::Event {
            level: if failure.is_some() { "ERROR" } else { "INFO" },
            status: if failure.is_some() { "Failure" } else { "Success" },
            event_type,
            topic: topic.map(str::to_string),
            client_id: client_id.to_string(),
            principal_id: self.authz.as_ref().map(|a| a.principal_identifier().to_string()),
            source_ip: self.peer.ip().to_string(),
            source_port: self.peer.port(),
            reason: failure.as_ref().map(|_| "AUTHORIZATION_FAILURE".to_string()),
            details: failure,
            rule_name: None,
            trace_id: None,
        };
        services.iot_log.log(verbosity, &event);
    }

    /// Who the lifecycle events say the client is.
    fn principal_identifier(&self) -> &str {
        self.authz.as_ref().map_or(lifecycle::ANONYMOUS_PRINCIPAL, |a| a.principal_identifier())
    }

    /// Publishes a presence event for the attached client.
    fn publish_presence(&self, event: lifecycle::Presence<'_>) {
        let Some(a) = self.attached.as_ref() else { return };
        let now = now_ms();
        let state = match &event {
            lifecycle::Presence::Connected { .. } => {
                crate::fleet_index::documents::Connectivity { connected: true, timestamp: now, disconnect_reason: None }
            }
            lifecycle::Presence::Disconnected(reason) => crate::fleet_index::documents::Connectivity {
                connected: false,
                timestamp: now,
                disconnect_reason: Some(reason.as_str().to_string()),
            },
        };
        self.services.fleet_index.connectivity_changed(&a.client_id, state);
        if !lifecycle::has_events(&a.client_id) {
            return;
        }
        let version = self.broker.lifecycle_versions.next();
        let (topic, doc) =
            lifecycle::presence(&a.client_id, &self.session_id, self.principal_identifier(), event, now_ms(), version);
        if let Some(routes) = &self.services.routes {
            routes.broadcast_presence(&crate::broker::message::Message::internal(topic.clone(), doc.clone()));
        }
        self.broker.publish_internal(topic, doc);
    }

    /// Publishes a subscribed/unsubscribed event for the attached client.
    fn publish_subscriptions(&self, subscribed: bool, topics: &[String]) {
        let Some(a) = self.attached.as_ref() else { return };
        if topics.is_empty() || !lifecycle::has_events(&a.client_id) {
            return;
        }
        let principal = self.principal_identifier();
        let (topic, doc) =
            lifecycle::subscriptions(&a.client_id, &self.session_id, principal, subscribed, topics, now_ms());
        self.broker.publish_internal(topic, doc);
    }

    fn protocol_violation(&mut self, ctx: &mut Context<Self>, code: u8, why: &str) {
        self.ending(DisconnectReason::ClientError);
        self.broker.metrics.protocol_errors_total.inc();
        tracing::warn!(peer = %self.peer, client_id = ?self.attached.as_ref().map(|a| a.client_id.clone()), reason_code = code, why, "closing connection: protocol violation");
        self.close(ctx, Some(code), why);
    }

    fn refuse_connect(&mut self, ctx: &mut Context<Self>, version: ProtocolVersion, code: u8, why: &str) {
        self.broker.metrics.connects_refused_total.inc();
        tracing::warn!(peer = %self.peer, reason_code = code, why, "refusing CONNECT");
        self.version.set(Some(version));
        let mut properties = Properties::default();
        if version.is_v5() {
            properties.reason_string = Some(why.to_string());
        }
        self.send(&Packet::ConnAck(ConnAck { session_present: false, reason_code: code, properties }));
        self.shutdown(ctx);
    }

    fn on_connect(&mut self, ctx: &mut Context<Self>, c: Connect) {
        let admission =
            match connect_rules::admit(&c, &self.broker.config, || format!("ferrite-{:016x}", rand::random::<u64>())) {
                Ok(a) => a,
                Err((code, why)) => return self.refuse_connect(ctx, c.protocol, code, why),
            };
        let client_id = admission.client_id.clone();
        let services = self.services.clone();
        let meta = services.meta.state();
        let presented = listener_auth::Presented {
            certificate: self.client_cert.is_some(),
            presigned: self.presigned.is_some(),
            username: c.username.as_deref(),
            password: c.password.is_some(),
        };
        let choice = listener_auth::choose(&self.auth, &presented, meta);
        if let (Choice::Certificate, Some(der)) = (&choice, &self.client_cert) {
            if let Some(registering) = services.provisioning.just_in_time(der) {
                // JITR/JITP: the certificate is registered (or provisioned) now, and this
                // first connection is refused, as AWS does; the device connects again.
                let protocol = c.protocol;
                ctx.wait(registering.into_actor(self).map(move |why, act, ctx| {
                    act.refuse_unauthorized(ctx, protocol, &client_id, &why);
                }));
                return;
            }
        }
        let principal = match choice {
            Choice::Anonymous => Ok(Principal::Unrestricted),
            Choice::Certificate => match &self.client_cert {
                Some(der) => listener_auth::certificate_principal(meta, der),
                None => Err("no client certificate was presented".into()),
            },
            Choice::Jwt(jwt) => {
                let password = c.password.clone().unwrap_or_default();
                listener_auth::jwt_principal(&jwt, meta, &client_id, &password).map(|(principal, valid_for)| {
                    // The token's `exp` ends the connection, as an authorizer's
                    // disconnectAfterInSeconds does.
                    self.close_when_authorization_ends(ctx, valid_for, "the JWT expired", "token expired");
                    principal
                })
            }
            Choice::Presigned => match self.presigned.clone() {
                Some(Ok(key)) => Ok(Principal::AccessKey { key_id: key }),
                Some(Err(why)) => Err(why),
                None => Err("the WebSocket upgrade was not presigned".into()),
            },
            Choice::Refuse(why) => Err(why),
            Choice::Custom(record) => return self.ask_authorizer(ctx, c, admission, record),
        };
        match principal {
            Ok(principal) => self.admit(ctx, c, admission, principal),
            Err(why) => self.refuse_unauthorized(ctx, c.protocol, &client_id, &why),
        }
    }

    /// Refuses a CONNECT that failed authentication or authorization (AWS's
    /// Connect.AuthError).
    fn refuse_unauthorized(&mut self, ctx: &mut Context<Self>, version: ProtocolVersion, client_id: &str, why: &str) {
        self.broker.metrics.connect_auth_errors_total.inc();
        self.iot_event(Some(client_id), "Connect", Some(why.to_string()), None);
        tracing::warn!(event = "Connect.AuthError", client_id = %client_id, peer = %self.peer, transport = self.transport, reason = %why, "connection refused: not authorized");
        self.refuse_connect(ctx, version, reason::NOT_AUTHORIZED, "not authorized");
    }

    /// Custom authentication: checks the token signature, then asks the authorizer's
    /// endpoint; the connection reads nothing else until it answers.
    fn ask_authorizer(
        &mut self,
        ctx: &mut Context<Self>,
        c: Connect,
        admission: Admission,
        record: crate::identity::authorizers::AuthorizerRecord,
    ) {
        let client_id = admission.client_id.clone();
        let query = c.username.as_deref().map(custom_auth::username_query).unwrap_or_default();
        let token = match custom_auth::token_of(&record, &query) {
            Ok(t) => t,
            Err(why) => return self.refuse_unauthorized(ctx, c.protocol, &client_id, &why),
        };
        let presented = custom_auth::Presented {
            username: c.username.clone(),
            password: c.password.as_ref().map(|p| p.to_vec()),
            client_id: client_id.to_string(),
            source_ip: Some(self.peer.ip()),
            server_name: None,
            tls: self.client_cert.is_some() || self.transport != "tcp" && self.transport != "websocket",
            connection_id: self.session_id.clone(),
        };
        let event = custom_auth::event(&presented, token.as_deref(), !record.signing_disabled);
        let name = record.authorizer_name.clone();
        let ask = async move { custom_auth::invoke(&record, &event).await };
        ctx.wait(ask.into_actor(self).map(move |answer, act, ctx| match answer {
            Ok(Some(verdict)) => {
                let principal =
                    Principal::Documents { principal_id: verdict.principal_id.clone(), documents: verdict.documents };
                act.admit(ctx, c, admission, principal);
                if act.attached.is_some() {
                    act.arm_authorizer_timers(ctx, presented, name, verdict.disconnect_after, verdict.refresh_after);
                }
                act.flush();
            }
            Ok(None) => act.refuse_unauthorized(
                ctx,
                c.protocol,
                &client_id,
                &format!("authorizer {name} did not authenticate the client"),
            ),
            Err(e) => act.refuse_unauthorized(ctx, c.protocol, &client_id, &format!("authorizer {name} failed: {e}")),
        }));
    }

    /// Closes the connection (NOT_AUTHORIZED) `after` from now, when what authenticated it
    /// (an authorizer's answer, a JWT) stops being valid; `why` goes into the log,
    /// `reason_text` to an MQTT 5 client.
    fn close_when_authorization_ends(
        &mut self,
        ctx: &mut Context<Self>,
        after: Duration,
        why: &'static str,
        reason_text: &'static str,
    ) {
        ctx.run_later(after, move |act, ctx| {
            if act.closing {
                return;
            }
            act.ending(DisconnectReason::AuthError);
            tracing::info!(client_id = ?act.attached.as_ref().map(|a| a.client_id.clone()), "closing connection: {why}");
            act.close(ctx, Some(reason::NOT_AUTHORIZED), reason_text);
        });
    }

    /// Applies an authorizer's `disconnectAfterInSeconds` and `refreshAfterInSeconds`.
    fn arm_authorizer_timers(
        &mut self,
        ctx: &mut Context<Self>,
        presented: custom_auth::Presented,
        name: String,
        disconnect_after: Option<Duration>,
        refresh_after: Option<Duration>,
    ) {
        if let Some(after) = disconnect_after {
            self.close_when_authorization_ends(
                ctx,
                after,
                "the authorizer's disconnectAfterInSeconds passed",
                "authorization expired",
            );
        }
        if let Some(every) = refresh_after {
            ctx.run_interval(every, move |act, ctx| {
                let Some(record) = act.services.meta.state().identity.authorizer(&name) else { return };
                let query = presented.username.as_deref().map(custom_auth::username_query).unwrap_or_default();
                let token = custom_auth::token_of(&record, &query).ok().flatten();
                let event = custom_auth::event(&presented, token.as_deref(), !record.signing_disabled);
                let ask = async move { custom_auth::invoke(&record, &event).await };
                ctx.spawn(ask.into_actor(act).map(|answer, act, ctx| match answer {
                    Ok(Some(verdict)) => {
                        if let Some(authz) = act.authz.as_mut() {
                            authz.replace_documents(verdict.documents);
                        }
                    }
                    other => {
                        let why = match other {
                            Err(e) => e,
                            _ => "the authorizer no longer authenticates the client".into(),
                        };
                        act.ending(DisconnectReason::AuthError);
                        tracing::warn!(client_id = ?act.attached.as_ref().map(|a| a.client_id.clone()), reason = %why, "closing connection: authorizer refresh failed");
                        act.close(ctx, Some(reason::NOT_AUTHORIZED), "not authorized");
                    }
                }));
            });
        }
    }

    /// Whether the connection's policies allow `action` on `name`.
    fn allowed(&mut self, action: Action, name: &str) -> bool {
        match self.authz.as_mut() {
            None => true,
            Some(authz) => authz.allows(self.services.meta.state(), action, name),
        }
    }

    /// Accepts an authenticated CONNECT: checks iot:Connect (and the will's publish), opens
    /// the session and answers CONNACK.
    fn admit(&mut self, ctx: &mut Context<Self>, c: Connect, admission: Admission, principal: Principal) {
        let client_id = admission.client_id.clone();
        let region = self.broker.config.region.clone();
        self.authz = Some(ConnectionAuthz::new(principal, client_id.clone(), Some(self.peer.ip()), &region));
        if !self.allowed(Action::Connect, &client_id) {
            return self.refuse_unauthorized(
                ctx,
                c.protocol,
                &client_id,
                "no policy allows iot:Connect for this client id",
            );
        }
        if let Some(w) = &c.will {
            // The rule an inbound PUBLISH meets, reserved topics included.
            if let Some(action) = publish_rules::denied_action(&w.topic, w.retain, &mut |a, t| self.allowed(a, t)) {
                return self.refuse_unauthorized(
                    ctx,
                    c.protocol,
                    &client_id,
                    &format!("the will may not be published to {} ({action})", w.topic),
                );
            }
        }
        if let Some(id) = self.authz.as_ref().and_then(|a| a.certificate_id()) {
            self.services.provisioning.connected(&client_id, id);
        }
        self.keep_alive = Duration::from_secs(admission.keep_alive as u64);
        let Some(takeover) = self.services.takeover.clone() else {
            return self.attach_session(ctx, c, admission, Default::default());
        };
        // In a cluster the client id is claimed first: the node that held the session
        // hands it over, and a node cut off from the majority cannot admit the client.
        let (claim_id, resume) = (client_id.clone(), !c.clean_start);
        let claiming = takeover.clone();
        let claim = async move { claiming.claim(&claim_id, resume).await };
        ctx.wait(claim.into_actor(self).map(move |answer, act, ctx| match answer {
            Ok(claimed) => {
                act.attach_session(ctx, c, admission, claimed);
                if takeover.superseded(&client_id) {
                    // Another node's claim was applied while this one waited for the
                    // handover: that connection is the later one and wins.
                    tracing::info!(client_id = %client_id, "a later claim from another node replaced this connection's");
                    act.ending(DisconnectReason::DuplicateClientId);
                    act.close(ctx, Some(reason::SESSION_TAKEN_OVER), "session taken over");
                    takeover.give_up(&client_id);
                }
                act.flush();
            }
            Err(e) => {
                tracing::warn!(client_id = %client_id, error = %e, "connection refused: the client id could not be claimed");
                act.refuse_connect(ctx, c.protocol, reason::SERVER_UNAVAILABLE, "the cluster cannot be reached");
            }
        }));
    }

    /// Opens (or resumes, or takes over) the client's session and answers CONNACK.
    fn attach_session(
        &mut self,
        ctx: &mut Context<Self>,
        c: Connect,
        admission: Admission,
        claim: crate::broker::handover::Claim,
    ) {
        let broker = self.broker.clone();
        let cfg = &broker.config;
        let v5 = c.protocol.is_v5();
        let addr = ctx.address();
        let client_id = admission.client_id.clone();
        let opened =
            broker.open_session(&client_id, c.clean_start, admission.expiry, c.protocol, claim, |generation| {
                ConnLink { generation, wake: addr.clone().recipient(), kick: addr.clone().recipient() }
            });
        let client_receive_max = c.properties.receive_maximum.unwrap_or(u16::MAX) as usize;
        opened.session.inner.lock().state.set_window(cfg.max_inflight.min(client_receive_max));
        self.version.set(Some(c.protocol));
        let properties = if v5 {
            connect_rules::connack_properties(cfg, &admission, opened.expiry_interval)
        } else {
            Properties::default()
        };
        self.send(&Packet::ConnAck(ConnAck { session_present: opened.session_present, reason_code: 0, properties }));
        tracing::info!(client_id = %client_id, peer = %self.peer, transport = self.transport, protocol = ?c.protocol, clean_start = c.clean_start, session_present = opened.session_present, "client connected");
        self.attached = Some(Attached {
            version: c.protocol,
            client_id,
            session: opened.session.clone(),
            generation: opened.generation,
            will: c.will,
            client_max_packet: c.properties.maximum_packet_size.map_or(usize::MAX, |m| m as usize),
            inbound: Inbound::default(),
            outbound: Outbound {
                v5,
                alias_max: c.properties.topic_alias_maximum.unwrap_or(0),
                aliases: HashMap::new(),
            },
            problem_info: c.properties.request_problem_information.unwrap_or(1) == 1,
        });
        let ip = self.peer.ip().to_string();
        self.publish_presence(lifecycle::Presence::Connected { ip: &ip });
        self.iot_event(None, "Connect", None, None);
        if opened.session_present {
            let mut sends = Vec::new();
            opened.session.inner.lock().state.resend_inflight(&mut sends);
            self.write_sends(sends);
        }
        self.drain_session();
        if self.authz.as_ref().is_some_and(|a| a.certificate_id().is_some()) {
            ctx.run_interval(CERTIFICATE_CHECK_PERIOD, |act, ctx| act.recheck_certificate(ctx));
        }
        // One timer per connection for both: a client silent past its keep-alive, and a socket
        // that has taken none of what is waiting for it (below the outbound bound too: a
        // QoS 1 subscriber's in-flight window alone never reaches it) for the stall timeout.
        let stall_timeout = self.broker.config.stalled_client_timeout;
        let mut period = (stall_timeout / 4).max(Duration::from_millis(500));
        if !self.keep_alive.is_zero() {
            period = period.min((self.keep_alive / 2).max(Duration::from_millis(500)));
        }
        ctx.run_interval(period, move |act, ctx| {
            if act.closing {
                return;
            }
            if !act.keep_alive.is_zero() && act.last_packet.elapsed() > act.keep_alive.mul_f32(1.5) {
                act.ending(DisconnectReason::KeepAliveTimeout);
                act.broker.metrics.keepalive_timeouts_total.inc();
                tracing::info!(peer = %act.peer, "keep-alive timeout");
                return act.close(ctx, Some(reason::KEEP_ALIVE_TIMEOUT), "keep alive timeout");
            }
            let stalled = act.backlog.stalled_for(Instant::now());
            if act.backlog.bytes() > 0 && stalled >= stall_timeout {
                return act.close_stalled(ctx, stalled);
            }
            let unacknowledged = act.delivery_progress.elapsed();
            if unacknowledged >= stall_timeout && act.deliveries_blocked() {
                act.close_stalled(ctx, unacknowledged);
            }
        });
    }

    /// Messages wait behind a full in-flight window: nothing more can be sent until the
    /// client acknowledges.
    fn deliveries_blocked(&self) -> bool {
        let Some(a) = &self.attached else { return false };
        let inner = a.session.inner.lock();
        inner.state.window_full() && inner.state.pending() > inner.state.inflight_len()
    }

    /// Ends a connection whose socket has taken nothing for the stall timeout. Nothing more
    /// is written to it (it takes nothing): the actor stops.
    fn close_stalled(&mut self, ctx: &mut Context<Self>, stalled: Duration) {
        self.broker.metrics.clients_disconnected_stalled_total.inc();
        self.ending(DisconnectReason::ServerInitiated);
        tracing::warn!(peer = %self.peer, client_id = ?self.attached.as_ref().map(|a| a.client_id.clone()), backlog_bytes = self.backlog.bytes(), stalled_secs = stalled.as_secs(), "closing connection: the client has read nothing for too long");
        self.closing = true;
        ctx.stop();
    }

    /// Authorizes the will again as it is about to be published: a certificate revoked or
    /// deactivated, or a policy detached, since CONNECT takes the right to publish it away.
    fn will_still_allowed(&mut self, client_id: &str, will: &ferrite_mqtt::packet::Will) -> bool {
        let now = (now_ms() / 1000) as i64;
        let refusal = match &self.client_cert {
            Some(der) => self.services.meta.state().identity.check_presented(der, now).err(),
            None => None,
        };
        let refusal = refusal.or_else(|| {
            let action = publish_rules::denied_action(&will.topic, will.retain, &mut |a, t| self.allowed(a, t))?;
            Some(if action == publish_rules::RESERVED {
                "the will's topic is reserved for the service".to_string()
            } else {
                format!("no policy allows {action} on the will's topic any more")
            })
        });
        let Some(why) = refusal else { return true };
        self.broker.metrics.publish_in_auth_errors_total.inc();
        tracing::warn!(event = "PublishIn.AuthError", client_id = %client_id, topic = %will.topic, reason = %why, "will not published: no longer authorized");
        false
    }

    /// Closes the connection when its certificate is no longer allowed to connect.
    fn recheck_certificate(&mut self, ctx: &mut Context<Self>) {
        let (Some(der), false) = (&self.client_cert, self.closing) else { return };
        let now = (now_ms() / 1000) as i64;
        if let Err(why) = self.services.meta.state().identity.check_presented(der, now) {
            self.broker.metrics.certificate_disconnects_total.inc();
            self.ending(DisconnectReason::AuthError);
            tracing::warn!(client_id = ?self.attached.as_ref().map(|a| a.client_id.clone()), certificate_id = ?self.authz.as_ref().and_then(|a| a.certificate_id()), reason = %why, "closing connection: certificate no longer valid");
            self.close(ctx, Some(reason::NOT_AUTHORIZED), "certificate no longer valid");
        }
    }

    /// Moves queued messages into flight and writes them.
    fn drain_session(&mut self) {
        let Some(a) = &self.attached else { return };
        let session = a.session.clone();
        session.clear_wake();
        let mut sends = Vec::new();
        let mut ops = Vec::new();
        let over = self.unsent_bytes() >= self.broker.config.max_outbound_bytes as u64;
        {
            let mut inner = session.inner.lock();
            if inner.generation != a.generation {
                return;
            }
            if over {
                // The socket is not taking what it has: QoS 0 messages to this client are
                // dropped, QoS 1/2 ones wait in the session queue (up to its limit).
                let shed = inner.state.shed_at_most_once();
                drop(inner);
                self.broker.metrics.messages_dropped_slow_client_total.add(shed as u64);
                return self.recheck_backlog_later();
            }
            inner.state.drain(now_ms(), &mut sends, &mut ops);
        }
        self.broker.apply_store_ops(&session, &ops);
        self.write_sends(sends);
    }

    /// Bytes for this client the socket has not taken: handed to the writer or not yet.
    fn unsent_bytes(&self) -> u64 {
        self.backlog.bytes() + self.out.len() as u64
    }

    /// Looks at the backlog again in [`BACKLOG_RECHECK`], once.
    fn recheck_backlog_later(&mut self) {
        if std::mem::replace(&mut self.recheck_pending, true) {
            return;
        }
        let me = self.me.clone();
        actix_rt::spawn(async move {
            tokio::time::sleep(BACKLOG_RECHECK).await;
            if let Some(me) = me.upgrade() {
                me.do_send(RecheckBacklog);
            }
        });
    }

    fn write_sends(&mut self, sends: Vec<SessionSend>) {
        if sends.is_empty() {
            return;
        }
        let now = now_ms();
        let mut dropped = Vec::new();
        let mut sent = 0;
        let mut latency = crate::metrics::LocalHistogram::default();
        for s in sends {
            match s {
                SessionSend::PubRel { packet_id } => self.send(&Packet::PubRel(Ack::ok(packet_id))),
                SessionSend::Publish { packet_id, dup, out } => {
                    if !self.allowed(Action::Receive, &out.msg.topic) {
                        self.broker.metrics.publish_out_auth_errors_total.inc();
                        let client_id = self.attached.as_ref().map(|a| a.client_id.clone());
                        tracing::warn!(event = "PublishOut.AuthError", client_id = ?client_id, topic = %out.msg.topic, reason = "no policy allows iot:Receive on this topic", "delivery dropped: not authorized");
                        if let Some(pid) = packet_id {
                            dropped.push(pid);
                        }
                        continue;
                    }
                    self.iot_event(None, "Publish-Out", None, Some(&out.msg.topic));
                    let a = self.attached.as_mut().expect("attached");
                    let before = self.out.len();
                    let Some(written) =
                        outbound::write_publish(&mut a.outbound, a.version, &out, packet_id, dup, now, &mut self.out)
                    else {
                        self.broker.metrics.messages_expired_total.inc();
                        dropped.extend(packet_id);
                        continue;
                    };
                    if written > a.client_max_packet {
                        self.out.truncate(before);
                        self.broker.metrics.messages_dropped_too_large_total.inc();
                        if let Some(pid) = packet_id {
                            dropped.push(pid);
                        }
                        continue;
                    }
                    if packet_id.is_none() && self.unsent_bytes() > self.broker.config.max_outbound_bytes as u64 {
                        // QoS 0 past the outbound bound: dropped for this client, counted.
                        self.out.truncate(before);
                        self.broker.metrics.messages_dropped_slow_client_total.inc();
                        self.recheck_backlog_later();
                        continue;
                    }
                    sent += 1;
                    latency.observe_us(now.saturating_sub(out.msg.created_ms) * 1000);
                }
            }
        }
        self.broker.metrics.messages_sent_total.add(sent);
        if !latency.is_empty() {
            self.broker.metrics.publish_to_deliver_seconds.add(&latency);
        }
        if !dropped.is_empty() {
            let a = self.attached.as_ref().expect("attached");
            let mut ops = Vec::new();
            {
                let mut inner = a.session.inner.lock();
                for pid in dropped {
                    inner.state.discard(pid, &mut ops);
                }
            }
            self.broker.apply_store_ops(&a.session, &ops);
        }
        self.flush();
    }

    fn on_publish(&mut self, ctx: &mut Context<Self>, mut p: Publish) {
        self.broker.metrics.messages_received_total.inc();
        let broker = self.broker.clone();
        let cfg = &broker.config;
        let limits = Limits {
            topic_alias_maximum: cfg.topic_alias_maximum,
            topics: &cfg.topic_limits,
            max_payload: cfg.max_payload,
            receive_maximum: cfg.receive_maximum,
        };
        let Some(a) = self.attached.as_mut() else { return };
        let v5 = a.version.is_v5();
        let mut inbound = std::mem::take(&mut a.inbound);
        let checked =
            publish_rules::check(&mut p, v5, &mut inbound, &limits, |action, name| self.allowed(action, name));
        let a = self.attached.as_mut().expect("attached");
        a.inbound = inbound;
        if let Err(refusal) = checked {
            return self.refuse_publish(ctx, &p, refusal);
        }
        if p.qos == QoS::ExactlyOnce {
            let pid = p.packet_id.unwrap_or(0);
            if !acks::begin_inbound_qos2(&mut a.session.inner.lock().state, pid) {
                // A resend of a publish we already routed: acknowledge again only.
                self.queue_ack(Some(Packet::PubRec(Ack::ok(pid))), None);
                return;
            }
        }
        if let Err(refusal) = publish_rules::count_unacked(p.qos, &mut a.inbound, &limits) {
            return self.refuse_publish(ctx, &p, refusal);
        }
        let msg = Arc::new(Message {
            topic: p.topic.as_str().into(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
            properties: if v5 { Message::forwarded_properties(&p.properties) } else { Properties::default() },
            publisher: Some(a.client_id.clone()),
            created_ms: now_ms(),
            rule_hops: 0,
            id: new_id(),
            wire: Default::default(),
        });
        let mut batch = ferrite_cluster::Batch::new();
        let mut routed = broker.route(&msg, &mut batch);
        let retained = routed.retained.take();
        if routed.congested {
            // Backpressure: stop reading this publisher for a moment so a slow
            // subscriber's queue drains instead of overflowing.
            broker.metrics.publisher_backpressure_total.inc();
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(BACKPRESSURE_PAUSE)));
        }
        let congested = routed.congested;
        let ack = match publish_rules::after_route(&p, v5, routed.refused_by_persistent) {
            Ok(ack) => ack,
            Err(publish_rules::CloseUnacknowledged) => {
                broker.store.submit(batch);
                self.deferred_wakes.wake_all();
                broker.finish_publish(routed, &msg);
                return self.protocol_violation(ctx, reason::QUOTA_EXCEEDED, "a persistent subscriber's queue is full");
            }
        };
        if routed.refused_by_persistent && p.qos == QoS::ExactlyOnce {
            // Refused: the client may send the same packet id again as a new publish.
            a.session.inner.lock().state.awaiting_release.remove(&p.packet_id.unwrap_or(0));
        }
        self.commit_then_ack(ctx, batch, retained, ack);
        self.iot_event(None, "Publish-In", None, Some(&msg.topic));
        let schedule = broker.finish_publish_deferred(routed, &msg, &mut self.deferred_wakes);
        if congested {
            // Nothing else of this actor runs during the pause.
            self.deferred_wakes.wake_all();
        } else if schedule {
            // Runs once the stream handler has taken the packets read so far (at most 16 in
            // one turn), in this same turn of the actor.
            ctx.spawn(actix::fut::ready(()).map(|(), act: &mut Self, _| act.deferred_wakes.wake_all()));
        }
    }

    /// Carries out a refused PUBLISH: a negative acknowledgement, or closing the connection.
    fn refuse_publish(&mut self, ctx: &mut Context<Self>, p: &Publish, refusal: Refusal) {
        let client_id = self.attached.as_ref().map(|a| a.client_id.clone());
        match refusal {
            Refusal::NotAuthorized { action, nack: true } => {
                self.note_publish_denied(client_id, &p.topic, action);
                self.refuse_publish(ctx, p, Refusal::Nack(reason::NOT_AUTHORIZED, "not authorized"));
            }
            Refusal::Nack(code, why) => {
                tracing::warn!(client_id = ?client_id, topic = %p.topic, reason_code = code, why, "publish refused");
                let mut ack = Ack::ok(p.packet_id.unwrap_or(0));
                ack.reason_code = code;
                if self.attached.as_ref().is_some_and(|a| a.problem_info) {
                    ack.properties.reason_string = Some(why.to_string());
                }
                let packet = if p.qos == QoS::AtLeastOnce { Packet::PubAck(ack) } else { Packet::PubRec(ack) };
                self.queue_ack(Some(packet), None);
            }
            Refusal::Violation(code, why) => {
                tracing::warn!(client_id = ?client_id, topic = %p.topic, reason_code = code, why, "publish refused");
                self.protocol_violation(ctx, code, why);
            }
            Refusal::NotAuthorized { action, nack: false } => {
                self.note_publish_denied(client_id, &p.topic, action);
                // MQTT 3.1.1 has no negative acknowledgement (and a QoS 0 publish none at all):
                // AWS IoT closes the connection.
                self.ending(DisconnectReason::AuthError);
                self.close(ctx, Some(reason::NOT_AUTHORIZED), "not authorized");
            }
        }
    }

    /// Counts and logs a publish no policy allows (AWS's PublishIn.AuthError).
    fn note_publish_denied(&self, client_id: Option<Arc<str>>, topic: &str, action: &str) {
        self.broker.metrics.publish_in_auth_errors_total.inc();
        let reason = if action == publish_rules::RESERVED {
            "the topic is reserved for the service's responses and events".to_string()
        } else {
            format!("no policy allows {action} on this topic")
        };
        tracing::warn!(event = "PublishIn.AuthError", client_id = ?client_id, topic = %topic, reason = %reason, "publish refused: not authorized");
    }

    /// Hands a routed publish's batch to storage and queues its acknowledgement to leave once
    /// the batch (and, for a retained publish, the retained group's commit) is durable.
    fn commit_then_ack(
        &mut self,
        ctx: &mut Context<Self>,
        batch: ferrite_cluster::Batch,
        retained: Option<tokio::sync::oneshot::Receiver<bool>>,
        ack: Option<Packet>,
    ) {
        let store = self.broker.store.clone();
        let ticket = self.next_ticket;
        let addr = ctx.address();
        match (retained, ack.is_some()) {
            (Some(retained), true) => {
                let (tx, stored) = tokio::sync::oneshot::channel();
                if batch.is_durable() {
                    store.commit(
                        batch,
                        Box::new(move |r| {
                            let _ = tx.send(r.is_ok());
                        }),
                    );
                } else {
                    store.submit(batch);
                    let _ = tx.send(true);
                }
                actix_rt::spawn(async move {
                    let ok = stored.await.unwrap_or(false) & retained.await.unwrap_or(false);
                    addr.do_send(Committed { ticket, ok });
                });
            }
            _ if batch.is_durable() => {
                store.commit(batch, Box::new(move |r| addr.do_send(Committed { ticket, ok: r.is_ok() })));
            }
            _ => {
                store.submit(batch);
                return self.queue_ack(ack, None);
            }
        }
        self.next_ticket += 1;
        self.queue_ack(ack, Some(ticket));
    }

    /// Queues an acknowledgement behind earlier ones; `ticket` is the storage commit it
    /// waits for, `None` when it can leave at once.
    fn queue_ack(&mut self, packet: Option<Packet>, ticket: Option<u64>) {
        match ticket {
            None if self.pending_acks.is_empty() => {
                if let Some(p) = packet {
                    self.send_ack(&p);
                }
            }
            None => self.pending_acks.push_back(PendingAck { ticket: u64::MAX, packet, done: true }),
            Some(t) => self.pending_acks.push_back(PendingAck { ticket: t, packet, done: false }),
        }
    }

    /// Sends an acknowledgement of an inbound publish. A PUBACK ends a QoS 1 publish's
    /// count against the receive maximum here, when it leaves, not when it is queued behind
    /// a storage commit: a client that pipelines past the maximum is refused.
    fn send_ack(&mut self, packet: &Packet) {
        if let Packet::PubAck(_) = packet {
            if let Some(a) = self.attached.as_mut() {
                a.inbound.unacked = a.inbound.unacked.saturating_sub(1);
            }
        }
        self.send(packet);
    }

    fn on_subscribe(&mut self, ctx: &mut Context<Self>, s: Subscribe) {
        let a = self.attached.as_ref().expect("attached");
        let session = a.session.clone();
        let sub_id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut granted = Vec::new();
        let client_id = a.client_id.clone();
        let mut batch = ferrite_cluster::Batch::new();
        for (filter, options) in &s.filters {
            let allowed = self.allowed(Action::Subscribe, filter);
            match subscribe::filter(filter, *options, allowed, &self.broker.config.topic_limits) {
                FilterDecision::Subscribe => {}
                FilterDecision::Refuse { code, why, unauthorized: true } => {
                    self.broker.metrics.subscribe_auth_errors_total.inc();
                    tracing::warn!(event = "Subscribe.AuthError", client_id = %client_id, filter = %filter, reason = why, "subscription refused: not authorized");
                    codes.push(code);
                    continue;
                }
                FilterDecision::Refuse { code, why, unauthorized: false } => {
                    tracing::info!(client_id = %client_id, filter = %filter, reason_code = code, reason = why, "subscription refused");
                    codes.push(code);
                    continue;
                }
                FilterDecision::Violation(code, why) => {
                    self.broker.store.submit(batch);
                    return self.protocol_violation(ctx, code, why);
                }
            }
            match self.broker.subscribe(&session, filter, *options, sub_id, &mut batch) {
                Ok(fresh) => {
                    codes.push(options.qos as u8);
                    granted.push((filter.clone(), *options, fresh));
                }
                Err(code) => {
                    tracing::info!(client_id = %client_id, filter = %filter, reason_code = code, "subscription refused");
                    codes.push(code);
                }
            }
        }
        let suback = SubAck { packet_id: s.packet_id, properties: Properties::default(), reason_codes: codes };
        let finish = move |act: &mut Self| {
            act.send(&Packet::SubAck(suback));
            let topics: Vec<String> = granted.iter().map(|(f, _, _)| f.clone()).collect();
            for (filter, options, fresh) in granted {
                act.broker.send_retained(&session, &filter, options, sub_id, fresh);
            }
            act.publish_subscriptions(true, &topics);
            for t in &topics {
                act.iot_event(None, "Subscribe", None, Some(t));
            }
            act.drain_session();
            act.flush();
        };
        if !batch.is_durable() {
            self.broker.store.submit(batch);
            return finish(self);
        }
        // A persistent session's subscriptions are written before SUBACK; the connection
        // reads nothing else meanwhile, so later packets see them.
        let (tx, written) = tokio::sync::oneshot::channel();
        self.broker.store.commit(
            batch,
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        );
        ctx.wait(async move { written.await.unwrap_or(false) }.into_actor(self).map(move |ok, act, ctx| {
            if ok {
                finish(act);
            } else {
                tracing::error!(client_id = %client_id, "subscriptions could not be stored; closing the connection");
                act.close(ctx, Some(reason::UNSPECIFIED_ERROR), "storage failure");
            }
        }));
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let a = self.attached.as_ref().expect("attached");
        let session = a.session.clone();
        let codes =
            u.filters.iter().map(|f| subscribe::unsubscribe_code(self.broker.unsubscribe(&session, f))).collect();
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            reason_codes: codes,
        }));
        self.publish_subscriptions(false, &u.filters);
        self.flush();
    }

    fn on_ack(&mut self, packet: Packet) {
        let Some(a) = self.attached.as_mut() else { return };
        let session = a.session.clone();
        let mut ops = Vec::new();
        let acked = acks::on_ack(&mut session.inner.lock().state, &packet, &mut ops);
        if acked.known && !acked.released_inbound {
            self.delivery_progress = Instant::now();
        }
        if acked.released_inbound {
            a.inbound.unacked = a.inbound.unacked.saturating_sub(1);
        }
        if !acked.known {
            tracing::debug!(client_id = %a.client_id, ?packet, "acknowledgement for an unknown packet id");
        }
        self.broker.apply_store_ops(&session, &ops);
        if let Some(r) = acked.reply {
            // PUBREL/PUBCOMP follow any acknowledgements still waiting for storage.
            self.queue_ack(Some(r), None);
        }
        self.drain_session();
        self.flush();
    }

    fn on_disconnect(&mut self, ctx: &mut Context<Self>, d: Disconnect) {
        self.ending(DisconnectReason::ClientInitiated);
        if let Some(a) = self.attached.as_mut() {
            if d.reason_code != reason::DISCONNECT_WITH_WILL {
                a.will = None;
            }
            if let Some(new_expiry) = d.properties.session_expiry_interval {
                let mut inner = a.session.inner.lock();
                if inner.expiry_interval == 0 && new_expiry != 0 {
                    drop(inner);
                    return self.protocol_violation(
                        ctx,
                        reason::PROTOCOL_ERROR,
                        "session expiry cannot be set on DISCONNECT when CONNECT had none",
                    );
                }
                inner.expiry_interval = new_expiry.min(self.broker.config.max_session_expiry);
            }
            tracing::info!(client_id = %a.client_id, reason_code = d.reason_code, "client disconnected");
        }
        self.shutdown(ctx);
    }

    fn handle_packet(&mut self, ctx: &mut Context<Self>, packet: Packet) {
        self.last_packet = Instant::now();
        if self.attached.is_none() {
            return match packet {
                Packet::Connect(c) => self.on_connect(ctx, *c),
                _ => self.protocol_violation(ctx, reason::PROTOCOL_ERROR, "first packet must be CONNECT"),
            };
        }
        match packet {
            Packet::Connect(_) => {
                self.protocol_violation(ctx, reason::PROTOCOL_ERROR, "second CONNECT on one connection")
            }
            Packet::Publish(p) => self.on_publish(ctx, p),
            Packet::Subscribe(s) => self.on_subscribe(ctx, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
            }
            p @ (Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)) => self.on_ack(p),
            Packet::Disconnect(d) => self.on_disconnect(ctx, d),
            Packet::Auth(_) => {
                self.protocol_violation(ctx, reason::PROTOCOL_ERROR, "AUTH without an authentication method")
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.protocol_violation(ctx, reason::PROTOCOL_ERROR, "packet type only a server may send")
            }
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> Actor for Connection<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(self.connect_deadline.saturating_duration_since(Instant::now()), |act, ctx| {
            if act.attached.is_none() {
                tracing::info!(peer = %act.peer, "no CONNECT in time, closing");
                act.close(ctx, None, "");
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.deferred_wakes.wake_all();
        self.broker.metrics.connections_open.dec();
        self.detach();
    }
}

impl<W: AsyncWrite + Unpin + 'static> StreamHandler<Result<Packet, ReadError>> for Connection<W> {
    fn handle(&mut self, item: Result<Packet, ReadError>, ctx: &mut Self::Context) {
        if self.closing {
            return;
        }
        match item {
            Ok(packet) => {
                self.handle_packet(ctx, packet);
                self.flush();
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "socket read failed");
                self.close(ctx, None, "");
            }
            Err(ReadError::Decode(e)) => {
                let code = e.reason_code();
                if self.attached.is_none() {
                    if let codec::DecodeError::UnsupportedVersion(_) = e {
                        // Answer in 3.1.1 framing: return code 1, unacceptable protocol version.
                        return self.refuse_connect(ctx, ProtocolVersion::V311, code, "unsupported protocol version");
                    }
                }
                self.protocol_violation(ctx, code, &e.to_string());
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // While closing, the writer may still be flushing our last packet; once it has (see
        // the WriteHandler), the client's end of stream stops the actor.
        self.read_done = true;
        if !self.closing || self.writer.closed() {
            ctx.stop();
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> WriteHandler<io::Error> for Connection<W> {
    fn error(&mut self, err: io::Error, _ctx: &mut Self::Context) -> Running {
        tracing::debug!(peer = %self.peer, error = %err, "socket write failed");
        Running::Stop
    }

    /// The last packet is written and the write side shut down: stop once the client has
    /// closed too (or the grace period of `shutdown` ends).
    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.read_done || !self.closing {
            ctx.stop();
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<RecheckBacklog> for Connection<W> {
    type Result = ();
    /// Drains the session once the socket has taken half the bound; closes the connection
    /// when it has taken nothing for the stall timeout.
    fn handle(&mut self, _: RecheckBacklog, ctx: &mut Self::Context) {
        self.recheck_pending = false;
        if self.closing {
            return;
        }
        let bound = self.broker.config.max_outbound_bytes as u64;
        let stalled = self.backlog.stalled_for(Instant::now());
        if self.backlog.bytes() <= bound / 2 {
            return self.drain_session();
        }
        if stalled >= self.broker.config.stalled_client_timeout {
            return self.close_stalled(ctx, stalled);
        }
        self.recheck_backlog_later();
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<Wake> for Connection<W> {
    type Result = ();
    fn handle(&mut self, _: Wake, _ctx: &mut Self::Context) {
        if !self.closing {
            self.drain_session();
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<Kick> for Connection<W> {
    type Result = ();
    fn handle(&mut self, kick: Kick, ctx: &mut Self::Context) {
        self.ending(if kick.0 == reason::SESSION_TAKEN_OVER {
            DisconnectReason::DuplicateClientId
        } else {
            DisconnectReason::ServerInitiated
        });
        if let Some(a) = self.attached.take() {
            tracing::info!(client_id = %a.client_id, reason_code = kick.0, "server disconnects client");
            if kick.0 == reason::SESSION_TAKEN_OVER {
                let will_now = a.will.filter(|w| w.properties.will_delay_interval.unwrap_or(0) == 0);
                if let Some(w) = will_now {
                    self.broker.publish_will(&a.client_id, w);
                }
                // Keep `attached` for the DISCONNECT's framing; the session is no longer ours.
                self.attached = Some(Attached { will: None, generation: u64::MAX, ..a });
            } else {
                // Shutting down: keep the session as it is for after the restart.
                self.attached = Some(Attached { will: None, ..a });
            }
        }
        let why = if kick.0 == reason::SESSION_TAKEN_OVER {
            "another connection took the session over"
        } else {
            "server shutting down"
        };
        self.close(ctx, Some(kick.0), why);
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<Committed> for Connection<W> {
    type Result = ();
    fn handle(&mut self, c: Committed, ctx: &mut Self::Context) {
        if !c.ok {
            self.ending(DisconnectReason::ServerError);
            self.broker.metrics.storage_errors_total.inc();
            // Never acknowledge what is not stored: drop the connection so the client resends.
            return self.close(ctx, Some(reason::UNSPECIFIED_ERROR), "storage failure");
        }
        for p in self.pending_acks.iter_mut() {
            if p.ticket == c.ticket {
                p.done = true;
            }
        }
        while self.pending_acks.front().is_some_and(|p| p.done) {
            if let Some(packet) = self.pending_acks.pop_front().and_then(|p| p.packet) {
                self.send_ack(&packet);
            }
        }
        self.flush();
    }
}
