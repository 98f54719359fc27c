//! The codec's integration tests: round trips, hostile bytes, framing, masking, and the
//! replay of the fuzz corpus. (The allocation test has its own binary: it needs a global
//! allocator of its own.)

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ssn_codec::spec::{self, Kind};
use ssn_codec::testing::{check, sample_purchase, sample_purchase_response};
use ssn_codec::{
    DecodeError, FieldError, FrameCodec, FrameError, Inbound, Message, MessageView, Mti, Outbound,
    Profile, Tpdu, describe,
};
use tokio_util::codec::{Decoder, Encoder};

const PROFILES: [Profile; 2] = [Profile::Ascii, Profile::Bcd];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

// ---------------------------------------------------------------- random messages

fn value_strategy(spec: &'static spec::FieldSpec) -> BoxedStrategy<Vec<u8>> {
    let len = usize::from(spec.len);
    let digits = |range: std::ops::RangeInclusive<usize>| {
        proptest::collection::vec(b'0'..=b'9', range).boxed()
    };
    match spec.kind {
        Kind::Numeric => digits(len..=len),
        Kind::LlNum if spec.number == spec::TRACK2 => {
            proptest::collection::vec(prop_oneof![9 => b'0'..=b'9', 1 => Just(b'=')], 0..=len)
                .boxed()
        }
        Kind::LlNum => digits(0..=len),
        Kind::Char => proptest::collection::vec(any::<u8>(), len..=len).boxed(),
        Kind::LlChar | Kind::LllChar => proptest::collection::vec(any::<u8>(), 0..=len).boxed(),
        Kind::Amount => (
            prop_oneof![Just(b'C'), Just(b'D')],
            digits(len - 1..=len - 1),
        )
            .prop_map(|(sign, mut d)| {
                d.insert(0, sign);
                d
            })
            .boxed(),
        Kind::Binary => proptest::collection::vec(any::<u8>(), len..=len).boxed(),
    }
}

