//! The peer link frame codec, and the two loops that move frames over a
//! stream ([`read_frame`], [`write_frames`]).
//!
//! See the module documentation of [`crate::peer`] for the layout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Largest value of the length prefix (kind + request id + payload): 16 MiB
/// of payload, for replication batches and snapshot chunks and forwarded
/// admin requests (RADIUS datagrams are at most 4 KiB).
pub(crate) const MAX_FRAME: usize = HEADER + 16 * 1024 * 1024;

/// Bytes of the header counted by the length prefix: kind and request id.
const HEADER: usize = 1 + 8;

/// Largest payload of a frame.
pub(crate) const MAX_PAYLOAD: usize = MAX_FRAME - HEADER;

/// Largest RADIUS packet (RFC 2865 §3): what a node forwards.
pub(crate) const MAX_RADIUS_PACKET: usize = 4096;

/// Largest datagram a Forward frame can carry (family, IPv6 address and
/// port take 19 bytes).
#[cfg(test)]
pub(crate) const MAX_FORWARD_PACKET: usize = MAX_PAYLOAD - 1 - 16 - 2;

/// Largest reply datagram a Reply frame carries (1 status byte).
pub(crate) const MAX_REPLY_PACKET: usize = MAX_PAYLOAD - 1;

/// Version of the protocol spoken after the Hello.
pub(crate) const PROTOCOL_VERSION: u8 = 1;

/// Frame kinds. Values not listed here are refused by this version; later
/// issues (replication) add their own.
pub(crate) mod kind {
    /// Client to server, first frame: node id, protocol version.
    pub(crate) const HELLO: u8 = 1;
    /// A forwarded RADIUS request.
    pub(crate) const FORWARD: u8 = 2;
    /// The answer to a Forward with the same request id.
    pub(crate) const REPLY: u8 = 3;
    /// A piece of a replication message (request id 0).
    pub(crate) const REPL: u8 = 4;
    /// An admin request (JSON) forwarded to the primary.
    pub(crate) const ADMIN: u8 = 5;
    /// The answer (JSON) to an Admin frame with the same request id.
    pub(crate) const ADMIN_REPLY: u8 = 6;
    /// A user's out-of-band answer (JSON) for the verification's owner.
    pub(crate) const VERDICT: u8 = 7;
    /// What became of a Verdict frame (JSON), same request id.
    pub(crate) const VERDICT_REPLY: u8 = 8;
}

/// First payload byte of a Repl frame: this is the message's last piece.
const REPL_LAST: u8 = 0;
/// First payload byte of a Repl frame: more pieces follow.
const REPL_MORE: u8 = 1;

/// Status byte of a Reply frame: a datagram follows.
const REPLY_FOLLOWS: u8 = 0;
/// Status byte of a Reply frame: the owner sends nothing.
const REPLY_NONE: u8 = 1;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The length prefix is below the header size or above [`MAX_FRAME`].
    #[error("bad frame length {0}")]
    BadLength(usize),
    /// The buffer ends before the frame does.
    #[error("truncated frame")]
    Truncated,
    /// Bytes after the last field of a frame.
    #[error("trailing bytes in frame")]
    Trailing,
    /// A frame kind this version does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A field holds a value outside its range.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
    /// The payload to encode exceeds [`MAX_PAYLOAD`].
    #[error("frame payload of {0} bytes is too large")]
    TooLarge(usize),
    /// Reading from the stream failed (including EOF inside a frame).
    #[error("{0}")]
    Io(String),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// First frame from the connecting node (request id 0).
    Hello {
        /// The node id the client claims; checked against its certificate.
        node_id: u16,
        /// Protocol version ([`PROTOCOL_VERSION`]).
        version: u8,
    },
    /// A RADIUS request received by the sender from `src`.
    Forward {
        /// Request id, echoed by the Reply.
        id: u64,
        /// The NAS address the datagram came from.
        src: SocketAddr,
        /// The raw datagram.
        packet: Vec<u8>,
    },
    /// The owner's answer to a Forward.
    Reply {
        /// The Forward's request id.
        id: u64,
        /// The reply datagram, or `None` when the owner sends nothing.
        reply: Option<Vec<u8>>,
    },
    /// A piece of one encoded replication message
    /// (`radmfa_store::repl::wire`); the pieces of a message are consecutive
    /// Repl frames on one connection.
    Repl {
        /// More pieces of this message follow.
        more: bool,
        /// The bytes of this piece.
        data: Vec<u8>,
    },
    /// An admin request forwarded by a replica to the primary.
    Admin {
        /// Request id, echoed by the AdminReply.
        id: u64,
        /// The request (JSON, as on the control socket).
        body: Vec<u8>,
    },
    /// The primary's answer to an Admin frame.
    AdminReply {
        /// The Admin frame's request id.
        id: u64,
        /// The answer (JSON, as on the control socket).
        body: Vec<u8>,
    },
    /// A user's answer to an out-of-band verification (a Twilio callback
    /// another node received), for the node that owns it.
    Verdict {
        /// Request id, echoed by the VerdictReply.
        id: u64,
        /// The answer (JSON, `callback::Answer`).
        body: Vec<u8>,
    },
    /// The owner's account of a Verdict.
    VerdictReply {
        /// The Verdict frame's request id.
        id: u64,
        /// What became of it (JSON, `callback::Delivered`).
        body: Vec<u8>,
    },
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(FrameError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    fn finish(&self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Trailing)
        }
    }
}

