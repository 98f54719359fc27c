//! The page around every page: `<head>` with the style sheet, the skip link, the header with
//! the signed-in name and sign-out form, the role-filtered menu and the language switch; and
//! the small HTML pieces pages are made of (escaping, forms with their CSRF token, tables).

use ssn_ledger::Role;

use super::i18n::{Lang, t};
use super::session::Session;
use crate::support::role_name;

/// A page of the menu: its text key, its path and the roles that may open it (`admin` may
/// open every page). The same table guards the pages, so a menu never offers a refused page.
#[derive(Debug)]
pub struct MenuItem {
    /// Text key of the menu entry and the page title.
    pub key: &'static str,
    /// Path under the admin listener.
    pub path: &'static str,
    /// Roles besides `admin` that may open it.
    pub roles: &'static [Role],
}

/// Every role but `admin`: pages every role reads.
const EVERY_ROLE: &[Role] = &[
    Role::Diskominfo,
    Role::Dinsos,
    Role::Walikota,
    Role::Bank,
    Role::Auditor,
];
/// The semester report's readers (the spec's "Reports" roles).
const REPORT_ROLES: &[Role] = &[
    Role::Diskominfo,
    Role::Dinsos,
    Role::Walikota,
    Role::Auditor,
];

/// Every page, in menu order. Pages are about what a role does; every role may still read
/// through the API what its pages do not show.
pub const MENU: [MenuItem; 9] = [
    MenuItem {
        key: "dashboard",
        path: "/console",
        roles: EVERY_ROLE,
    },
    MenuItem {
        key: "beneficiaries",
        path: "/console/penerima",
        roles: &[Role::Diskominfo, Role::Dinsos, Role::Walikota],
    },
    MenuItem {
        key: "programs",
        path: "/console/program",
        roles: &[Role::Dinsos],
    },
    MenuItem {
        key: "cards",
        path: "/console/kartu",
        roles: &[Role::Diskominfo],
    },
    MenuItem {
        key: "merchants",
        path: "/console/ewarong",
        roles: &[Role::Bank],
    },
    MenuItem {
        key: "settlement",
        path: "/console/setelmen",
        roles: &[Role::Bank],
    },
    MenuItem {
        key: "report",
        path: "/console/laporan",
        roles: REPORT_ROLES,
    },
    MenuItem {
        key: "transactions",
        path: "/console/transaksi",
        roles: EVERY_ROLE,
    },
    MenuItem {
        key: "audit",
        path: "/console/audit",
        roles: &[Role::Walikota, Role::Auditor],
    },
];

/// Whether `role` may open the page whose text key is `key`.
pub fn may_open(role: Role, key: &str) -> bool {
    role == Role::Admin
        || MENU
            .iter()
            .any(|item| item.key == key && item.roles.contains(&role))
}

/// Text escaped for HTML element content and quoted attribute values: the semester report's
/// own escaping.
pub(crate) use crate::report_html::esc;

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(session: &Session) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&session.csrf)
    )
}

/// A labelled text input (`id` is the field's name).
pub fn input(label: &str, name: &str, value: &str, extra: &str) -> String {
    format!(
        r#"<p><label for="{name}">{}</label> <input id="{name}" name="{name}" value="{}" {extra}></p>"#,
        esc(label),
        esc(value)
    )
}

