//! RADIUS/TCP framing (RFC 6613 §2.6): packets follow each other on the
//! stream, each delimited by the Length field of its own header. A length
//! outside 20..=4096 cannot be resynchronised and closes the connection.

use std::fmt;

use radmfa_radius::{HEADER_LEN, MAX_PACKET_LEN};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why the stream cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// A header announced a length outside 20..=4096.
    BadLength(usize),
    /// The peer closed the stream in the middle of a packet.
    Truncated {
        /// Bytes of the unfinished packet received.
        have: usize,
    },
    /// Reading failed.
    Io(String),
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::BadLength(n) => {
                write!(
                    f,
                    "packet length {n} is outside {HEADER_LEN}..={MAX_PACKET_LEN}"
                )
            }
            FramingError::Truncated { have } => {
                write!(f, "stream closed after {have} bytes of a packet")
            }
            FramingError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// The length of the first packet in `buf` when it is complete, `None` when
/// more bytes are needed. The header's length is checked as soon as its four
/// bytes are there.
pub fn complete_packet(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(&[_, _, hi, lo]) = buf.get(..4) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
        return Err(FramingError::BadLength(len));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Cuts packets out of a byte stream.
///
/// [`next_packet`](FrameReader::next_packet) is cancel-safe: its only await
/// point is one `read` whose bytes are kept in `self` once it returns, so it
/// may sit in a `select!` beside a timer.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

/// Bytes asked from the stream per read (a TLS record carries at most 16 KiB).
const READ_CHUNK: usize = 16 * 1024;

impl FrameReader {
    /// A reader with an empty buffer.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// The next whole packet; `Ok(None)` at a clean end of the stream
    /// (between packets).
    pub async fn next_packet<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
    ) -> Result<Option<Vec<u8>>, FramingError> {
        loop {
            if let Some(len) = complete_packet(&self.buf)? {
                let rest = self.buf.split_off(len);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let n = rd
                .read(&mut chunk)
                .await
                .map_err(|e| FramingError::Io(e.to_string()))?;
            if n == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    have => Err(FramingError::Truncated { have }),
                };
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A header-only packet of `len` bytes with identifier `id`.
    fn packet(id: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 1;
        p[1] = id;
        p[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        p
    }

    #[test]
    fn lengths_are_checked_from_the_header() {
        assert_eq!(complete_packet(&[]), Ok(None));
        assert_eq!(complete_packet(&[1, 2, 0]), Ok(None));
        assert_eq!(complete_packet(&packet(1, 20)[..19]), Ok(None));
        assert_eq!(complete_packet(&packet(1, 20)), Ok(Some(20)));
        assert_eq!(
            complete_packet(&[1, 2, 0, 19]),
            Err(FramingError::BadLength(19))
        );
        assert_eq!(
            complete_packet(&[1, 2, 0, 0]),
            Err(FramingError::BadLength(0))
        );
        // 4097 is refused from the header alone, before any body arrives.
        assert_eq!(
            complete_packet(&[1, 2, 0x10, 0x01]),
            Err(FramingError::BadLength(4097))
        );
        assert_eq!(complete_packet(&packet(1, 4096)), Ok(Some(4096)));
    }

    #[tokio::test]
    async fn two_packets_in_one_read() {
        let mut bytes = packet(1, 20);
        bytes.extend(packet(2, 44));
        let mut rd = &bytes[..];
        let mut fr = FrameReader::new();
        assert_eq!(fr.next_packet(&mut rd).await.unwrap(), Some(packet(1, 20)));
        assert_eq!(fr.next_packet(&mut rd).await.unwrap(), Some(packet(2, 44)));
        assert_eq!(fr.next_packet(&mut rd).await.unwrap(), None);
    }

    #[tokio::test]
    async fn packet_split_across_reads() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let p = packet(9, 100);
        let writer = {
            let p = p.clone();
            tokio::spawn(async move {
                // Header split in the middle, then the body in pieces.
                for piece in [&p[..2], &p[2..3], &p[3..50], &p[50..]] {
                    client.write_all(piece).await.unwrap();
                    client.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                client.write_all(&packet(10, 20)).await.unwrap();
            })
        };
        let mut fr = FrameReader::new();
        assert_eq!(fr.next_packet(&mut server).await.unwrap(), Some(p));
        assert_eq!(
            fr.next_packet(&mut server).await.unwrap(),
            Some(packet(10, 20))
        );
        writer.await.unwrap();
        assert_eq!(fr.next_packet(&mut server).await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_packet_at_end_of_stream() {
        let bytes = packet(1, 40);
        let mut rd = &bytes[..30];
        let mut fr = FrameReader::new();
        assert_eq!(
            fr.next_packet(&mut rd).await,
            Err(FramingError::Truncated { have: 30 })
        );
        // A header cut short is truncated too.
        let mut rd = &bytes[..3];
        assert_eq!(
            FrameReader::new().next_packet(&mut rd).await,
            Err(FramingError::Truncated { have: 3 })
        );
    }

    #[tokio::test]
    async fn oversized_and_undersized_lengths_stop_reading() {
        let mut bytes = packet(1, 20);
        bytes.extend([1, 2, 0x10, 0x01]);
        bytes.extend(vec![0u8; 5000]);
        let mut rd = &bytes[..];
        let mut fr = FrameReader::new();
        assert_eq!(fr.next_packet(&mut rd).await.unwrap(), Some(packet(1, 20)));
        assert_eq!(
            fr.next_packet(&mut rd).await,
            Err(FramingError::BadLength(4097))
        );
        let mut rd: &[u8] = &[4, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameReader::new().next_packet(&mut rd).await,
            Err(FramingError::BadLength(12))
        );
    }
}
