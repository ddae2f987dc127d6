//! RESP2/RESP3: the codec, and the TCP/TLS listener that serves it.
//!
//! The write log, the AOF and the replication stream are RESP command arrays, so the codec
//! (`encode`, `decode`) is used by the engine's consumers as well as by the listener. The
//! listener (`listener`, `conn`) is a thin adapter: it decodes requests, hands them to the
//! engine and encodes the replies; no command logic lives in it.

pub(crate) mod client;
mod conn;
mod decode;
mod encode;
mod listener;
mod replies;
pub(crate) mod tls;
mod workers;

pub use decode::{parse_command, split_args, Limits, Parsed, Parser, ProtocolError};
pub use encode::{encode_command, encode_reply};
pub use listener::Listener;
pub use replies::decode_reply;

/// The protocol version a client speaks (`HELLO 2|3`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, what clients speak until they send `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3: maps, sets, doubles, booleans and nulls as their own types.
    Resp3,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Reply;
    use proptest::prelude::*;

    /// A parsed command's arguments and the bytes it took; `None`: incomplete.
    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, String>;

    fn parse(buf: &[u8]) -> Parsed {
        parse_with(buf, &Limits::default())
    }

    fn parse_with(buf: &[u8], limits: &Limits) -> Parsed {
        parse_command(buf, limits)
            .map(|p| p.map(|p| (p.args, p.consumed)))
            .map_err(|e| e.0)
    }

    fn args(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn round_trip_command() {
        let mut buf = Vec::new();
        encode_command(&[b"SET", b"k\r\n", b""], &mut buf);
        assert_eq!(&buf[..], b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
        let (parsed, consumed) = parse(&buf).unwrap().unwrap();
        assert_eq!(consumed, buf.len());
        assert_eq!(parsed, args(&[b"SET", b"k\r\n", b""]));
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn protocol_errors_are_redis_words() {
        let e = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(e(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*01\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            e(b"*2147483648\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(e(b"*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(e(b"*1\r\nfoo\r\n"), "Protocol error: expected '$', got 'f'");
        // Found by cargo fuzz: an empty header line where a bulk was expected.
        assert_eq!(e(b"*7\r7\r\xd0"), "Protocol error: expected '$', got '\r'");
        assert_eq!(e(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$blabla\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"SET \"a\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(e(&[b'x'; 70_000]), "Protocol error: too big inline request");
        let mut long = b"*".to_vec();
        long.extend(std::iter::repeat_n(b'1', 70_000));
        assert_eq!(e(&long), "Protocol error: too big mbulk count string");
        let small = Limits {
            bulk_bytes_max: 2,
            ..Limits::default()
        };
        assert_eq!(
            parse_with(b"*1\r\n$3\r\n", &small).unwrap_err(),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn leniencies_of_redis() {
        // The two bytes after a bulk are skipped unread, as Redis does.
        let (parsed, consumed) = parse(b"*1\r\n$3\r\nabcXY").unwrap().unwrap();
        assert_eq!((parsed, consumed), (args(&[b"abc"]), 13));
        // Empty and negative counts are nothing to run.
        assert_eq!(parse(b"*0\r\n").unwrap(), Some((Vec::new(), 4)));
        assert_eq!(parse(b"*-10\r\n").unwrap(), Some((Vec::new(), 6)));
        assert_eq!(parse(b"\r\n").unwrap(), Some((Vec::new(), 2)));
    }

    #[test]
    fn unauthenticated_limits() {
        let unauth = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        assert!(parse_with(b"*10\r\n", &unauth).unwrap().is_none());
        assert_eq!(
            parse_with(b"*11\r\n", &unauth).unwrap_err(),
            "Protocol error: unauthenticated multibulk length"
        );
        assert!(parse_with(b"*1\r\n$16384\r\n", &unauth).unwrap().is_none());
        assert_eq!(
            parse_with(b"*1\r\n$16385\r\n", &unauth).unwrap_err(),
            "Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn inline_quoting_like_sdssplitargs() {
        let line = |s: &[u8]| parse(s).unwrap().unwrap().0;
        assert_eq!(line(b"SET a \"b c\"\r\n"), args(&[b"SET", b"a", b"b c"]));
        assert_eq!(line(b"a\"b c\"\n"), args(&[b"ab c"]));
        assert_eq!(
            line(b"\"\\x41\\n\\z\" '\\n\\''\n"),
            args(&[b"A\nz", b"\\n'"])
        );
        assert_eq!(line(b"  \t\n"), Vec::<Vec<u8>>::new());
        assert!(parse(b"\"a\"b\n").is_err());
        assert_eq!(split_args(b"port 6379"), Some(args(&[b"port", b"6379"])));
        assert_eq!(split_args(b"save \"\""), Some(args(&[b"save", b""])));
    }

    #[test]
    fn resp2_and_resp3_downgrades() {
        let r = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Double(1.5))]);
        let mut b2 = Vec::new();
        encode_reply(&r, Protocol::Resp2, &mut b2);
        assert_eq!(&b2[..], b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n");
        let mut b3 = Vec::new();
        encode_reply(&r, Protocol::Resp3, &mut b3);
        assert_eq!(&b3[..], b"%1\r\n$1\r\na\r\n,1.5\r\n");
        let mut v3 = Vec::new();
        encode_reply(
            &Reply::Verbatim(b"x\r\ny".as_slice().into()),
            Protocol::Resp3,
            &mut v3,
        );
        assert_eq!(&v3[..], b"=8\r\ntxt:x\r\ny\r\n");
        let mut e = Vec::new();
        encode_reply(&Reply::error("ERR a\r\nb"), Protocol::Resp2, &mut e);
        assert_eq!(&e[..], b"-ERR a  b\r\n");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut parser = Parser::default();
            let limits = Limits { unauthenticated: buf.first() == Some(&0), ..Limits::default() };
            let mut at = 0;
            while let Ok(Some(consumed)) = parser.parse(&buf[at..], &limits) {
                prop_assert!(consumed > 0 && at + consumed <= buf.len());
                let _ = parser.args(&buf[at..at + consumed]).count();
                at += consumed;
            }
        }

        #[test]
        fn encoded_commands_parse_back(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..8)) {
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let mut buf = Vec::new();
            encode_command(&refs, &mut buf);
            let parsed = parse_command(&buf, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(parsed.consumed, buf.len());
            prop_assert_eq!(parsed.args, args);
        }
    }
}