/// Checks a length prefix.
fn check_length(len: u32) -> Result<usize, FrameError> {
    let len = usize::try_from(len).map_err(|_| FrameError::BadLength(usize::MAX))?;
    if (HEADER..=MAX_FRAME).contains(&len) {
        Ok(len)
    } else {
        Err(FrameError::BadLength(len))
    }
}

/// Builds a frame from its parts.
fn build(kind: u8, id: u64, payload: &[&[u8]]) -> Result<Vec<u8>, FrameError> {
    let payload_len: usize = payload.iter().map(|p| p.len()).sum();
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(payload_len));
    }
    let rest = HEADER + payload_len;
    let prefix = u32::try_from(rest).map_err(|_| FrameError::TooLarge(payload_len))?;
    let mut out = Vec::with_capacity(4 + rest);
    out.extend_from_slice(&prefix.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    for part in payload {
        out.extend_from_slice(part);
    }
    Ok(out)
}

impl Frame {
    /// Encodes the frame, length prefix included.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, FrameError> {
        match self {
            Frame::Hello { node_id, version } => {
                build(kind::HELLO, 0, &[&node_id.to_be_bytes(), &[*version]])
            }
            Frame::Forward { id, src, packet } => {
                let port = src.port().to_be_bytes();
                match src.ip() {
                    IpAddr::V4(ip) => {
                        build(kind::FORWARD, *id, &[&[4], &ip.octets(), &port, packet])
                    }
                    IpAddr::V6(ip) => {
                        build(kind::FORWARD, *id, &[&[6], &ip.octets(), &port, packet])
                    }
                }
            }
            Frame::Reply {
                id,
                reply: Some(bytes),
            } => build(kind::REPLY, *id, &[&[REPLY_FOLLOWS], bytes]),
            Frame::Reply { id, reply: None } => build(kind::REPLY, *id, &[&[REPLY_NONE]]),
            Frame::Repl { more, data } => build(
                kind::REPL,
                0,
                &[&[if *more { REPL_MORE } else { REPL_LAST }], data],
            ),
            Frame::Admin { id, body } => build(kind::ADMIN, *id, &[body]),
            Frame::AdminReply { id, body } => build(kind::ADMIN_REPLY, *id, &[body]),
            Frame::Verdict { id, body } => build(kind::VERDICT, *id, &[body]),
            Frame::VerdictReply { id, body } => build(kind::VERDICT_REPLY, *id, &[body]),
        }
    }

    /// Decodes the body of a frame: what follows the length prefix.
    pub(crate) fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
        check_length(u32::try_from(body.len()).unwrap_or(u32::MAX))?;
        let mut r = Reader(body);
        let kind = r.u8()?;
        let id = r.u64()?;
        let frame = match kind {
            kind::HELLO => {
                let node_id = r.u16()?;
                let version = r.u8()?;
                Frame::Hello { node_id, version }
            }
            kind::FORWARD => {
                let ip = match r.u8()? {
                    4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                    6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                    _ => return Err(FrameError::Invalid("address family")),
                };
                let port = r.u16()?;
                let packet = r.rest().to_vec();
                Frame::Forward {
                    id,
                    src: SocketAddr::new(ip, port),
                    packet,
                }
            }
            kind::REPLY => {
                let reply = match r.u8()? {
                    REPLY_FOLLOWS => Some(r.rest().to_vec()),
                    REPLY_NONE => None,
                    _ => return Err(FrameError::Invalid("reply status")),
                };
                Frame::Reply { id, reply }
            }
            kind::REPL => {
                let more = match r.u8()? {
                    REPL_LAST => false,
                    REPL_MORE => true,
                    _ => return Err(FrameError::Invalid("repl flag")),
                };
                Frame::Repl {
                    more,
                    data: r.rest().to_vec(),
                }
            }
            kind::ADMIN => Frame::Admin {
                id,
                body: r.rest().to_vec(),
            },
            kind::ADMIN_REPLY => Frame::AdminReply {
                id,
                body: r.rest().to_vec(),
            },
            kind::VERDICT => Frame::Verdict {
                id,
                body: r.rest().to_vec(),
            },
            kind::VERDICT_REPLY => Frame::VerdictReply {
                id,
                body: r.rest().to_vec(),
            },
            other => return Err(FrameError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(frame)
    }

    /// Decodes a whole frame (length prefix included); the buffer must hold
    /// exactly one frame.
    #[cfg(test)]
    pub(crate) fn decode(buf: &[u8]) -> Result<Frame, FrameError> {
        let mut r = Reader(buf);
        let len = check_length(u32::from_be_bytes(r.array()?))?;
        let body = r.take(len)?;
        r.finish()?;
        Frame::decode_body(body)
    }
}

