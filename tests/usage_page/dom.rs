//! Just enough of an HTML reader for the DOM that Chromium's `--dump-dom` prints: elements with
//! their attributes and text, void elements, comments, and `<script>` and `<style>`, whose raw
//! text is left out.

/// An element, or the document.
#[derive(Clone, Debug, Default)]
pub struct Element {
    pub tag: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug)]
pub enum Node {
    Element(Element),
    Text(String),
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// The document that `html` serialises.
pub fn parse(html: &str) -> Element {
    let mut stack = vec![Element {
        tag: "#document".into(),
        ..Element::default()
    }];
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_text(&mut stack, rest);
            break;
        };
        push_text(&mut stack, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            rest = skip_past(rest, ">");
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').unwrap_or(after.len());
            let tag = after[..end].trim().to_ascii_lowercase();
            rest = skip_past(after, ">");
            // An end tag closes the open element of its name and whatever is open inside it;
            // a stray one is ignored.
            if stack.iter().skip(1).any(|open| open.tag == tag) {
                while let Some(open) = stack.pop() {
                    let done = open.tag == tag;
                    append(&mut stack, open);
                    if done {
                        break;
                    }
                }
            }
        } else {
            let (element, self_closing, after) = start_tag(&rest[1..]);
            rest = after;
            if matches!(element.tag.as_str(), "script" | "style") {
                rest = skip_past(rest, &format!("</{}", element.tag));
                rest = skip_past(rest, ">");
                append(&mut stack, element);
            } else if self_closing || VOID.contains(&element.tag.as_str()) {
                append(&mut stack, element);
            } else {
                stack.push(element);
            }
        }
    }
    while stack.len() > 1 {
        let open = stack.pop().expect("more than the document");
        append(&mut stack, open);
    }
    stack.pop().expect("the document")
}

fn skip_past<'a>(text: &'a str, needle: &str) -> &'a str {
    text.find(needle)
        .map_or("", |at| &text[at + needle.len()..])
}

fn append(stack: &mut [Element], element: Element) {
    let parent = stack.last_mut().expect("the document stays open");
    parent.children.push(Node::Element(element));
}

fn push_text(stack: &mut [Element], text: &str) {
    if !text.is_empty() {
        let parent = stack.last_mut().expect("the document stays open");
        parent.children.push(Node::Text(unescape(text)));
    }
}

/// Reads `name attr="value" ...>` (after the `<`): the element, whether it ends in `/>`, and
/// the text after the tag.
fn start_tag(text: &str) -> (Element, bool, &str) {
    let name_end = text
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(text.len());
    let mut element = Element {
        tag: text[..name_end].to_ascii_lowercase(),
        ..Element::default()
    };
    let mut rest = &text[name_end..];
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/>") {
            return (element, true, after);
        }
        if let Some(after) = rest.strip_prefix('>') {
            return (element, false, after);
        }
        if let Some(after) = rest.strip_prefix('/') {
            rest = after;
            continue;
        }
        if rest.is_empty() {
            return (element, false, rest);
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, after) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let end = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = after;
            unescape(value)
        } else {
            String::new()
        };
        element.attrs.push((name, value));
    }
}

/// The entities Chromium writes when it serialises text and attributes.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|classes| classes.split_whitespace().any(|c| c == class))
    }

    /// A copy of this element without the elements inside it that `cut` keeps (and theirs).
    pub fn pruned(&self, cut: &dyn Fn(&Element) -> bool) -> Element {
        let children = self
            .children
            .iter()
            .filter_map(|child| match child {
                Node::Element(element) if cut(element) => None,
                Node::Element(element) => Some(Node::Element(element.pruned(cut))),
                Node::Text(text) => Some(Node::Text(text.clone())),
            })
            .collect();
        Element {
            tag: self.tag.clone(),
            attrs: self.attrs.clone(),
            children,
        }
    }

    /// Every element inside this one, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut found = Vec::new();
        for child in &self.children {
            if let Node::Element(element) = child {
                found.push(element);
                found.extend(element.descendants());
            }
        }
        found
    }

    /// The elements inside this one that `keep` keeps, in document order.
    pub fn find_all(&self, keep: impl Fn(&Element) -> bool) -> Vec<&Element> {
        self.descendants().into_iter().filter(|e| keep(e)).collect()
    }

    /// The only element inside this one that `keep` keeps; panics with `what` when there are
    /// none or several.
    pub fn only(&self, what: &str, keep: impl Fn(&Element) -> bool) -> &Element {
        match self.find_all(keep).as_slice() {
            [one] => one,
            found => panic!(
                "expected one {what} in <{} {:?}>, found {}: {}",
                self.tag,
                self.attrs,
                found.len(),
                self.text()
            ),
        }
    }

    /// The element inside this one with `tag` and `class`, if exactly one.
    pub fn by_class(&self, tag: &str, class: &str) -> Option<&Element> {
        match self
            .find_all(|e| e.tag == tag && e.has_class(class))
            .as_slice()
        {
            [one] => Some(one),
            [] => None,
            several => panic!("{} <{tag} class={class}> in {}", several.len(), self.text()),
        }
    }

    /// The text inside this element, with its whitespace collapsed.
    pub fn text(&self) -> String {
        let mut raw = String::new();
        self.collect_text(&mut raw);
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn collect_text(&self, out: &mut String) {
        for child in &self.children {
            match child {
                Node::Text(text) => out.push_str(text),
                Node::Element(element) if element.tag == "script" || element.tag == "style" => {}
                Node::Element(element) => element.collect_text(out),
            }
        }
    }
}

#[test]
fn reads_nesting_attributes_void_elements_and_entities() {
    let document = parse(concat!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>p > a {}</style></head>",
        "<body><!-- a note --><main id=\"m\" data-x=\"a &amp; &quot;b&quot;\" hidden=\"\">",
        "<p class=\"one two\">3 &lt; <data value=\"4\">4</data></p><br><p>x&nbsp;y</p>",
        "</main><script>if (a < b) { document.write('</p>') }</script></body></html>"
    ));
    let main = document.only("main", |e| e.tag == "main");
    assert_eq!(main.attr("data-x"), Some("a & \"b\""));
    assert_eq!(main.attr("hidden"), Some(""));
    let p = main.by_class("p", "two").expect("p.two");
    assert_eq!(p.text(), "3 < 4");
    assert_eq!(p.only("data", |e| e.tag == "data").attr("value"), Some("4"));
    assert_eq!(main.find_all(|e| e.tag == "p").len(), 2);
    assert_eq!(main.text(), "3 < 4x y");
    assert_eq!(document.find_all(|e| e.tag == "script").len(), 1);
    assert!(!document.text().contains("document.write"));
}
