//! What a connection does with each packet, decided without sockets, actors or storage:
//! pure functions over the connection's state and the packet that return what to do
//! (acknowledgements, a refusal with its reason code, the packet to send). The actor in
//! `connection.rs` carries the decisions out; the unit tests here check them one packet at
//! a time.

pub mod acks;
pub mod connect;
pub mod outbound;
pub mod publish;
pub mod subscribe;
