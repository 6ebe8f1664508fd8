//! Inline content in request bodies: `data:` URIs and base64 sources.
//!
//! A model reads inline text documents, so they are decoded and scanned like any other text.
//! Binary media (images, audio) is skipped only when the bundle lists its type as opaque *and*
//! the bytes really are a file of that type (checked by its signature): text dressed up as
//! `image/png` is read as text. Content that is neither readable text nor a verified opaque
//! file is refused: the gateway never waves through what it cannot read.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};

/// What inline content turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    /// Text to scan.
    Text(String),
    /// A verified binary file of an opaque type: not scanned.
    Opaque,
}

/// Why inline content cannot be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("inline `{0}` content is not valid base64")]
    Base64(String),
    #[error("inline `{0}` content is binary and its type is not one the bundle lets through uninspected")]
    Unreadable(String),
}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const B64_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode base64 (standard or URL-safe alphabet, padding optional, surrounding and embedded
/// line breaks tolerated as MIME encoders write them).
pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let compact: String;
    let s = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        compact.as_str()
    } else {
        data
    };
    B64.decode(s).or_else(|_| B64_URL.decode(s)).ok()
}

/// A parsed `data:` URI: media type (lower case, parameters dropped) and payload.
pub struct DataUri<'a> {
    pub media_type: String,
    pub base64: bool,
    pub payload: &'a str,
}

/// Parse `s` as a `data:` URI (RFC 2397), case-insensitively, ignoring leading white space.
pub fn data_uri(s: &str) -> Option<DataUri<'_>> {
    let t = s.trim_start();
    if t.len() < 5 || !t.as_bytes()[..5].eq_ignore_ascii_case(b"data:") {
        return None;
    }
    let rest = &t[5..];
    let comma = rest.find(',')?;
    let (meta, payload) = (&rest[..comma], &rest[comma + 1..]);
    let mut parts = meta.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let base64 = parts.any(|p| p.trim().eq_ignore_ascii_case("base64"));
    Some(DataUri {
        media_type: if media_type.is_empty() {
            "text/plain".into()
        } else {
            media_type
        },
        base64,
        payload,
    })
}

/// Whether `bytes` start with the signature of a binary file of `media_type`.
pub fn signature_matches(media_type: &str, b: &[u8]) -> bool {
    let starts = |sig: &[u8]| b.starts_with(sig);
    match media_type {
        "image/png" | "image/apng" => starts(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" | "image/jpg" => starts(b"\xff\xd8\xff"),
        "image/gif" => starts(b"GIF87a") || starts(b"GIF89a"),
        "image/webp" => b.len() >= 12 && starts(b"RIFF") && &b[8..12] == b"WEBP",
        "image/bmp" => starts(b"BM"),
        "image/tiff" => starts(b"II*\0") || starts(b"MM\0*"),
        "image/heic" | "image/avif" => b.len() >= 12 && &b[4..8] == b"ftyp",
        "audio/wav" | "audio/x-wav" | "audio/wave" => {
            b.len() >= 12 && starts(b"RIFF") && &b[8..12] == b"WAVE"
        }
        "audio/mpeg" | "audio/mp3" => {
            starts(b"ID3") || (b.len() >= 2 && b[0] == 0xff && b[1] & 0xe0 == 0xe0)
        }
        "audio/ogg" | "audio/opus" => starts(b"OggS"),
        "audio/flac" => starts(b"fLaC"),
        "audio/webm" | "video/webm" => starts(b"\x1a\x45\xdf\xa3"),
        "audio/mp4" | "audio/m4a" | "video/mp4" => b.len() >= 12 && &b[4..8] == b"ftyp",
        "application/pdf" => starts(b"%PDF-"),
        _ => false,
    }
}

/// Media type glob match: `image/*`, `*/*` or an exact type.
pub fn type_matches(pattern: &str, media_type: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some("*") => true,
        Some(major) => media_type
            .split('/')
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case(major)),
        None => pattern.eq_ignore_ascii_case(media_type),
    }
}

/// Classify decoded inline bytes of `media_type`: opaque when the bundle lists the type and
/// the signature proves it; otherwise readable UTF-8 text, or refused.
pub fn classify(media_type: &str, bytes: Vec<u8>, opaque: &[String]) -> Result<Inline, MediaError> {
    if opaque.iter().any(|p| type_matches(p, media_type)) && signature_matches(media_type, &bytes) {
        return Ok(Inline::Opaque);
    }
    String::from_utf8(bytes)
        .map(Inline::Text)
        .map_err(|_| MediaError::Unreadable(media_type.to_owned()))
}

/// Inline content given as base64 with a declared media type.
pub fn inline_base64(
    media_type: &str,
    data: &str,
    opaque: &[String],
) -> Result<Inline, MediaError> {
    let media_type = media_type.trim().to_ascii_lowercase();
    let bytes = decode_base64(data).ok_or_else(|| MediaError::Base64(media_type.clone()))?;
    classify(&media_type, bytes, opaque)
}

/// Percent-decode a non-base64 `data:` payload.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The content of a `data:` URI string, if `s` is one.
pub fn inline_data_uri(s: &str, opaque: &[String]) -> Option<Result<Inline, MediaError>> {
    let uri = data_uri(s)?;
    Some(if uri.base64 {
        inline_base64(&uri.media_type, uri.payload, opaque)
    } else {
        classify(&uri.media_type, percent_decode(uri.payload), opaque)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opaque() -> Vec<String> {
        vec!["image/*".into(), "audio/*".into()]
    }

    #[test]
    fn text_data_uris_are_decoded() {
        // "AKIA secret" in base64 and percent-encoded forms.
        assert_eq!(
            inline_data_uri("data:text/plain;base64,QUtJQSBzZWNyZXQ=", &opaque()),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        assert_eq!(
            inline_data_uri("DATA:;charset=utf-8,AKIA%20secret", &opaque()),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        assert_eq!(inline_data_uri("not a uri", &opaque()), None);
    }

    #[test]
    fn images_are_opaque_only_when_they_are_images() {
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==";
        assert_eq!(inline_data_uri(png, &opaque()), Some(Ok(Inline::Opaque)));
        // Text claiming to be an image is read as text.
        assert_eq!(
            inline_data_uri("data:image/png;base64,QUtJQSBzZWNyZXQ=", &opaque()),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        // A real image when images are not opaque: binary, refused.
        assert!(matches!(
            inline_data_uri(png, &[]),
            Some(Err(MediaError::Unreadable(_)))
        ));
        assert!(matches!(
            inline_data_uri("data:image/png;base64,***", &opaque()),
            Some(Err(MediaError::Base64(_)))
        ));
    }

    #[test]
    fn percent_decoding_never_panics_at_the_end() {
        for s in ["%", "%4", "%41", "a%", "%zz"] {
            let _ = percent_decode(s);
        }
        assert_eq!(percent_decode("%41%4"), b"A%4");
    }
}
