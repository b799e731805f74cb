//! Bounds on a multipart body, applied to the raw bytes before actix-multipart parses them (it
//! buffers a preamble or a part's headers until their end, however long): the whole body is at most
//! `cap` bytes, and the preamble and each part's headers at most [`MAX_PART_HEADER`] before their
//! end is seen. Past a bound the stream ends with an error and nothing more is read; the handler
//! asks [`Refused`] which bound it was (413 or 400).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures::Stream;
use memchr::memmem;

/// The most bytes a multipart preamble, or one part's headers, may take before their end.
pub const MAX_PART_HEADER: usize = 8 * 1024;

/// Which bound a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than the cap in all.
    TooLarge,
    /// A preamble or part headers longer than [`MAX_PART_HEADER`].
    HeaderTooLong,
}

/// Shared with the handler: why the guarded stream stopped, if it did.
#[derive(Debug, Clone, Default)]
pub struct Refused(Rc<Cell<Option<Refusal>>>);

impl Refused {
    pub fn get(&self) -> Option<Refusal> {
        self.0.get()
    }
}

/// Where the scan is: looking for a delimiter (in the preamble, bounded; in a part's body, not)
/// or for the blank line that ends a part's headers (bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Preamble,
    Headers,
    Body,
}

/// The framing scanner, separate from the stream so it can be tested on bytes.
#[derive(Debug)]
pub struct Framing {
    delimiter: Vec<u8>,
    scan: Scan,
    /// Bytes scanned in a bounded state since it began.
    seen: usize,
    /// The end of the previous chunk, for a needle that spans two chunks.
    tail: Vec<u8>,
    total: usize,
    cap: usize,
}

impl Framing {
    pub fn new(boundary: &str, cap: usize) -> Self {
        Self {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            scan: Scan::Preamble,
            seen: 0,
            // The first delimiter has no CRLF before it: scan as if the body began with one.
            tail: b"\r\n".to_vec(),
            total: 0,
            cap,
        }
    }

    /// Takes the next chunk of the body; an error once a bound is broken.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        self.total += chunk.len();
        if self.total > self.cap {
            return Err(Refusal::TooLarge);
        }
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let needle: &[u8] = match self.scan {
                Scan::Preamble | Scan::Body => &self.delimiter,
                Scan::Headers => b"\r\n\r\n",
            };
            let bounded = self.scan != Scan::Body;
            match memmem::find(&buf[pos..], needle) {
                Some(at) => {
                    let end = pos + at + needle.len();
                    if bounded && self.seen + (end - pos) > MAX_PART_HEADER + needle.len() {
                        return Err(Refusal::HeaderTooLong);
                    }
                    self.scan = match self.scan {
                        Scan::Preamble | Scan::Body => Scan::Headers,
                        Scan::Headers => Scan::Body,
                    };
                    self.seen = 0;
                    pos = end;
                }
                None => {
                    let rest = &buf[pos..];
                    if bounded {
                        self.seen += rest.len();
                        if self.seen > MAX_PART_HEADER + needle.len() {
                            return Err(Refusal::HeaderTooLong);
                        }
                    }
                    let keep = rest.len().min(needle.len() - 1);
                    // The kept bytes are scanned again with the next chunk.
                    self.seen = self.seen.saturating_sub(if bounded { keep } else { 0 });
                    self.tail = rest[rest.len() - keep..].to_vec();
                    return Ok(());
                }
            }
        }
    }
}

/// `payload` with the [`Framing`] bounds applied.
pub struct Guarded<S> {
    inner: S,
    framing: Framing,
    refused: Refused,
    done: bool,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, boundary: &str, cap: usize) -> (Self, Refused) {
        let refused = Refused::default();
        (
            Self {
                inner,
                framing: Framing::new(boundary, cap),
                refused: refused.clone(),
                done: false,
            },
            refused,
        )
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.framing.feed(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(refusal) => {
                    self.refused.0.set(Some(refusal));
                    self.done = true;
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend(
                format!("--XB\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend(*value);
            body.extend(b"\r\n");
        }
        body.extend(b"--XB--\r\n");
        body
    }

    fn feed_in(body: &[u8], chunk: usize, cap: usize) -> Result<(), Refusal> {
        let mut framing = Framing::new("XB", cap);
        body.chunks(chunk).try_for_each(|c| framing.feed(c))
    }

    #[test]
    fn a_well_formed_form_passes_in_any_chunking() {
        // A part body far longer than the header bound, with CRLFs and a near-delimiter in it.
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| {
                if i % 997 == 0 {
                    b"\r\n--X\r\n".to_vec()
                } else {
                    vec![i as u8]
                }
            })
            .collect();
        let body = form(&[("file", &big), ("width", b"10"), ("height", b"20")]);
        for chunk in [1, 2, 3, 7, 64, 4096, body.len()] {
            assert_eq!(feed_in(&body, chunk, body.len()), Ok(()), "chunk {chunk}");
        }
    }

    #[test]
    fn a_long_preamble_or_part_header_is_refused_early() {
        let preamble = vec![b'a'; 40 * 1024 * 1024];
        let mut framing = Framing::new("XB", usize::MAX);
        let refused_at = preamble
            .chunks(4096)
            .position(|c| framing.feed(c).is_err())
            .expect("refused");
        assert!(refused_at * 4096 <= MAX_PART_HEADER + 4096, "{refused_at}");

        let mut body =
            b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Junk: ".to_vec();
        body.extend(vec![b'j'; MAX_PART_HEADER * 2]);
        assert_eq!(
            feed_in(&body, 1000, usize::MAX),
            Err(Refusal::HeaderTooLong)
        );
        // The same after a good part.
        let mut body = form(&[("width", b"10")]);
        body.truncate(body.len() - b"--XB--\r\n".len());
        body.extend(b"--XB\r\nX-Junk: ");
        body.extend(vec![b'j'; MAX_PART_HEADER * 2]);
        assert_eq!(feed_in(&body, 333, usize::MAX), Err(Refusal::HeaderTooLong));
    }

    #[test]
    fn the_whole_body_is_capped() {
        let body = form(&[("file", &vec![7u8; 10_000])]);
        assert_eq!(feed_in(&body, 512, body.len()), Ok(()));
        assert_eq!(feed_in(&body, 512, body.len() - 1), Err(Refusal::TooLarge));
    }
}
