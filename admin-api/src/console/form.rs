//! What a form sends: `application/x-www-form-urlencoded` fields, or `multipart/form-data`
//! (RFC 7578) when it uploads a file (the beneficiaries' CSV, the bank's confirmation). Both
//! become [`Fields`]; a file's bytes are kept apart and read as text only where a page asks
//! for one. The multipart reader takes the whole body already in memory (under the console's
//! body limit), never panics on any input, and reads at most [`FORM_PARTS_MAX`] parts.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Parts of a multipart form read at most (the console's upload forms have five).
pub const FORM_PARTS_MAX: usize = 64;

/// A form's body with its content type, as the browser sent it.
#[derive(Debug)]
pub(crate) struct FormBody {
    /// The `Content-Type` header (empty when absent).
    content_type: String,
    /// The body.
    bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<FormBody, Response> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(FormBody {
            content_type,
            bytes,
        })
    }
}

#[cfg(test)]
impl FormBody {
    /// A urlencoded body (the tests' forms).
    pub(crate) fn urlencoded(text: &str) -> FormBody {
        FormBody {
            content_type: "application/x-www-form-urlencoded".into(),
            bytes: Bytes::from(text.to_string()),
        }
    }
}

/// A file sent with a form.
#[derive(Debug)]
struct Upload {
    /// The field's name.
    name: String,
    /// The file's bytes.
    bytes: Vec<u8>,
}

/// The fields of a submitted form, in order (a field may repeat: bulk actions), and its files.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// Text fields.
    text: Vec<(String, String)>,
    /// Files (multipart parts with a file name).
    files: Vec<Upload>,
}

impl Fields {
    /// The fields of `body`: urlencoded, or multipart by its boundary; what does not decode
    /// is dropped (a form without its CSRF field is then refused).
    pub(crate) fn parse(body: &FormBody) -> Fields {
        let content_type = body.content_type.to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            return boundary(&body.content_type)
                .and_then(|b| multipart(b, &body.bytes))
                .unwrap_or_default();
        }
        Fields {
            text: form_urlencoded::parse(&body.bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            files: Vec::new(),
        }
    }

    /// The first value of `name`, trimmed.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }

    /// Every value of `name`, trimmed and not empty (the people ticked for a bulk action).
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.text
            .iter()
            .filter(move |(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// The first value of `name`, or empty.
    pub(crate) fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// The text of the file uploaded as `file` when one was chosen, else the text pasted in
    /// the field `pasted`; the text key of the reason when the file is not UTF-8 text (a
    /// spreadsheet's binary format, an image) or neither was given.
    pub(crate) fn file_or_pasted(&self, file: &str, pasted: &str) -> Result<String, &'static str> {
        match self
            .files
            .iter()
            .find(|u| u.name == file && !u.bytes.is_empty())
        {
            Some(upload) => match std::str::from_utf8(&upload.bytes) {
                Ok(text) if !text.contains('\0') => {
                    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string())
                }
                _ => Err("file_not_text"),
            },
            None if self.text(pasted).is_empty() => Err("file_or_paste"),
            None => Ok(self.text(pasted).to_string()),
        }
    }
}

