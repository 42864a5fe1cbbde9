//! Reading a mail as the SMTP listener ([`crate::smtp`]) kept it: the text of its single-part
//! body, whatever transfer encoding the sender chose (lettre picks base64 or quoted-printable
//! for Japanese text), and the links in it.

use base64::Engine as _;

/// The decoded text of a single-part mail's body (`raw` as the listener kept its DATA).
pub fn body_text(raw: &str) -> String {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    // SMTP's dot-stuffing: a body line that began with "." was sent as "..".
    let body: Vec<&str> = body
        .lines()
        .map(|l| {
            l.strip_prefix('.')
                .filter(|_| l.starts_with(".."))
                .unwrap_or(l)
        })
        .collect();
    let encoding = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "base64" => {
            let joined: String = body.concat().split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap_or_else(|e| panic!("the body is not base64: {e}"));
            String::from_utf8(bytes).unwrap_or_else(|e| panic!("the body is not UTF-8: {e}"))
        }
        "quoted-printable" => quoted_printable(&body),
        _ => body.join("\n"),
    }
}

/// The first `http(s)://…` link in the decoded body that contains `part`.
pub fn link_containing(raw: &str, part: &str) -> Option<String> {
    body_text(raw)
        .split(|c: char| c.is_whitespace())
        .find(|w| (w.starts_with("http://") || w.starts_with("https://")) && w.contains(part))
        .map(str::to_owned)
}

fn quoted_printable(lines: &[&str]) -> String {
    let mut bytes = Vec::new();
    for line in lines {
        let (line, soft) = match line.trim_end().strip_suffix('=') {
            Some(l) => (l, true),
            None => (line.trim_end(), false),
        };
        let mut rest = line.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b == b'='
                && let Some(hex) = tail.get(..2)
                && let Ok(v) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
            {
                bytes.push(v);
                rest = &tail[2..];
                continue;
            }
            bytes.push(b);
            rest = tail;
        }
        if !soft {
            bytes.push(b'\n');
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("the body is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_quoted_printable_bodies_decode() {
        let b64 = format!(
            "Subject: x\nContent-Transfer-Encoding: base64\n\n{}\n",
            base64::engine::general_purpose::STANDARD
                .encode("ログイン\nhttps://a.example/site/sign-in?token=abc\n")
        );
        assert_eq!(
            link_containing(&b64, "/site/sign-in").as_deref(),
            Some("https://a.example/site/sign-in?token=abc")
        );
        let qp =
            "Content-Transfer-Encoding: quoted-printable\n\n=E3=83=AD=\ngin\nhttp://h/x?t=3Dy\n";
        assert_eq!(body_text(qp), "ロgin\nhttp://h/x?t=y\n");
    }
}
