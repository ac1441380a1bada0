//! A frame as it arrives on a QUIC stream: the 16-byte header (`Header::parse` against the
//! default `Limits`, as `read_frame` runs it before any body byte is read), then, when the
//! header's length is the rest of the input, the body as the node decodes it for that kind
//! (`Up` on the coordinator, `Down` on the worker; an error frame is a UTF-8 reason).
#![no_main]

use fedchain_net::wire::{FrameKind, Header, Limits, HEADER_LEN};
use fedchain_node::proto::{Down, Up};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let limits = Limits::default();
    let Ok(h) = Header::parse(head, &limits) else {
        return;
    };
    // Every header field is checked, so a header that parses is the canonical one.
    assert_eq!(&h.to_bytes(), head);
    assert!(h.len <= limits.max_payload);
    if h.len != body.len() as u64 {
        return; // read_frame reports Truncated / TrailingBytes
    }
    match h.kind {
        FrameKind::Message | FrameKind::Request | FrameKind::Response => {
            let _ = fedchain_fuzz::wire_roundtrip::<Up>(body);
            let _ = fedchain_fuzz::wire_roundtrip::<Down>(body);
        }
        FrameKind::Error => {
            let _ = String::from_utf8_lossy(body);
        }
    }
});
