//! The HTTP/1.1 wire format shared by the test client and the test upstream:
//! reading a message head and a body (Content-Length, chunked, or until the
//! connection closes). Just enough of RFC 9112 for talking to Envoy.

use std::io::{self, BufRead, Read};

/// Longest head accepted, so a confused peer cannot make us buffer forever.
const MAX_HEAD: usize = 1 << 20;

/// A request or status line and its headers; names are lowercased, values
/// are raw bytes with surrounding whitespace removed.
pub(crate) struct Head {
    pub start_line: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        find(&self.headers, name)
    }

    /// Whether a comma-separated header (`connection`, `transfer-encoding`)
    /// lists `token`, case-insensitively.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// How the body that follows this head is delimited, if the message
    /// declares it (`None`: no Content-Length and not chunked).
    pub fn framing(&self) -> io::Result<Option<Framing>> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(Some(Framing::Chunked));
        }
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(|n| Some(Framing::Length(n)))
                .ok_or_else(|| invalid("bad content-length")),
        }
    }
}

pub(crate) enum Framing {
    Length(usize),
    Chunked,
}

/// The first header named `name` (lowercase) in `headers`.
pub(crate) fn find<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one line including its `\n`; the line without `\r\n`/`\n`.
fn read_line(r: &mut impl BufRead, limit: &mut usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.take(*limit as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *limit {
        return Err(invalid("HTTP head too long"));
    }
    *limit -= n;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside an HTTP head",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Reads a message head. `Ok(None)`: the peer closed the connection cleanly
/// before sending a byte (an idle keep-alive connection going away).
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut limit = MAX_HEAD;
    let start = match read_line(r, &mut limit)? {
        None => return Ok(None),
        Some(line) => String::from_utf8_lossy(&line).into_owned(),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut limit)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in head")
        })?;
        if line.is_empty() {
            break;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("header line without ':'"))?;
        let name = String::from_utf8_lossy(line[..colon].trim_ascii()).to_ascii_lowercase();
        headers.push((name, line[colon + 1..].trim_ascii().to_vec()));
    }
    Ok(Some(Head {
        start_line: start,
        headers,
    }))
}

/// Reads a body framed as `framing`.
pub(crate) fn read_body(r: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::Length(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body)?;
            Ok(body)
        }
        Framing::Chunked => read_chunked(r),
    }
}

/// Decodes a chunked body; chunk extensions and trailers are dropped.
fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in chunks");
    loop {
        let mut limit = MAX_HEAD;
        let line = read_line(r, &mut limit)?.ok_or_else(eof)?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            while !read_line(r, &mut limit)?.ok_or_else(eof)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r, &mut limit)?.ok_or_else(eof)?.is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}