/// A table with a caption, head row and escaped-or-HTML cells (cells are HTML: escape text
/// with [`esc`] first).
pub fn table(caption: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = format!(
        r#"<div class="table"><table><caption>{}</caption><thead><tr>"#,
        esc(caption)
    );
    for h in head {
        html.push_str(&format!(r#"<th scope="col">{}</th>"#, esc(h)));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            html.push_str(&format!("<td>{cell}</td>"));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

/// A message above a page's content: what an action did, or why it was refused.
#[derive(Debug, Clone)]
pub enum Notice {
    /// It was done.
    Done(String),
    /// It was refused, with the API's reason.
    Refused(String),
}

impl Notice {
    /// The notice as HTML (a live region, so screen readers announce it).
    pub fn html(&self, lang: Lang) -> String {
        match self {
            Notice::Done(text) => format!(
                r#"<div class="notice done" role="status">{}</div>"#,
                esc(text)
            ),
            Notice::Refused(text) => format!(
                r#"<div class="notice refused" role="alert"><strong>{}:</strong> {}</div>"#,
                t(lang, "refused"),
                esc(text)
            ),
        }
    }
}

/// A whole page: `title` (text), `body` (HTML), the menu when signed in.
pub fn page(
    lang: Lang,
    session: Option<&Session>,
    current: &str,
    title: &str,
    body: &str,
) -> String {
    let mut header = String::new();
    let mut nav = String::new();
    if let Some(session) = session {
        header = format!(
            r#"<p class="who">{} <strong>{}</strong> ({})</p><form method="post" action="/console/keluar" class="inline">{}<button type="submit">{}</button></form>"#,
            t(lang, "signed_in_as"),
            esc(&session.name),
            role_name(session.role),
            csrf_field(session),
            t(lang, "sign_out"),
        );
        nav.push_str(&format!(r#"<nav aria-label="{}"><ul>"#, t(lang, "menu")));
        for item in MENU.iter().filter(|item| may_open(session.role, item.key)) {
            let here = if item.key == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            nav.push_str(&format!(
                r#"<li><a href="{}"{here}>{}</a></li>"#,
                item.path,
                t(lang, item.key)
            ));
        }
        nav.push_str("</ul></nav>");
    }
    let other = match lang {
        Lang::Id => Lang::En,
        Lang::En => Lang::Id,
    };
    format!(
        r##"<!doctype html>
<html lang="{code}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<title>{title} · {app}</title>
<style>{STYLE}</style>
</head>
<body>
<a class="skip" href="#isi">{skip}</a>
<header><p class="app"><a href="/console">{app}</a></p>{header}<p class="lang"><a href="/console/bahasa?ke={other_code}" lang="{other_code}">{other_name}</a></p></header>
{nav}
<main id="isi" tabindex="-1"><h1>{title}</h1>
{body}
</main>
</body>
</html>
"##,
        code = lang.code(),
        title = esc(title),
        app = t(lang, "app"),
        skip = t(lang, "skip"),
        other_code = other.code(),
        other_name = t(lang, "other_language"),
    )
}

/// The style sheet: plain, high-contrast, a visible focus ring, and one column at phone
/// width.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#f6f7f9}
a{color:#0b4f9c}
:focus-visible{outline:3px solid #e8a400;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px}
header{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:8px 16px;background:#0b4f9c;color:#fff}
header a{color:#fff}header .app{font-weight:700;margin:0 auto 0 0}header p{margin:0}
nav ul{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;margin:0;padding:8px 16px;background:#e3e9f2}
nav a[aria-current]{font-weight:700}
main{padding:16px;max-width:1200px}
form.inline{display:inline}
label{font-weight:600}
input,select,textarea,button{font:inherit;padding:4px 8px;max-width:100%}
button{background:#0b4f9c;color:#fff;border:0;border-radius:4px;padding:6px 12px;cursor:pointer}
header button{background:#fff;color:#0b4f9c}
.table{overflow-x:auto}table{border-collapse:collapse;margin:8px 0 16px;background:#fff}
th,td{border:1px solid #c9d1dc;padding:4px 8px;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:700;padding:4px 0}
.notice{padding:8px 12px;margin:8px 0;border-radius:4px}.done{background:#dff3e4}.refused{background:#fbe3e3}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #c9d1dc;padding:8px 16px;min-width:180px}
.card strong{display:block;font-size:1.4em}
section{background:#fff;border:1px solid #c9d1dc;padding:8px 16px;margin:12px 0}
@media (max-width:600px){main{padding:8px}nav ul{flex-direction:column}}
@media print{header,nav,form{display:none}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn admin_opens_every_page_and_others_only_theirs() {
        for item in &MENU {
            assert!(may_open(Role::Admin, item.key), "{}", item.key);
        }
        assert!(may_open(Role::Bank, "settlement"));
        assert!(!may_open(Role::Bank, "cards"));
        assert!(!may_open(Role::Auditor, "programs"));
        assert!(may_open(Role::Auditor, "audit"));
        assert!(!may_open(Role::Dinsos, "no such page"));
    }

    #[test]
    fn the_menu_shows_only_what_the_role_may_open() {
        let session = |role| Session {
            secret: "s".into(),
            name: "ops".into(),
            role,
            csrf: "c".into(),
            expires_at: 0,
        };
        let bank = page(Lang::Id, Some(&session(Role::Bank)), "dashboard", "x", "");
        assert!(bank.contains(r#"href="/console/setelmen""#));
        assert!(!bank.contains(r#"href="/console/kartu""#));
        let admin = page(Lang::En, Some(&session(Role::Admin)), "cards", "x", "");
        for item in &MENU {
            assert!(
                admin.contains(&format!(r#"href="{}""#, item.path)),
                "{}",
                item.key
            );
        }
        assert!(admin.contains(r#"<a href="/console/kartu" aria-current="page">Cards</a>"#));
        assert!(
            admin.contains(r#"name="csrf" value="c""#),
            "the sign-out form"
        );
    }
}