/// Bytes of a replication message per Repl frame: small enough that a
/// snapshot in transit delays forwarded RADIUS requests on the same
/// connection by one piece at most.
pub(crate) const REPL_PIECE: usize = 256 * 1024;

/// Largest replication message reassembled; a peer cannot make us buffer
/// more. Snapshots travel in parts of about 2 MiB and change batches hold at
/// most 512 entries (`Timing::batch_max`), so real messages stay in the low
/// megabytes; the bound (it was 4 GiB when a snapshot was one message) keeps
/// a broken or hostile peer from pushing a node past its memory budget.
pub(crate) const MAX_REPL_MESSAGE: usize = 256 * 1024 * 1024;

/// Cuts an encoded replication message into encoded Repl frames.
pub(crate) fn repl_frames(message: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    if message.len() > MAX_REPL_MESSAGE {
        return Err(FrameError::TooLarge(message.len()));
    }
    let mut pieces: Vec<&[u8]> = message.chunks(REPL_PIECE).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            Frame::Repl {
                more: i + 1 < n,
                data: data.to_vec(),
            }
            .encode()
        })
        .collect()
}

/// Joins the pieces of replication messages arriving on one connection.
#[derive(Debug, Default)]
pub(crate) struct ReplAssembler {
    buf: Vec<u8>,
}

impl ReplAssembler {
    /// Adds a piece; returns the whole message after its last piece.
    pub(crate) fn push(&mut self, more: bool, data: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len().saturating_add(data.len()) > MAX_REPL_MESSAGE {
            self.buf = Vec::new();
            return Err(FrameError::TooLarge(MAX_REPL_MESSAGE));
        }
        self.buf.extend_from_slice(data);
        if more {
            Ok(None)
        } else {
            Ok(Some(std::mem::take(&mut self.buf)))
        }
    }
}

/// Reads one frame. `Ok(None)` on a clean end of stream before the first
/// byte of a frame. Not cancel safe: a connection whose read is cancelled
/// must be dropped.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Frame>, FrameError> {
    read_frame_within(r, MAX_FRAME).await
}

/// Largest length prefix of a Hello frame (kind, request id, node id,
/// version): what a connection may send before it has said who it is.
pub(crate) const MAX_HELLO: usize = HEADER + 2 + 1;

/// [`read_frame`] refusing a length prefix above `max` before reading the
/// body (the Hello is read with [`MAX_HELLO`], so an unidentified
/// connection cannot make the server buffer 16 MiB).
pub(crate) async fn read_frame_within<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let slot = prefix.get_mut(got..).unwrap_or_default();
        match r.read(slot).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) => return Err(FrameError::Io(e.to_string())),
        }
    }
    let len = check_length(u32::from_be_bytes(prefix))?;
    if len > max {
        return Err(FrameError::BadLength(len));
    }
    let mut body = vec![0u8; len];
    match r.read_exact(&mut body).await {
        Ok(_) => Frame::decode_body(&body).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e.to_string())),
    }
}

