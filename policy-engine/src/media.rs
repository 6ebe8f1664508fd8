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

/// Decode base64 strictly: the standard or URL-safe alphabet, padding optional, and no
/// white space but the line breaks MIME encoders insert. Prose is not base64.
pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let compact: String;
    let s = if data.bytes().any(|b| b == b'\n' || b == b'\r') {
        compact = data.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        compact.as_str()
    } else {
        data
    };
    B64.decode(s).or_else(|_| B64_URL.decode(s)).ok()
}

/// A parsed `data:` URI: media type (lower case), its charset, and payload.
pub struct DataUri<'a> {
    pub media_type: String,
    pub charset: Option<String>,
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
    let mut base64 = false;
    let mut charset = None;
    for p in parts {
        let p = p.trim();
        if p.eq_ignore_ascii_case("base64") {
            base64 = true;
        } else if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("charset") {
                charset = Some(v.trim().trim_matches('"').to_ascii_lowercase());
            }
        }
    }
    Some(DataUri {
        media_type: if media_type.is_empty() {
            "text/plain".into()
        } else {
            media_type
        },
        charset,
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

/// Types a model reads as text.
fn textual(media_type: &str) -> bool {
    let (major, minor) = media_type.split_once('/').unwrap_or((media_type, ""));
    major == "text"
        || (major == "application"
            && (matches!(
                minor,
                "json" | "xml" | "yaml" | "x-yaml" | "javascript" | "csv" | "x-ndjson" | "sql"
            ) || minor.ends_with("+json")
                || minor.ends_with("+xml")))
}

/// Types whose bytes may be UTF-8 yet hide their text (compressed or encoded streams):
/// never read as plain text.
fn container(media_type: &str) -> bool {
    let (major, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    !textual(media_type) && !matches!(major, "image" | "audio" | "video")
}

/// Numeric and the basic named character references of HTML and XML, decoded.
fn decode_entities(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 12);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let n = name.strip_prefix('#')?;
                    let v = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(v)
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Classify decoded inline bytes of `media_type`. `media_field`: the bytes sit where the API
/// expects media (an image URL, an audio or document source), the only place content may be
/// opaque. Text is returned with its extra readings (entities decoded).
pub fn classify(
    media_type: &str,
    charset: Option<&str>,
    bytes: Vec<u8>,
    opaque: &[String],
    media_field: bool,
) -> Result<Inline, MediaError> {
    if media_field
        && opaque.iter().any(|p| type_matches(p, media_type))
        && signature_matches(media_type, &bytes)
    {
        return Ok(Inline::Opaque);
    }
    if charset.is_some_and(|c| !matches!(c, "utf-8" | "utf8" | "us-ascii" | "ascii")) {
        return Err(MediaError::Unreadable(format!(
            "{media_type}; charset={}",
            charset.unwrap_or_default()
        )));
    }
    if container(media_type) {
        return Err(MediaError::Unreadable(media_type.to_owned()));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| MediaError::Unreadable(media_type.to_owned()))?;
    Ok(match decode_entities(&text) {
        Some(decoded) if media_type.contains("html") || media_type.contains("xml") => {
            Inline::Text(format!("{text}\n{decoded}"))
        }
        _ => Inline::Text(text),
    })
}

/// Inline content given as base64 with a declared media type (always a media field).
pub fn inline_base64(
    media_type: &str,
    data: &str,
    opaque: &[String],
) -> Result<Inline, MediaError> {
    let media_type = media_type.trim().to_ascii_lowercase();
    let bytes = decode_base64(data).ok_or_else(|| MediaError::Base64(media_type.clone()))?;
    classify(&media_type, None, bytes, opaque, true)
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
pub fn inline_data_uri(
    s: &str,
    opaque: &[String],
    media_field: bool,
) -> Option<Result<Inline, MediaError>> {
    let uri = data_uri(s)?;
    let bytes = if uri.base64 {
        match decode_base64(uri.payload) {
            Some(b) => b,
            None => return Some(Err(MediaError::Base64(uri.media_type))),
        }
    } else {
        percent_decode(uri.payload)
    };
    Some(classify(
        &uri.media_type,
        uri.charset.as_deref(),
        bytes,
        opaque,
        media_field,
    ))
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
            inline_data_uri("data:text/plain;base64,QUtJQSBzZWNyZXQ=", &opaque(), false),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        assert_eq!(
            inline_data_uri("DATA:;charset=utf-8,AKIA%20secret", &opaque(), false),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        assert_eq!(inline_data_uri("not a uri", &opaque(), false), None);
        // Entities in HTML are read decoded too; other charsets and PDFs are refused.
        let Some(Ok(Inline::Text(t))) =
            inline_data_uri("data:text/html,&#112;roject", &opaque(), false)
        else {
            panic!()
        };
        assert!(t.contains("project"));
        assert!(matches!(
            inline_data_uri("data:text/plain;charset=utf-16be,x", &opaque(), false),
            Some(Err(MediaError::Unreadable(_)))
        ));
        assert!(matches!(
            inline_data_uri(
                "data:application/pdf,%PDF-1.4 <70726f6a656374> Tj",
                &opaque(),
                false
            ),
            Some(Err(MediaError::Unreadable(_)))
        ));
    }

    #[test]
    fn images_are_opaque_only_when_they_are_images() {
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==";
        assert_eq!(
            inline_data_uri(png, &opaque(), true),
            Some(Ok(Inline::Opaque))
        );
        // Text claiming to be an image is read as text.
        assert_eq!(
            inline_data_uri("data:image/png;base64,QUtJQSBzZWNyZXQ=", &opaque(), true),
            Some(Ok(Inline::Text("AKIA secret".into())))
        );
        // A real image when images are not opaque, or outside a media field: refused.
        for (o, field) in [(vec![], true), (opaque(), false)] {
            assert!(matches!(
                inline_data_uri(png, &o, field),
                Some(Err(MediaError::Unreadable(_)))
            ));
        }
        // Prose after an image signature is not base64.
        assert!(matches!(
            inline_data_uri(
                "data:image/png;base64,iVBORw0KGgoA\nmy key is AKIAQWERTYUIOPASDFGH",
                &opaque(),
                true
            ),
            Some(Err(MediaError::Base64(_)))
        ));
        assert!(matches!(
            inline_data_uri("data:image/png;base64,***", &opaque(), true),
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
