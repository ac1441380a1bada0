//! The node's envelopes (`fedchain_node::proto`): `Up` (worker -> coordinator: enrollment or a
//! service message) and `Down` (coordinator -> worker), decoded with the transport's codec as
//! `Peer::next_incoming` does. What decodes must re-encode and decode to the same encoding.
#![no_main]

use fedchain_node::proto::{Down, Up};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // what the coordinator looks at first: the enrollment's signatures
    if let Some(Up::Enroll { register, join }) = fedchain_fuzz::wire_roundtrip::<Up>(data) {
        let _ = (
            register.verify(),
            join.verify(),
            register.sender(),
            join.hash(),
        );
    }
    let _ = fedchain_fuzz::wire_roundtrip::<Down>(data);
});
