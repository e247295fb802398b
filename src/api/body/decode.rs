//! Request body content codings (identity, gzip, deflate), decoded chunk by chunk with a cap on the output.

use std::io::{self, Write};

use actix_web::http::header::{CONTENT_ENCODING, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use flate2::write::GzDecoder;
use flate2::{Decompress, FlushDecompress, Status};

use crate::error::ScoreError;

/// Output space added at a time while inflating: a bomb stops at the cap, never far beyond it.
const INFLATE_STEP: usize = 64 * 1024;

/// How a request body is encoded on the wire (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Sent as is.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// HTTP "deflate": a zlib stream (RFC 1950).
    Deflate,
}

impl Coding {
    /// The coding named by the request's `Content-Encoding` headers; `identity` entries are skipped. Unknown or
    /// stacked codings are refused (415).
    pub fn of(headers: &HeaderMap) -> Result<Coding, ScoreError> {
        let mut found = Coding::Identity;
        for value in headers.get_all(CONTENT_ENCODING) {
            let text = value.to_str().map_err(|_| {
                ScoreError::UnsupportedEncoding(String::from_utf8_lossy(value.as_bytes()).into())
            })?;
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let coding = match name.to_ascii_lowercase().as_str() {
                    "identity" => continue,
                    "gzip" | "x-gzip" => Coding::Gzip,
                    "deflate" => Coding::Deflate,
                    _ => return Err(ScoreError::UnsupportedEncoding(name.into())),
                };
                if found != Coding::Identity {
                    return Err(ScoreError::UnsupportedEncoding(text.into()));
                }
                found = coding;
            }
        }
        Ok(found)
    }

    /// The coding's name as HTTP spells it.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded body passed the cap.
    TooLarge,
    /// The bytes are not valid data of the coding.
    Corrupt(String),
}

/// Decodes one body fed chunk by chunk, refusing it as soon as its decoded size passes `limit`.
pub struct BodyDecoder {
    limit: usize,
    state: State,
}

enum State {
    Identity(BytesMut),
    Gzip(Box<GzDecoder<Capped>>),
    Deflate(Box<Zlib>),
}

impl BodyDecoder {
    /// A decoder for `coding` whose output may not pass `limit` bytes.
    pub fn new(coding: Coding, limit: usize) -> BodyDecoder {
        let state = match coding {
            Coding::Identity => State::Identity(BytesMut::new()),
            Coding::Gzip => State::Gzip(Box::new(GzDecoder::new(Capped::new(limit)))),
            Coding::Deflate => State::Deflate(Box::new(Zlib {
                inflater: Decompress::new(true),
                out: Vec::new(),
                done: false,
            })),
        };
        BodyDecoder { limit, state }
    }

    /// Decodes one chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        match &mut self.state {
            State::Identity(buf) => {
                if buf.len() + chunk.len() > self.limit {
                    return Err(DecodeError::TooLarge);
                }
                buf.extend_from_slice(chunk);
                Ok(())
            }
            State::Gzip(decoder) => push_gzip(decoder, chunk),
            State::Deflate(zlib) => zlib.push(chunk, self.limit),
        }
    }

    /// Decoded bytes so far.
    pub fn decoded_len(&self) -> usize {
        match &self.state {
            State::Identity(buf) => buf.len(),
            State::Gzip(decoder) => decoder.get_ref().out.len(),
            State::Deflate(zlib) => zlib.out.len(),
        }
    }

    /// The whole decoded body, once the last chunk is in; a compressed stream cut short is corrupt.
    pub fn finish(self) -> Result<Bytes, DecodeError> {
        match self.state {
            State::Identity(buf) => Ok(buf.freeze()),
            State::Gzip(mut decoder) => {
                decoder
                    .try_finish()
                    .map_err(|e| classify(decoder.get_ref(), e))?;
                let capped = decoder
                    .finish()
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                Ok(Bytes::from(capped.out))
            }
            State::Deflate(mut zlib) => {
                zlib.finish(self.limit)?;
                Ok(Bytes::from(zlib.out))
            }
        }
    }
}

fn push_gzip(decoder: &mut GzDecoder<Capped>, mut chunk: &[u8]) -> Result<(), DecodeError> {
    while !chunk.is_empty() {
        match decoder.write(chunk) {
            // The decoder takes nothing once its stream has ended.
            Ok(0) => {
                return Err(DecodeError::Corrupt(
                    "data after the end of the gzip stream".into(),
                ));
            }
            Ok(n) => chunk = &chunk[n..],
            Err(e) => return Err(classify(decoder.get_ref(), e)),
        }
    }
    Ok(())
}

/// An output error is the cap when the sink says so, else bad input.
fn classify(sink: &Capped, error: io::Error) -> DecodeError {
    if sink.over {
        DecodeError::TooLarge
    } else {
        DecodeError::Corrupt(error.to_string())
    }
}

