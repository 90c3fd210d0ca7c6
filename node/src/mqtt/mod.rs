//! MQTT 3.1.1 and 5.0 without I/O: packet types, the codec and topic rules.

pub mod codec;
pub mod packet;
pub mod topic;
