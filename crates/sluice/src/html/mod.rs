//! Stand-alone HTML pages, the way the review and the run report are shown in a browser: one
//! file with its CSS inline, no script, no font, image or link fetched from anywhere (a
//! Content-Security-Policy says so to the browser too), readable from `file://` on a laptop and
//! printable. Text goes in only through [`text`] (escaped); tags only through this module's
//! builders, so a package's titles, SQL or a server's error message cannot become markup.

pub mod chart;

use std::borrow::Cow;

/// A piece of HTML that is safe to put in a page: escaped text and the tags built here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markup(String);

#[cfg(test)]
impl Markup {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Add for Markup {
    type Output = Markup;

    fn add(mut self, other: Markup) -> Markup {
        self.0.push_str(&other.0);
        self
    }
}

impl std::ops::AddAssign for Markup {
    fn add_assign(&mut self, other: Markup) {
        self.0.push_str(&other.0);
    }
}

impl FromIterator<Markup> for Markup {
    fn from_iter<I: IntoIterator<Item = Markup>>(parts: I) -> Markup {
        let mut all = Markup::default();
        for part in parts {
            all += part;
        }
        all
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in element text and in quoted attributes.
pub fn escape(s: &str) -> Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

/// Text, escaped.
pub fn text(s: impl AsRef<str>) -> Markup {
    Markup(escape(s.as_ref()).into_owned())
}

/// `<name attr="value"…>inner</name>`; attribute values are escaped.
pub(crate) fn element(name: &'static str, attrs: &[(&'static str, &str)], inner: Markup) -> Markup {
    let mut out = format!("<{name}");
    for (attr, value) in attrs {
        out.push_str(&format!(" {attr}=\"{}\"", escape(value)));
    }
    out.push('>');
    out.push_str(&inner.0);
    out.push_str(&format!("</{name}>"));
    Markup(out)
}

/// An element that stands on its own line in the page's source (a paragraph, a row, a table).
pub fn block(name: &'static str, attrs: &[(&'static str, &str)], inner: Markup) -> Markup {
    let mut m = element(name, attrs, inner);
    m.0.push('\n');
    m
}

/// An element with a class.
pub fn class(name: &'static str, class: &str, inner: Markup) -> Markup {
    element(name, &[("class", class)], inner)
}

/// A block with a class.
pub(crate) fn block_class(name: &'static str, class: &str, inner: Markup) -> Markup {
    block(name, &[("class", class)], inner)
}

/// Inline code.
pub fn code(s: impl AsRef<str>) -> Markup {
    element("code", &[], text(s))
}

/// A sentence of sluice's own in which `backquoted` names are code: the parts between
/// backquotes become [`code`], the rest [`text`].
pub(crate) fn code_spans(s: &str) -> Markup {
    s.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { code(part) } else { text(part) })
        .collect()
}

pub(crate) fn strong(inner: Markup) -> Markup {
    element("strong", &[], inner)
}

/// Kept on one line (an id, a time): a table column does not break it.
pub(crate) fn nowrap(inner: Markup) -> Markup {
    class("span", "nowrap", inner)
}

/// Emphasised as a problem (red, bold).
pub(crate) fn alarm(s: &str) -> Markup {
    class("strong", "fail", text(s))
}

pub fn p(inner: Markup) -> Markup {
    block("p", &[], inner)
}

/// A block of text shown as it is (SQL, query output), wrapped when printed.
pub fn pre(s: &str) -> Markup {
    block("pre", &[], text(s))
}

pub(crate) fn h1(s: &str) -> Markup {
    block("h1", &[], text(s))
}

/// A section heading, the target of the page's table of contents.
pub fn h2(id: &str, s: &str) -> Markup {
    block("h2", &[("id", id)], text(s))
}

pub(crate) fn h3(inner: Markup) -> Markup {
    block("h3", &[], inner)
}

/// A bulleted list.
pub fn list(items: impl IntoIterator<Item = Markup>) -> Markup {
    block(
        "ul",
        &[],
        items.into_iter().map(|i| block("li", &[], i)).collect(),
    )
}

/// A table with a header row; each row a list of cells. Wide tables scroll on their own on a
/// narrow screen instead of widening the page.
pub fn table<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    rows: impl IntoIterator<Item = Vec<Markup>>,
) -> Markup {
    let head: Markup = headers
        .into_iter()
        .map(|h| element("th", &[], text(h)))
        .collect();
    let body: Markup = rows
        .into_iter()
        .map(|cells| {
            block(
                "tr",
                &[],
                cells.into_iter().map(|c| element("td", &[], c)).collect(),
            )
        })
        .collect();
    let inner = block("thead", &[], block("tr", &[], head)) + block("tbody", &[], body);
    block_class("div", "scroll", block("table", &[], inner))
}

/// A two-column table of facts: a name, then its value.
pub fn facts<'a>(rows: impl IntoIterator<Item = (&'a str, Markup)>) -> Markup {
    let body: Markup = rows
        .into_iter()
        .map(|(name, value)| {
            block(
                "tr",
                &[],
                element("th", &[("scope", "row")], text(name)) + element("td", &[], value),
            )
        })
        .collect();
    block_class(
        "div",
        "scroll",
        block_class("table", "facts", block("tbody", &[], body)),
    )
}

/// A box that stands out: `kind` is `ok`, `fail`, `warn` or `note`.
pub(crate) fn callout(kind: &str, inner: Markup) -> Markup {
    block_class("div", &format!("callout {kind}"), inner)
}

/// Links to the page's sections (hidden when printed).
pub fn contents<'a>(links: impl IntoIterator<Item = (&'a str, &'a str)>) -> Markup {
    let items = links
        .into_iter()
        .map(|(id, label)| element("a", &[("href", &format!("#{id}"))], text(label)));
    block("nav", &[("aria-label", "contents")], list(items))
}

/// The page's CSS: system fonts only, readable widths, and a print layout.
const STYLE: &str = include_str!("page.css");

/// What the browser may load for the page: nothing but its own inline styles.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// A whole page: the document around `body`.
pub fn page(title: &str, body: Markup) -> String {
    let head = [
        "<meta charset=\"utf-8\">\n".to_string(),
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n".to_string(),
        format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n"),
        format!(
            "<meta name=\"generator\" content=\"sluice {}\">\n",
            env!("CARGO_PKG_VERSION")
        ),
        block("title", &[], text(title)).0,
        format!("<style>\n{STYLE}</style>\n"),
    ]
    .concat();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n{head}</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
        body.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        let m = text("<script>alert('x')</script> & \"q\"");
        assert_eq!(
            m.as_str(),
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn attribute_values_are_escaped() {
        let m = element("a", &[("href", "#\"><b>")], text("x"));
        assert_eq!(m.as_str(), "<a href=\"#&quot;&gt;&lt;b&gt;\">x</a>");
    }

    #[test]
    fn a_page_loads_nothing_from_elsewhere() {
        let html = page("t <1>", p(text("body")));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>t &lt;1&gt;</title>"));
        assert!(html.contains("@media print"));
        for outside in [
            "<script", "<link", "src=", "http://", "https://", "@import", "url(",
        ] {
            assert!(!html.contains(outside), "{outside} in the page");
        }
    }

    #[test]
    fn a_table_has_its_headers_and_cells() {
        let t = table(["a", "b"], vec![vec![text("1"), code("x<y")]]);
        assert!(t.as_str().contains("<th>a</th>"));
        assert!(t.as_str().contains("<td><code>x&lt;y</code></td>"));
    }
}
