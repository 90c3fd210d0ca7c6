//! How the services above the broker publish (shadow responses, rule republishes) without
//! holding the broker: a [`Publisher`] is the sending end of a channel that `node.rs` drains
//! into the broker with [`serve`]. Messages go out in the order they were sent.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::message::Message;
use super::{Broker, Published};

/// One message to publish, and who waits for its outcome.
struct Request {
    msg: Arc<Message>,
    answer: Option<oneshot::Sender<Published>>,
    /// Only this client, when set ([`Publisher::publish_to`]).
    to: Option<Arc<str>>,
}

/// A clonable handle that publishes into the broker through a channel.
#[derive(Clone, Debug)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Request>,
}

/// The receiving end of a [`Publisher`]'s channel, for [`serve`].
pub struct PublishQueue {
    rx: mpsc::UnboundedReceiver<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("topic", &self.msg.topic).finish()
    }
}

/// A new channel: the handle for the services, the queue for [`serve`].
pub fn channel() -> (Publisher, PublishQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Publisher { tx }, PublishQueue { rx })
}

impl Publisher {
    /// Publishes `msg` as the node itself (routed, stored without waiting, rules run).
    pub fn publish(&self, msg: Arc<Message>) {
        if self.tx.send(Request { msg, answer: None, to: None }).is_err() {
            tracing::debug!("the node is shutting down; an internal publish was dropped");
        }
    }

    /// Publishes `msg` and waits until its durable part is written.
    pub async fn publish_and_wait(&self, msg: Arc<Message>) -> Published {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request { msg, answer: Some(tx), to: None }).is_err() {
            return Published { stored: false, refused_by_persistent: false };
        }
        rx.await.unwrap_or(Published { stored: false, refused_by_persistent: false })
    }

    /// Delivers `msg` to the subscriptions of `client_id` on this node only
    /// ([`Broker::publish_to_client`]).
    pub fn publish_to(&self, client_id: Arc<str>, msg: Arc<Message>) {
        if self.tx.send(Request { msg, answer: None, to: Some(client_id) }).is_err() {
            tracing::debug!("the node is shutting down; an answer to one client was dropped");
        }
    }

    /// Publishes a JSON document the node originates (shadow responses) at QoS 1.
    pub fn publish_json(&self, topic: String, doc: serde_json::Value) {
        self.publish(Arc::new(Message::internal(topic, doc)));
    }
}

/// Publishes everything sent through the queue's [`Publisher`]s into `broker`, in order,
/// until every publisher is gone.
pub async fn serve(mut queue: PublishQueue, broker: Arc<Broker>) {
    while let Some(Request { msg, answer, to }) = queue.rx.recv().await {
        if let Some(client) = to {
            broker.publish_to_client(&client, &msg);
            continue;
        }
        match answer {
            None => broker.publish_now(&msg),
            Some(answer) => {
                let broker = broker.clone();
                actix_rt::spawn(async move {
                    let _ = answer.send(broker.publish_and_wait(&msg).await);
                });
            }
        }
    }
}