/// The `boundary` parameter of a multipart content type, unquoted.
fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a `multipart/form-data` body; `None` when it is not one (no closing
/// delimiter, a part without a name, more than [`FORM_PARTS_MAX`] parts).
fn multipart(boundary: &str, body: &[u8]) -> Option<Fields> {
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may start the body, without the line break before it.
    let first = find(body, &delimiter.as_bytes()[2..])?;
    let mut rest = &body[first + delimiter.len() - 2..];
    let mut fields = Fields::default();
    for _ in 0..FORM_PARTS_MAX {
        if rest.starts_with(b"--") {
            return Some(fields);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        rest = &rest[head_end + 4..];
        let end = find(rest, delimiter.as_bytes())?;
        let content = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let (name, filename) = disposition(head)?;
        match filename {
            Some(_) => fields.files.push(Upload {
                name,
                bytes: content.to_vec(),
            }),
            None => fields
                .text
                .push((name, String::from_utf8_lossy(content).into_owned())),
        }
    }
    None
}

/// The `name` and `filename` of a part's `Content-Disposition: form-data` header.
fn disposition(head: &str) -> Option<(String, Option<String>)> {
    let line = head.split("\r\n").find(|line| {
        line.get(..20)
            .is_some_and(|h| h.eq_ignore_ascii_case("content-disposition:"))
    })?;
    let (mut name, mut filename) = (None, None);
    for (key, value) in parameters(&line[20..]) {
        match key.to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Some((name?, filename))
}

/// `key=value` and `key="quoted; value"` parameters after the disposition type.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    // The disposition type (`form-data`) up to the first `;`.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ';').collect();
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "----WebKitFormBoundaryx1y2z3";

    /// A body as chromium sends it: two text fields and a file.
    fn chromium_body(file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in [("csrf", "abc"), ("action", "import")] {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"a; b.csv\"\r\nContent-Type: text/csv\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(
            format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csv\"\r\n\r\n\r\n--{BOUNDARY}--\r\n").as_bytes(),
        );
        body
    }

    fn multipart_body(bytes: Vec<u8>) -> FormBody {
        FormBody {
            content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
            bytes: Bytes::from(bytes),
        }
    }

    #[test]
    fn a_multipart_form_gives_its_fields_and_its_file() {
        let file = b"nik,kk\r\n1,2\r\n--not the boundary\r\n";
        let fields = Fields::parse(&multipart_body(chromium_body(file)));
        assert_eq!(fields.get("csrf"), Some("abc"));
        assert_eq!(fields.get("action"), Some("import"));
        assert_eq!(fields.get("csv"), Some(""));
        assert_eq!(
            fields.file_or_pasted("csv_file", "csv").as_deref(),
            Ok("nik,kk\r\n1,2\r\n--not the boundary\r\n")
        );
    }

    #[test]
    fn a_file_that_is_not_text_or_no_file_and_nothing_pasted_is_refused_by_name() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let fields = Fields::parse(&multipart_body(chromium_body(png)));
        assert_eq!(
            fields.file_or_pasted("csv_file", "csv"),
            Err("file_not_text")
        );
        let fields = Fields::parse(&multipart_body(chromium_body(b"")));
        assert_eq!(
            fields.file_or_pasted("csv_file", "csv"),
            Err("file_or_paste")
        );
        let pasted = Fields::parse(&FormBody::urlencoded("csv=nik%2Ckk"));
        assert_eq!(
            pasted.file_or_pasted("csv_file", "csv").as_deref(),
            Ok("nik,kk")
        );
        // A spreadsheet saved with a byte-order mark reads as the same text.
        let fields = Fields::parse(&multipart_body(chromium_body("\u{feff}nik".as_bytes())));
        assert_eq!(
            fields.file_or_pasted("csv_file", "csv").as_deref(),
            Ok("nik")
        );
    }

    #[test]
    fn what_is_not_a_whole_multipart_body_gives_no_fields_and_never_panics() {
        let body = chromium_body(b"nik,kk\r\n");
        // Every cut and every byte changed: no panic; a cut body has no fields.
        for end in 0..body.len() {
            let cut = Fields::parse(&multipart_body(body[..end].to_vec()));
            assert!(cut.get("csrf").is_none() || end >= body.len() - 2, "{end}");
        }
        for at in 0..body.len() {
            for byte in [b'\r', b'\n', b'-', b'"', b';', 0xff] {
                let mut changed = body.clone();
                changed[at] = byte;
                let _ = Fields::parse(&multipart_body(changed));
            }
        }
        // No boundary, or another one: nothing.
        let mut no_boundary = multipart_body(body.clone());
        no_boundary.content_type = "multipart/form-data".into();
        assert!(Fields::parse(&no_boundary).get("csrf").is_none());
        let mut other = multipart_body(body);
        other.content_type = "multipart/form-data; boundary=\"other\"".into();
        assert!(Fields::parse(&other).get("csrf").is_none());
    }

    #[test]
    fn too_many_parts_give_no_fields() {
        let mut body = Vec::new();
        for n in 0..=FORM_PARTS_MAX {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f{n}\"\r\n\r\nv\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        assert!(Fields::parse(&multipart_body(body)).get("f0").is_none());
    }

    #[test]
    fn urlencoded_fields_keep_their_order_and_repeats() {
        let fields = Fields::parse(&FormBody::urlencoded("ssn=A&ssn=+B+&ssn=&note=x%20y"));
        assert_eq!(fields.all("ssn").collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(fields.text("note"), "x y");
        assert_eq!(fields.text("none"), "");
    }
}