fn message_strategy() -> impl Strategy<Value = Message> {
    let mti = proptest::array::uniform4(b'0'..=b'9');
    // Each field present with probability 1/8, and sometimes only primary-bitmap fields.
    let fields: Vec<_> = (2u8..=128)
        .map(|n| proptest::option::weighted(0.125, value_strategy(spec::field(n).unwrap())))
        .collect();
    (mti, fields, any::<bool>()).prop_map(|(mti, values, primary_only)| {
        let mut m = Message::new(Mti::new(mti).unwrap());
        for (value, n) in values.into_iter().zip(2u8..) {
            if let Some(value) = value
                && !(primary_only && n > 64)
            {
                m.set(n, &value).unwrap();
            }
        }
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_round_trip_in_both_profiles(m in message_strategy()) {
        for profile in PROFILES {
            let bytes = m.to_bytes(profile).freeze();
            let view = MessageView::decode(profile, bytes.clone())
                .map_err(|f| TestCaseError::fail(format!("{profile:?}: {:?}", f.error)))?;
            let back = view.to_message();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_bytes(profile).freeze(), bytes, "re-encoding is not byte-identical");
            for n in m.present().fields() {
                let value = view.logical(n);
                prop_assert_eq!(value.as_deref(), m.get(n));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(profile in prop_oneof![Just(Profile::Ascii), Just(Profile::Bcd)],
                                data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(view) = MessageView::decode(profile, Bytes::from(data.clone())) {
            let _ = describe(&view).to_string();
        }
        check(&data);
    }

    #[test]
    fn corrupted_messages_never_panic(m in message_strategy(), at in any::<prop::sample::Index>(),
                                      byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        for profile in PROFILES {
            let mut bytes = m.to_bytes(profile).to_vec();
            if bytes.is_empty() { continue; }
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = MessageView::decode(profile, Bytes::from(bytes.clone()));
            bytes.truncate(cut.index(bytes.len()));
            let _ = MessageView::decode(profile, Bytes::from(bytes));
        }
    }

    #[test]
    fn frames_survive_any_split(ms in proptest::collection::vec(message_strategy(), 1..5),
                                 splits in proptest::collection::vec(1usize..64, 1..40)) {
        for profile in PROFILES {
            let mut codec = FrameCodec::new(profile, 65_535);
            let tpdu = Tpdu([0x60, 0x00, 0x01, 0x00, 0x02]);
            let mut wire = BytesMut::new();
            for m in &ms {
                codec.encode(Outbound::Message { tpdu: Some(tpdu), message: m }, &mut wire).unwrap();
                codec.encode(Outbound::KeepAlive, &mut wire).unwrap();
            }
            let mut got = Vec::new();
            let mut buffer = BytesMut::new();
            let mut rest = &wire[..];
            let mut split = splits.iter().cycle();
            while !rest.is_empty() {
                let n = (*split.next().unwrap()).min(rest.len());
                buffer.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(item) = codec.decode(&mut buffer).unwrap() {
                    got.push(item);
                }
            }
            prop_assert_eq!(got.len(), ms.len() * 2);
            for (pair, m) in got.chunks(2).zip(&ms) {
                match &pair[0] {
                    Inbound::Message { tpdu: t, message } => {
                        prop_assert_eq!(&message.to_message(), m);
                        prop_assert_eq!(*t, (profile == Profile::Bcd).then_some(tpdu));
                    }
                    other => prop_assert!(false, "expected a message, got {:?}", other),
                }
                prop_assert!(matches!(pair[1], Inbound::KeepAlive));
            }
        }
    }
}

// ---------------------------------------------------------------- the spec's messages

#[test]
fn purchase_has_the_spec_layout_in_both_profiles() {
    let m = sample_purchase();
    let ascii = m.to_bytes(Profile::Ascii);
    assert_eq!(&ascii[..20], b"0200723C048020C19000");
    assert_eq!(&ascii[20..38], b"166048720000000012");
    let bcd = m.to_bytes(Profile::Bcd);
    assert_eq!(hex(&bcd[..10]), "0200723C048020C19000");
    assert_eq!(hex(&bcd[10..19]), "166048720000000012");
    // DE3, DE4, DE7, DE11 packed, fixed, left-padded.
    assert_eq!(hex(&bcd[19..36]), "0000000000050000001129123045000123");
    for profile in PROFILES {
        let view = MessageView::decode(profile, m.to_bytes(profile).freeze()).unwrap();
        assert_eq!(view.mti(), Mti::FINANCIAL_REQUEST);
        assert_eq!(view.pan().unwrap().reveal(), "6048720000000012");
        assert_eq!(view.amount(), Some(5_000_000));
        assert_eq!(view.stan(), Some(*b"000123"));
        assert_eq!(view.processing_code(), Some(*b"000000"));
        assert_eq!(view.transmission_date_time(), Some(*b"1129123045"));
        assert_eq!(view.expiry(), Some(*b"2812"));
        assert_eq!(view.terminal_id(), Some(*b"EWRG0001"));
        assert_eq!(view.merchant_id(), Some(*b"EWARONG00000001"));
        assert_eq!(view.currency(), Some(*b"360"));
        assert_eq!(
            view.pin_block(),
            Some([0x3a, 0x5f, 0x19, 0xc2, 0x07, 0x88, 0xe4, 0x61])
        );
        let (pan, expiry) = view.track2().unwrap();
        assert_eq!((pan.reveal(), &expiry), ("6048720000000012", b"2812"));
        assert_eq!(view.text(48).unwrap().len(), 36);
        assert_eq!(view.number(22), Some(51));
        assert!(view.original_data_elements().is_none());
    }
}

#[test]
fn a_reply_echoes_the_request() {
    for profile in PROFILES {
        let request =
            MessageView::decode(profile, sample_purchase().to_bytes(profile).freeze()).unwrap();
        let mut reply = Message::reply_to(&request, &[2, 3, 4, 7, 11, 12, 13, 41, 42, 49]).unwrap();
        reply.set(37, b"633412000123").unwrap();
        reply.set(38, b"A1B2C3").unwrap();
        reply.set(39, b"00").unwrap();
        reply.set(54, b"0002360C000025000000").unwrap();
        assert_eq!(reply, sample_purchase_response());
        assert_eq!(reply.mti().as_str(), "0210");
        let response = MessageView::decode(profile, reply.to_bytes(profile).freeze()).unwrap();
        assert!(
            Message::reply_to(&response, &[2]).is_none(),
            "a response has no response"
        );
    }
}

#[test]
fn builder_checks_values() {
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    assert_eq!(
        m.set(3, b"12345").unwrap_err(),
        FieldError::WrongLength {
            len: 5,
            expected: 6
        }
    );
    assert_eq!(
        m.set(2, &[b'1'; 20]).unwrap_err(),
        FieldError::LengthAboveMax { len: 20, max: 19 }
    );
    assert_eq!(
        m.set(4, b"00000000000x").unwrap_err(),
        FieldError::BadCharacter
    );
    assert_eq!(m.set(1, b"").unwrap_err(), FieldError::NoSuchField);
    assert_eq!(m.set(129, b"").unwrap_err(), FieldError::NoSuchField);
    assert_eq!(m.set(28, b"X00000000").unwrap_err(), FieldError::BadSign);
    m.set_number(4, 5_000_000).unwrap();
    assert_eq!(m.get(4), Some(&b"000005000000"[..]));
    assert!(m.set_number(11, 1_000_000).is_err());
    m.set_text_padded(41, b"T1").unwrap();
    assert_eq!(m.get(41), Some(&b"T1      "[..]));
    m.set(70, b"001").unwrap();
    m.set(70, b"301").unwrap();
    assert_eq!(m.get(70), Some(&b"301"[..]), "a second set replaces");
    m.remove(70);
    assert!(!m.has(70));
}

// ---------------------------------------------------------------- hostile and broken input

#[test]
fn decode_errors_name_the_fault() {
    let err = |profile, bytes: &[u8]| {
        MessageView::decode(profile, Bytes::copy_from_slice(bytes))
            .unwrap_err()
            .error
    };
    assert_eq!(err(Profile::Ascii, b"02"), DecodeError::MissingMti);
    assert_eq!(err(Profile::Ascii, b"02x0"), DecodeError::BadMti);
    assert_eq!(err(Profile::Bcd, &[0x02, 0x0a]), DecodeError::BadMti);
    assert_eq!(
        err(Profile::Ascii, b"02007000"),
        DecodeError::TruncatedBitmap
    );
    assert_eq!(
        err(Profile::Ascii, b"0200Z000000000000000"),
        DecodeError::BadBitmap
    );
    // A bitmap announcing fields that are not there.
    assert_eq!(
        err(Profile::Ascii, b"02003000000000000000"),
        DecodeError::Field {
            field: 3,
            error: FieldError::Truncated
        }
    );
    // A secondary bitmap announced but missing.
    assert_eq!(
        err(Profile::Bcd, &[0x08, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        DecodeError::TruncatedBitmap
    );
    let mut trailing = sample_purchase().to_bytes(Profile::Bcd).to_vec();
    trailing.extend_from_slice(b"xx");
    assert_eq!(err(Profile::Bcd, &trailing), DecodeError::TrailingBytes(2));
    // A lying LL prefix.
    let mut lying = b"02004000000000000000".to_vec();
    lying.extend_from_slice(b"99123");
    assert_eq!(
        err(Profile::Ascii, &lying),
        DecodeError::Field {
            field: 2,
            error: FieldError::LengthAboveMax { len: 99, max: 19 }
        }
    );
}

#[test]
fn a_malformed_message_keeps_what_could_be_read() {
    // 0200 with DE11, DE41 and a DE42 that is cut short.
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    m.set(11, b"000777")
        .unwrap()
        .set(41, b"EWRG0001")
        .unwrap()
        .set(42, b"EWARONG00000001")
        .unwrap();
    for profile in PROFILES {
        let mut bytes = m.to_bytes(profile);
        bytes.truncate(bytes.len() - 3);
        let failure = MessageView::decode(profile, bytes.freeze()).unwrap_err();
        assert_eq!(
            failure.error,
            DecodeError::Field {
                field: 42,
                error: FieldError::Truncated
            }
        );
        assert_eq!(failure.mti, Some(Mti::FINANCIAL_REQUEST));
        assert_eq!(failure.stan, Some(*b"000777"));
        assert_eq!(failure.terminal_id, Some(*b"EWRG0001"));
    }
}

fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> (Vec<Inbound>, Option<FrameError>) {
    let mut buffer = BytesMut::from(bytes);
    let mut items = Vec::new();
    loop {
        match codec.decode(&mut buffer) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

#[test]
fn framing_keep_alives_limits_and_broken_headers() {
    let mut ascii = FrameCodec::new(Profile::Ascii, 4096);
    let mut bcd = FrameCodec::new(Profile::Bcd, 4096);

    let (items, err) = decode_all(&mut ascii, b"00000000");
    assert!(
        err.is_none() && items.len() == 2 && items.iter().all(|i| matches!(i, Inbound::KeepAlive))
    );
    let (items, err) = decode_all(&mut bcd, &[0, 0]);
    assert!(err.is_none() && matches!(items[..], [Inbound::KeepAlive]));

    // A length header that is not a number closes the connection.
    assert!(matches!(
        decode_all(&mut ascii, b"00a1xxxx").1,
        Some(FrameError::BadLengthHeader)
    ));
    // So does a frame over the limit, before its body arrives.
    assert!(matches!(
        decode_all(&mut ascii, b"4097").1,
        Some(FrameError::TooLong {
            len: 4097,
            max: 4096
        })
    ));
    assert!(matches!(
        decode_all(&mut bcd, &[0xff, 0xff]).1,
        Some(FrameError::TooLong { len: 65535, .. })
    ));
    // An incomplete frame waits.
    let (items, err) = decode_all(&mut ascii, b"0010020");
    assert!(items.is_empty() && err.is_none());

    // A whole frame that does not decode is an item, and the stream goes on.
    let mut stream = b"0004abcd".to_vec();
    let mut good = BytesMut::new();
    ascii
        .encode(
            Outbound::Message {
                tpdu: None,
                message: &sample_purchase(),
            },
            &mut good,
        )
        .unwrap();
    stream.extend_from_slice(&good);
    let (items, err) = decode_all(&mut ascii, &stream);
    assert!(err.is_none());
    assert!(
        matches!(&items[0], Inbound::Malformed { failure, .. } if failure.error == DecodeError::BadMti)
    );
    assert!(matches!(&items[1], Inbound::Message { .. }));

    // A bcd frame shorter than its TPDU is malformed with nothing readable.
    let (items, _) = decode_all(&mut bcd, &[0, 3, 0x60, 0, 1]);
    assert!(
        matches!(&items[0], Inbound::Malformed { tpdu: None, failure } if failure.mti.is_none())
    );
}

#[test]
fn bcd_replies_swap_the_tpdu() {
    let mut codec = FrameCodec::new(Profile::Bcd, 4096);
    let request_tpdu = Tpdu([0x60, 0x00, 0x11, 0x80, 0x22]);
    let mut wire = BytesMut::new();
    let reply = sample_purchase_response();
    codec
        .encode(
            Outbound::Message {
                tpdu: Some(request_tpdu.reply()),
                message: &reply,
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(&wire[2..7], &[0x60, 0x80, 0x22, 0x00, 0x11]);
    assert_eq!(
        usize::from(u16::from_be_bytes([wire[0], wire[1]])),
        wire.len() - 2
    );
    let mut ascii = FrameCodec::new(Profile::Ascii, 4096);
    let mut wire = BytesMut::new();
    ascii
        .encode(
            Outbound::Message {
                tpdu: Some(request_tpdu),
                message: &reply,
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&wire[..4])
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        wire.len() - 4
    );
    assert_eq!(&wire[4..8], b"0210", "ascii has no TPDU");
    // A reply over the limit is refused and leaves nothing behind.
    let mut small = FrameCodec::new(Profile::Ascii, 20);
    let mut out = BytesMut::new();
    assert!(
        small
            .encode(
                Outbound::Message {
                    tpdu: None,
                    message: &reply
                },
                &mut out
            )
            .is_err()
    );
    assert!(out.is_empty());
}

#[test]
fn describe_masks_card_data_and_keys() {
    let text = describe(&sample_purchase()).to_string();
    assert!(text.contains("604872******0012"), "{text}");
    assert!(!text.contains("6048720000000012"), "{text}");
    assert!(!text.contains("3A5F19C2"), "PIN block shown: {text}");
    assert!(text.contains("[PIN block]"));
    assert!(text.contains("=****"));
    let view = MessageView::decode(
        Profile::Bcd,
        sample_purchase().to_bytes(Profile::Bcd).freeze(),
    )
    .unwrap();
    let debug = format!("{view:?}");
    assert!(
        !debug.contains("6048720000000012") && !debug.contains("3A5F19C2"),
        "{debug}"
    );

    let mut key_change = Message::new(Mti::new(*b"0810").unwrap());
    key_change
        .set(48, b"0123456789ABCDEF0123456789ABCDEF08D7B4")
        .unwrap();
    let text = describe(&key_change).to_string();
    assert!(!text.contains("0123456789ABCDEF"), "{text}");
}

// ---------------------------------------------------------------- fuzz corpus

/// Every input the fuzzer found interesting, replayed through the same invariants. The corpus
/// lives in the repository so that a crash found once stays fixed.
#[test]
fn fuzz_corpus_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("codec/tests/corpus exists") {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count >= 100, "the committed corpus has only {count} inputs");
}
