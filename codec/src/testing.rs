//! Shared by the fuzz target, the corpus replay test, the benches and the load harness: the
//! fuzz invariants and sample messages of the host interface. Not a stable API.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{FrameCodec, Inbound, Outbound};
use crate::view::MessageView;
use crate::wire::Profile;

/// Frames each fuzz input may yield before the rest is ignored, bounding one run.
const FRAMES_PER_INPUT_MAX: usize = 64;

/// Runs one fuzz input. The first byte picks the profile and how the rest is cut into
/// reads; the rest is a byte stream from a peer. Panics (which is what a fuzzer looks for)
/// when an invariant breaks:
/// - nothing panics on any input, framed or not;
/// - a message that decodes re-encodes to bytes that decode to the same logical message, and
///   re-encoding that is byte-identical, in both profiles;
/// - a framed reply decodes back through the same codec.
pub fn check(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let profile = if control & 1 == 0 {
        Profile::Ascii
    } else {
        Profile::Bcd
    };
    let chunk = usize::from(control >> 1).max(1);

    // Unframed: the whole rest as one message.
    if let Ok(view) = MessageView::decode(profile, Bytes::copy_from_slice(stream)) {
        check_message(&view);
    }

    // Framed: the stream arriving in reads of `chunk` bytes.
    let mut codec = FrameCodec::new(profile, crate::FRAME_BYTES_MAX_DEFAULT);
    let mut buffer = BytesMut::new();
    let mut frames = 0;
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(item)) => {
                    frames += 1;
                    if let Inbound::Message { tpdu, message } = item {
                        check_message(&message);
                        check_framed_reply(&mut codec, tpdu, &message);
                    }
                    if frames >= FRAMES_PER_INPUT_MAX {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fn check_message(view: &MessageView) {
    let _ = crate::describe(view).to_string();
    let _ = (
        view.pan(),
        view.track2(),
        view.amount(),
        view.stan(),
        view.terminal_id(),
    );
    let _ = (
        view.merchant_id(),
        view.pin_block(),
        view.original_data_elements(),
    );
    let message = view.to_message();
    for profile in [Profile::Ascii, Profile::Bcd] {
        let bytes = message.to_bytes(profile).freeze();
        let again = match MessageView::decode(profile, bytes.clone()) {
            Ok(again) => again,
            Err(failure) => panic!("re-encoded message does not decode: {:?}", failure.error),
        };
        assert_eq!(
            again.to_message(),
            message,
            "logical values changed in {profile:?}"
        );
        assert_eq!(
            again.to_message().to_bytes(profile).freeze(),
            bytes,
            "re-encoding differs"
        );
    }
}

fn check_framed_reply(codec: &mut FrameCodec, tpdu: Option<crate::Tpdu>, view: &MessageView) {
    let message = view.to_message();
    let mut wire = BytesMut::new();
    let reply = Outbound::Message {
        tpdu: tpdu.map(|t| t.reply()),
        message: &message,
    };
    if codec.encode(reply, &mut wire).is_err() {
        return; // over the frame limit: refused, which is correct
    }
    match codec.decode(&mut wire) {
        Ok(Some(Inbound::Message {
            message: back,
            tpdu: back_tpdu,
        })) => {
            assert_eq!(back.to_message(), message);
            assert_eq!(back_tpdu, tpdu.map(|t| t.reply()));
        }
        other => panic!("framed reply does not decode: {other:?}"),
    }
}

/// The purchase request of the host interface (§3.2) with a two-item basket, as an EDC
/// terminal sends it. Fields as logical values; the PIN block is arbitrary bytes.
pub fn sample_purchase() -> crate::Message {
    let mut m = crate::Message::new(crate::Mti::FINANCIAL_REQUEST);
    let fields: [(u8, &[u8]); 15] = [
        (2, b"6048720000000012"),
        (3, b"000000"),
        (4, b"000005000000"),
        (7, b"1129123045"),
        (11, b"000123"),
        (12, b"203045"),
        (13, b"1129"),
        (14, b"2812"),
        (22, b"051"),
        (25, b"00"),
        (35, b"6048720000000012=2812"),
        (41, b"EWRG0001"),
        (42, b"EWARONG00000001"),
        (
            48,
            concat!(
                "B1",
                "02",
                "01",
                "10",
                "000003500000",
                "07",
                "02",
                "000001500000"
            )
            .as_bytes(),
        ),
        (49, b"360"),
    ];
    for (number, value) in fields {
        // The sample is valid by construction; a failure here is a bug in the sample.
        m.set(number, value).expect("sample field");
    }
    m.set(52, &[0x3a, 0x5f, 0x19, 0xc2, 0x07, 0x88, 0xe4, 0x61])
        .expect("sample PIN block");
    m
}

/// The approval of [`sample_purchase`] (§3.2): echoed fields plus RRN, authorization id,
/// response code and the available balance.
pub fn sample_purchase_response() -> crate::Message {
    let request = sample_purchase();
    let mut m = crate::Message::new(crate::Mti::new(*b"0210").expect("MTI"));
    for number in [2, 3, 4, 7, 11, 12, 13, 41, 42, 49] {
        if let Some(value) = request.get(number) {
            m.set(number, value).expect("echoed field");
        }
    }
    m.set(37, b"633412000123").expect("RRN");
    m.set(38, b"A1B2C3").expect("auth id");
    m.set(39, b"00").expect("response code");
    m.set(54, b"0002360C000025000000").expect("balance");
    m
}