/// Writes queued frames until `closed` or a write error, then closes.
pub(crate) async fn write_frames<S: AsyncWrite>(
    mut wr: WriteHalf<S>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    closed: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = closed.cancelled() => break,
            f = rx.recv() => match f {
                Some(f) => f,
                None => break,
            },
        };
        let batch = async {
            wr.write_all(&first).await?;
            // Coalesce what is already queued into one flush.
            while let Ok(next) = rx.try_recv() {
                wr.write_all(&next).await?;
            }
            wr.flush().await
        };
        let result = tokio::select! {
            _ = closed.cancelled() => break,
            r = batch => r,
        };
        if let Err(e) = result {
            debug!(error = %e, "peer link write failed");
            break;
        }
    }
    closed.cancel();
    // Best effort close_notify; a peer that stopped reading does not hold us.
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repl_messages_are_cut_and_joined() {
        for len in [
            0,
            1,
            REPL_PIECE - 1,
            REPL_PIECE,
            REPL_PIECE + 1,
            3 * REPL_PIECE + 7,
        ] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frames = repl_frames(&msg).unwrap();
            assert_eq!(frames.len(), len.div_ceil(REPL_PIECE).max(1));
            let mut asm = ReplAssembler::default();
            let mut out = None;
            for (i, f) in frames.iter().enumerate() {
                let Frame::Repl { more, data } = Frame::decode(f).unwrap() else {
                    panic!("not a repl frame");
                };
                assert_eq!(more, i + 1 < frames.len());
                out = asm.push(more, &data).unwrap();
                assert_eq!(out.is_some(), !more);
            }
            assert_eq!(out.unwrap(), msg);
        }
    }

    #[test]
    fn a_peer_cannot_make_us_buffer_more_than_256_mib() {
        // 256 MiB of pieces, all saying "more": the next byte is refused and
        // the buffer is dropped, so a new message can start.
        let piece = vec![0u8; REPL_PIECE];
        let mut asm = ReplAssembler::default();
        for _ in 0..(256 * 1024 * 1024 / REPL_PIECE) {
            assert_eq!(asm.push(true, &piece), Ok(None));
        }
        assert_eq!(
            asm.push(true, &[0]),
            Err(FrameError::TooLarge(MAX_REPL_MESSAGE))
        );
        assert_eq!(asm.push(false, b"next"), Ok(Some(b"next".to_vec())));
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Hello {
                node_id: 65535,
                version: PROTOCOL_VERSION,
            },
            Frame::Forward {
                id: 7,
                src: "192.0.2.1:1812".parse().unwrap(),
                packet: vec![1, 2, 3],
            },
            Frame::Forward {
                id: u64::MAX,
                src: "[2001:db8::1]:40000".parse().unwrap(),
                packet: vec![0xAA; MAX_FORWARD_PACKET],
            },
            Frame::Reply {
                id: 9,
                reply: Some(vec![2; 20]),
            },
            Frame::Repl {
                more: true,
                data: vec![5; 100],
            },
            Frame::Repl {
                more: false,
                data: vec![],
            },
            Frame::Admin {
                id: 3,
                body: b"{}".to_vec(),
            },
            Frame::AdminReply {
                id: 3,
                body: b"{\"ok\":true}".to_vec(),
            },
            Frame::Verdict {
                id: 4,
                body: b"{\"kind\":\"keys\"}".to_vec(),
            },
            Frame::VerdictReply {
                id: 4,
                body: b"\"unknown\"".to_vec(),
            },
            Frame::Reply {
                id: 10,
                reply: Some(Vec::new()),
            },
            Frame::Reply {
                id: 11,
                reply: None,
            },
        ]
    }

    #[test]
    fn round_trip() {
        for f in samples() {
            let bytes = f.encode().unwrap();
            assert_eq!(Frame::decode(&bytes).unwrap(), f);
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let f = Frame::Forward {
            id: 0x0102_0304_0506_0708,
            src: "10.0.0.1:258".parse().unwrap(),
            packet: vec![0xEE],
        };
        assert_eq!(
            f.encode().unwrap(),
            [
                0, 0, 0, 17, // length of the rest
                2,  // kind Forward
                1, 2, 3, 4, 5, 6, 7, 8, // request id
                4, 10, 0, 0, 1, 1, 2,    // family, ip, port
                0xEE, // datagram
            ]
        );
        let hello = Frame::Hello {
            node_id: 3,
            version: 1,
        }
        .encode()
        .unwrap();
        assert_eq!(hello, [0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for f in samples() {
            let bytes = f.encode().unwrap();
            for cut in 0..bytes.len() {
                let part = bytes.get(..cut).unwrap();
                assert!(Frame::decode(part).is_err(), "{f:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn oversized_and_undersized_lengths() {
        let mut big = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        big.extend(std::iter::repeat_n(0u8, MAX_FRAME + 1));
        assert_eq!(
            Frame::decode(&big),
            Err(FrameError::BadLength(MAX_FRAME + 1))
        );
        let small = [0, 0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Frame::decode(&small), Err(FrameError::BadLength(8)));
        assert_eq!(
            Frame::decode(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(FrameError::BadLength(0xFFFF_FFFF))
        );
        // Encoding refuses what decoding would refuse.
        let f = Frame::Reply {
            id: 1,
            reply: Some(vec![0; MAX_REPLY_PACKET + 1]),
        };
        assert_eq!(f.encode(), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
        let f = Frame::Forward {
            id: 1,
            src: "[::1]:1".parse().unwrap(),
            packet: vec![0; MAX_FORWARD_PACKET + 1],
        };
        assert!(matches!(f.encode(), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn unknown_kind_bad_fields_and_trailing_bytes() {
        let unknown = build(200, 1, &[&[1, 2]]).unwrap();
        assert_eq!(Frame::decode(&unknown), Err(FrameError::UnknownKind(200)));
        let family = build(kind::FORWARD, 1, &[&[5, 1, 2, 3, 4, 0, 1]]).unwrap();
        assert_eq!(
            Frame::decode(&family),
            Err(FrameError::Invalid("address family"))
        );
        let status = build(kind::REPLY, 1, &[&[2]]).unwrap();
        assert_eq!(
            Frame::decode(&status),
            Err(FrameError::Invalid("reply status"))
        );
        let hello = build(kind::HELLO, 0, &[&[0, 1, 1, 0]]).unwrap();
        assert_eq!(Frame::decode(&hello), Err(FrameError::Trailing));
        let none = build(kind::REPLY, 1, &[&[REPLY_NONE, 0]]).unwrap();
        assert_eq!(Frame::decode(&none), Err(FrameError::Trailing));
        let mut two = Frame::Reply { id: 1, reply: None }.encode().unwrap();
        two.push(0);
        assert_eq!(Frame::decode(&two), Err(FrameError::Trailing));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic pseudo-random sweep (xorshift) over short inputs,
        // with a plausible length prefix so the body decoder is exercised.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut body: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            if let Some(k) = body.first_mut() {
                *k %= 5;
            }
            let mut buf = (len as u32).to_be_bytes().to_vec();
            buf.extend_from_slice(&body);
            let _ = Frame::decode(&buf);
            let _ = Frame::decode_body(&body);
        }
    }

    #[tokio::test]
    async fn read_frame_from_a_stream() {
        let a = Frame::Reply { id: 1, reply: None }.encode().unwrap();
        let b = Frame::Forward {
            id: 2,
            src: "127.0.0.1:9".parse().unwrap(),
            packet: vec![1; 100],
        }
        .encode()
        .unwrap();
        let mut stream: Vec<u8> = [a.clone(), b].concat();
        let mut r = stream.as_slice();
        assert!(matches!(
            read_frame(&mut r).await,
            Ok(Some(Frame::Reply { id: 1, .. }))
        ));
        assert!(matches!(
            read_frame(&mut r).await,
            Ok(Some(Frame::Forward { id: 2, .. }))
        ));
        assert_eq!(read_frame(&mut r).await, Ok(None));
        // EOF inside the prefix, inside the body.
        let mut r = a.get(..2).unwrap();
        assert_eq!(read_frame(&mut r).await, Err(FrameError::Truncated));
        let mut r = a.get(..6).unwrap();
        assert_eq!(read_frame(&mut r).await, Err(FrameError::Truncated));
        // An oversized prefix is refused before anything is allocated or read.
        stream = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        let mut r = stream.as_slice();
        assert_eq!(
            read_frame(&mut r).await,
            Err(FrameError::BadLength(MAX_FRAME + 1))
        );
    }
}
