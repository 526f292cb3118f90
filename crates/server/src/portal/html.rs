//! HTML of the portal: one layout, escaped text, forms that work without
//! JavaScript, and the QR code as inline SVG.

use std::fmt::Write as _;

use super::i18n::{Lang, Msg};

/// The stylesheet, served at `/portal.css` (the CSP allows no inline style).
pub(crate) const CSS: &str = "\
body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;color:#1b1b1b;background:#fff;line-height:1.5}
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #ccc;margin-bottom:1rem}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
a{color:#0645ad}
label{display:block;font-weight:600;margin-top:.8rem}
input[type=text],input[type=password],input[type=tel]{font-size:1.1rem;padding:.4rem;width:100%;max-width:20rem;box-sizing:border-box}
button{font-size:1rem;padding:.45rem 1rem;margin-top:1rem;cursor:pointer}
.alert{border:2px solid #b00020;background:#fdecee;padding:.6rem;margin:1rem 0}
.notice{border:2px solid #1e7d32;background:#e8f5e9;padding:.6rem;margin:1rem 0}
.hint{color:#444;font-size:.95rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem;border-bottom:1px solid #ddd;vertical-align:top}
td form button{margin:0;padding:.2rem .5rem;font-size:.9rem}
nav button{margin:0;padding:.1rem .6rem}
code.secret{font-size:1.2rem;letter-spacing:.1rem;word-break:break-all;background:#f3f3f3;padding:.2rem .4rem}
svg.qr{width:14rem;height:14rem;display:block;margin:1rem 0}
dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}
fieldset{border:1px solid #ccc;margin-top:1rem}fieldset label{font-weight:400;display:flex;gap:.5rem;margin:.3rem 0}
.inline{display:inline}
.number{font-size:3rem;font-weight:700;letter-spacing:.3rem;margin:.5rem 0}
.approve button{margin-right:1rem}
";

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the layout needs to know about the visitor.
pub(crate) struct Chrome<'a> {
    /// Page language.
    pub lang: Lang,
    /// Signed in: the CSRF token for the sign-out form.
    pub signed_in_csrf: Option<&'a str>,
    /// Path of this page, for the language switch (`None`: no switch).
    pub lang_switch: Option<&'a str>,
}

/// A whole page around `body` (already HTML).
pub(crate) fn page(c: &Chrome<'_>, title: Msg, body: &str) -> String {
    let lang = c.lang;
    let t = |m: Msg| esc(m.text(lang));
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} – {portal}</title><link rel=\"stylesheet\" href=\"/portal.css\">\
<link rel=\"manifest\" href=\"/manifest.webmanifest\"></head><body>\
<header><p><strong>{portal}</strong></p>",
        code = lang.code(),
        title = t(title),
        portal = t(Msg::PortalName),
    );
    if let Some(path) = c.lang_switch {
        // Each other language, named in itself.
        out.push_str("<p>");
        for other in Lang::ALL.into_iter().filter(|l| *l != lang) {
            let code = other.code();
            let _ = write!(
                out,
                "<a href=\"{path}?lang={code}\" hreflang=\"{code}\" lang=\"{code}\">{}</a> ",
                esc(Msg::LanguageName.text(other))
            );
        }
        out.push_str("</p>");
    }
    out.push_str("</header>");
    if let Some(csrf) = c.signed_in_csrf {
        let _ = write!(
            out,
            "<nav aria-label=\"{nav}\"><ul>\
<li><a href=\"/home\">{home}</a></li><li><a href=\"/enroll\">{app}</a></li>\
<li><a href=\"/phone\">{phone}</a></li><li><a href=\"/method\">{method}</a></li>\
<li><a href=\"/pin\">{pin}</a></li><li><a href=\"/devices\">{devices}</a></li>\
<li><form class=\"inline\" method=\"post\" action=\"/signout\">{hidden}<button type=\"submit\">{out}</button></form></li>\
</ul></nav>",
            nav = t(Msg::Navigation),
            home = t(Msg::NavHome),
            app = t(Msg::NavApp),
            phone = t(Msg::NavPhone),
            method = t(Msg::NavMethod),
            pin = t(Msg::NavPin),
            devices = t(Msg::NavDevices),
            hidden = csrf_field(csrf),
            out = t(Msg::SignOut),
        );
    }
    let _ = write!(
        out,
        "<main><h1>{}</h1>{body}</main></body></html>",
        t(title)
    );
    out
}

/// The hidden CSRF field of every POST form.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// An error box (announced by screen readers).
pub(crate) fn alert(text: &str) -> String {
    format!("<div class=\"alert\" role=\"alert\">{}</div>", esc(text))
}

/// A success box.
pub(crate) fn notice(text: &str) -> String {
    format!("<div class=\"notice\" role=\"status\">{}</div>", esc(text))
}

/// The QR code of `data` as an inline SVG with an accessible name.
pub(crate) fn qr_svg(data: &str, label: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let w = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let size = w + 2 * quiet;
    let mut path = String::with_capacity(colors.len() * 8);
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let _ = write!(path, "M{} {}h1v1h-1z", i % w + quiet, i / w + quiet);
        }
    }
    Some(format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" role=\"img\" aria-label=\"{}\" shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>",
        esc(label)
    ))
}

/// "•••• 1234" for a phone number (only the last four digits shown).
pub(crate) fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return "••••".to_string();
    }
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("•••• {tail}")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix milliseconds.
pub(crate) fn utc(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn masks_and_times() {
        assert_eq!(mask_phone("+31612345678"), "•••• 5678");
        assert_eq!(mask_phone("+123"), "••••");
        assert_eq!(utc(86_400_000 + 3_723_000), "1970-01-02 01:02:03");
    }

    #[test]
    fn qr_is_svg_with_a_label() {
        let svg = qr_svg("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP", "QR <code>").unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("aria-label=\"QR &lt;code&gt;\""));
        assert!(svg.matches('M').count() > 100, "has dark modules");
    }
}