/// A sink that refuses to grow past its limit (flate2's writers push their output here in pieces).
struct Capped {
    out: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Capped {
    fn new(limit: usize) -> Capped {
        Capped {
            out: Vec::new(),
            limit,
            over: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.over = true;
            return Err(io::Error::other("decoded body is over the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A zlib stream inflated by hand, so that its end is known (flate2's writers accept a stream cut short).
struct Zlib {
    inflater: Decompress,
    out: Vec<u8>,
    done: bool,
}

impl Zlib {
    fn push(&mut self, mut input: &[u8], limit: usize) -> Result<(), DecodeError> {
        while !input.is_empty() {
            if self.done {
                return Err(DecodeError::Corrupt(
                    "data after the end of the deflate stream".into(),
                ));
            }
            let consumed = self.step(input, FlushDecompress::None, limit)?;
            input = &input[consumed..];
        }
        Ok(())
    }

    fn finish(&mut self, limit: usize) -> Result<(), DecodeError> {
        while !self.done {
            let before = self.inflater.total_out();
            self.step(&[], FlushDecompress::Finish, limit)?;
            if !self.done && self.inflater.total_out() == before {
                return Err(DecodeError::Corrupt("the deflate stream ends early".into()));
            }
        }
        Ok(())
    }

    /// One inflate call into fresh output space; returns the input bytes consumed.
    fn step(
        &mut self,
        input: &[u8],
        flush: FlushDecompress,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        if self.out.len() == self.out.capacity() {
            // Room for one byte past the limit, so passing it is seen.
            let room = limit.saturating_add(1).saturating_sub(self.out.len());
            self.out.reserve_exact(INFLATE_STEP.min(room).max(1));
        }
        let (in_before, out_before) = (self.inflater.total_in(), self.out.len());
        let status = self
            .inflater
            .decompress_vec(input, &mut self.out, flush)
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        if self.out.len() > limit {
            return Err(DecodeError::TooLarge);
        }
        let consumed = (self.inflater.total_in() - in_before) as usize;
        match status {
            Status::StreamEnd => self.done = true,
            Status::Ok | Status::BufError => {
                let stuck = consumed == 0
                    && self.out.len() == out_before
                    && self.out.len() < self.out.capacity();
                if stuck && !input.is_empty() {
                    return Err(DecodeError::Corrupt(
                        "the deflate stream makes no progress".into(),
                    ));
                }
            }
        }
        Ok(consumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Feeds `wire` in chunks of `chunk` bytes and finishes.
    fn decode(
        coding: Coding,
        wire: &[u8],
        chunk: usize,
        limit: usize,
    ) -> Result<Bytes, DecodeError> {
        let mut d = BodyDecoder::new(coding, limit);
        for piece in wire.chunks(chunk) {
            d.push(piece)?;
            assert!(d.decoded_len() <= limit);
        }
        d.finish()
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_coding_round_trips_in_any_chunking() {
        let data = sample();
        for (coding, wire) in [
            (Coding::Identity, data.clone()),
            (Coding::Gzip, gzip(&data)),
            (Coding::Deflate, zlib(&data)),
        ] {
            for chunk in [1, 7, 4096, usize::MAX] {
                if chunk == 1 && wire.len() > 100_000 {
                    continue;
                }
                let got = decode(coding, &wire, chunk, data.len()).unwrap();
                assert!(got == data, "{coding:?} in chunks of {chunk}");
            }
        }
        assert_eq!(decode(Coding::Gzip, &gzip(b""), 10, 0).unwrap().len(), 0);
    }

    #[test]
    fn the_limit_applies_to_the_decoded_size_without_inflating_it_all() {
        let zeros = vec![0u8; 8 << 20];
        for (coding, wire) in [
            (Coding::Gzip, gzip(&zeros)),
            (Coding::Deflate, zlib(&zeros)),
        ] {
            assert!(wire.len() < 64 * 1024, "a bomb is small on the wire");
            let mut d = BodyDecoder::new(coding, 1 << 20);
            let err = wire
                .chunks(16 * 1024)
                .try_for_each(|c| d.push(c))
                .and_then(|_| d.finish().map(|_| ()));
            assert_eq!(err, Err(DecodeError::TooLarge), "{coding:?}");
        }
        assert_eq!(
            decode(Coding::Identity, &[1; 11], 4, 10),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(decode(Coding::Identity, &[1; 10], 4, 10).unwrap().len(), 10);
    }

    #[test]
    fn corrupt_truncated_or_trailing_data_is_refused() {
        let data = sample();
        for (coding, wire) in [(Coding::Gzip, gzip(&data)), (Coding::Deflate, zlib(&data))] {
            let cut = &wire[..wire.len() / 2];
            assert!(
                matches!(
                    decode(coding, cut, 4096, usize::MAX),
                    Err(DecodeError::Corrupt(_))
                ),
                "{coding:?} cut short"
            );
            let mut trailing = wire.clone();
            trailing.extend_from_slice(b"junk");
            assert!(
                matches!(
                    decode(coding, &trailing, 4096, usize::MAX),
                    Err(DecodeError::Corrupt(_))
                ),
                "{coding:?} with trailing bytes"
            );
            let mut flipped = wire.clone();
            let middle = flipped.len() / 2;
            flipped[middle] ^= 0xff;
            flipped[middle + 1] ^= 0x55;
            assert!(
                matches!(
                    decode(coding, &flipped, 4096, usize::MAX),
                    Err(DecodeError::Corrupt(_))
                ),
                "{coding:?} with flipped bits"
            );
        }
        let plain = br#"{"customer_ids": ["C1"]}"#;
        assert!(matches!(
            decode(Coding::Gzip, plain, 64, 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode(Coding::Deflate, plain, 64, 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn content_encoding_names_one_known_coding() {
        let of = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
            }
            Coding::of(&h).map_err(|e| e.to_string())
        };
        assert_eq!(of(&[]), Ok(Coding::Identity));
        assert_eq!(of(&["identity"]), Ok(Coding::Identity));
        assert_eq!(of(&["GZIP"]), Ok(Coding::Gzip));
        assert_eq!(of(&["x-gzip"]), Ok(Coding::Gzip));
        assert_eq!(of(&["identity, deflate"]), Ok(Coding::Deflate));
        assert!(of(&["br"]).unwrap_err().contains("'br'"));
        assert!(of(&["gzip, deflate"]).is_err(), "stacked codings");
        assert!(
            of(&["gzip", "gzip"]).is_err(),
            "stacked codings over two headers"
        );
    }
}
