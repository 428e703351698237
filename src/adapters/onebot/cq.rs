//! OneBot v11 messages: parsing and printing "CQ codes" (the string form of a message) and
//! message segments (the array form), for the adapters that read group chats through NapCat,
//! LLOneBot, Lagrange or go-cqhttp. Chat messages are hostile input: anyone in a watched group
//! can type anything, and the implementations disagree on details the spec leaves open. So
//! nothing here may panic, nothing may allocate more than a small constant factor of the input's
//! size or take more than linear time, and whatever this module does not understand is kept
//! verbatim — as literal text, or as an `_invalid` segment holding the original JSON — because a
//! dropped byte could be the evidence.
//!
//! Spec references are to the OneBot v11 standard (botuniverse/onebot-11): `message/string.md`
//! (CQ codes and escaping), `message/array.md` (segments), `message/segment.md` (segment types)
//! and `event/message.md` (the `message` field and `auto_escape`).
//!
//! Decisions a caller must know:
//! - A CQ code is recognised only in its strict form `[CQ:type,key=value,...]`: type and keys are
//!   `[a-zA-Z0-9_.-]+`, every parameter has a `=`, no key repeats, and a value holds no raw `[`,
//!   `]` or `,` (string.md says values may contain any special character "except `[],&`"; a raw
//!   `&` is tolerated because sloppy senders put bare URLs in values). Anything else, including a
//!   repeated key, is kept as literal text (unescaped), so a scanner of `plain_text` still sees it.
//! - A raw `[` inside a would-be code ends it, and scanning resumes at that `[`: in
//!   `[CQ:text,text=[CQ:at,qq=1]]` the inner `[CQ:at,qq=1]` is a code and the rest is text.
//! - `[CQ:text,text=...]` with no other parameter is plain text and merges with the text around
//!   it (array.md: a `text` segment *is* plain text in the string form).
//! - Both forms come out normalised the same way: adjacent plain text segments are merged and
//!   empty ones dropped, so the string and array forms of one message compare equal.
//! - `to_cq` prints non-string data values as their compact JSON text (`123`, `true`, `null`,
//!   `{"a":1}`); parsing them back yields strings. A segment whose type or a key cannot appear in
//!   a CQ code is printed as escaped literal text, never as a code, so a hostile array element
//!   (say type `at,qq=all`) cannot turn into a different code when the string is sent on.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Segment kind for input that is not a segment; its original JSON is under [`RAW_KEY`].
const INVALID_KIND: &str = "_invalid";
/// Key that keeps an original value that had no key of its own (non-object `data`, or a whole
/// invalid element).
const RAW_KEY: &str = "_";
/// Start of every CQ code (string.md: "`[CQ:]` 是固定格式"); matched case-sensitively.
const CQ_OPEN: &[u8] = b"[CQ:";

/// One message segment. `data` values are kept as JSON values because implementations send numbers and booleans too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    #[serde(rename = "type")]
    pub kind: String,
    // array.md: "此字段可为 null"; some implementations omit it, and a non-object is kept
    // rather than rejected so that nothing is lost.
    #[serde(default, deserialize_with = "deserialize_data")]
    pub data: BTreeMap<String, Value>,
}

fn deserialize_data<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    Ok(data_from_value(Value::deserialize(d)?))
}

/// `null` means no parameters; an object is the parameters; anything else is kept whole under
/// [`RAW_KEY`].
fn data_from_value(value: Value) -> BTreeMap<String, Value> {
    match value {
        Value::Null => BTreeMap::new(),
        Value::Object(map) => map.into_iter().collect(),
        other => BTreeMap::from([(RAW_KEY.to_owned(), other)]),
    }
}

impl Segment {
    pub fn text(s: &str) -> Segment {
        Segment {
            kind: "text".to_owned(),
            data: BTreeMap::from([("text".to_owned(), Value::String(s.to_owned()))]),
        }
    }

    /// A data field as a string: strings as they are, numbers and booleans printed, anything else None.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.data.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The text of a plain text segment: type `text` whose only field is a string `text`. Only
    /// these are merged, because merging anything richer would lose its other fields.
    fn plain_text_mut(&mut self) -> Option<&mut String> {
        if self.kind != "text" || self.data.len() != 1 {
            return None;
        }
        match self.data.get_mut("text") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// Appends a segment, merging plain text into a preceding plain text segment and dropping empty
/// plain text, so every producer here yields the same normal form.
fn push_segment(out: &mut Vec<Segment>, mut seg: Segment) {
    if let Some(text) = seg.plain_text_mut() {
        if text.is_empty() {
            return;
        }
        if let Some(prev) = out.last_mut().and_then(Segment::plain_text_mut) {
            prev.push_str(text);
            return;
        }
    }
    out.push(seg);
}

/// Pushes accumulated text (if any) as one segment and empties the buffer.
fn flush_text(out: &mut Vec<Segment>, text: &mut String) {
    if !text.is_empty() {
        push_segment(
            out,
            Segment {
                kind: "text".to_owned(),
                data: BTreeMap::from([("text".to_owned(), Value::String(std::mem::take(text)))]),
            },
        );
    }
}

/// Type names and keys (string.md gives no grammar; real implementations only use these, and
/// being strict keeps odd input as text instead of guessing).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_name_byte)
}

/// Index of the first byte at or after `from` that is not a name byte.
fn scan_name(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while bytes.get(i).copied().is_some_and(is_name_byte) {
        i += 1;
    }
    i
}

/// A well-formed CQ code found in the input, borrowing from it.
struct Code<'a> {
    kind: &'a str,
    /// Raw (still escaped) values. A map so that spotting a repeated key is not quadratic.
    params: BTreeMap<&'a str, &'a str>,
    /// Byte offset just past the closing `]`.
    end: usize,
}

/// Parses the CQ code whose `[CQ:` starts at byte `start`. On failure returns the offset at which
/// scanning must resume: always past `start` (so the caller makes progress), and never past a
/// `[` (so a code that starts inside a malformed one is still found). Every byte is looked at
/// once, which keeps the whole parse linear.
fn parse_code(input: &str, start: usize) -> Result<Code<'_>, usize> {
    let bytes = input.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    // string.md: the type is what lies between `[CQ:` and the first `,` or `]`.
    let kind_start = start + CQ_OPEN.len();
    let mut i = scan_name(bytes, kind_start);
    let kind = input
        .get(kind_start..i)
        .filter(|k| !k.is_empty())
        .ok_or(i)?;
    let mut params = BTreeMap::new();
    let mut repeated_key = false;
    loop {
        match at(i) {
            Some(b']') if repeated_key => return Err(i + 1),
            Some(b']') => {
                return Ok(Code {
                    kind,
                    params,
                    end: i + 1,
                });
            }
            Some(b',') => {}
            // Anything else after a name or value: a space, a raw `[`, the end of input.
            _ => return Err(i),
        }
        // string.md: parameters are split on `,`; the key is what precedes the first `=`.
        let key_start = i + 1;
        i = scan_name(bytes, key_start);
        let key = input.get(key_start..i).filter(|k| !k.is_empty()).ok_or(i)?;
        if at(i) != Some(b'=') {
            return Err(i);
        }
        // The value runs to the next `,` or `]` and may itself contain `=` (string.md's
        // `title=标题中有=等号`). A raw `[` cannot be in a value, so it ends the attempt.
        let value_start = i + 1;
        i = value_start;
        while let Some(b) = at(i) {
            if matches!(b, b',' | b']' | b'[') {
                break;
            }
            i += 1;
        }
        let value = input.get(value_start..i).ok_or(i)?;
        // Keeping either value of a repeated key would silently drop the other: keep it all as
        // text instead.
        repeated_key |= params.insert(key, value).is_some();
    }
}

/// Parse a CQ-code string into segments. Never fails: a malformed code (unterminated `[CQ:`, bad type, a parameter without `=`) is kept as literal text, unescaped. Adjacent text is merged into one text segment. Text segments hold the unescaped text.
pub fn parse_cq(input: &str) -> Vec<Segment> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut text = String::new();
    // Start of the literal text not yet copied into `text`. Malformed codes stay inside this run
    // and are unescaped together with the text around them.
    let mut run_start = 0;
    let mut pos = 0;
    while let Some(found) = bytes
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&b| b == b'['))
        .map(|off| pos + off)
    {
        if !bytes.get(found..).is_some_and(|b| b.starts_with(CQ_OPEN)) {
            // A raw `[` that opens no code (string.md wants it escaped, but people type it).
            pos = found + 1;
            continue;
        }
        let code = match parse_code(input, found) {
            Ok(code) => code,
            Err(resume) => {
                pos = resume;
                continue;
            }
        };
        // `run_start` and `found` sit on ASCII delimiters, so this slice always exists.
        unescape_into(&mut text, input.get(run_start..found).unwrap_or_default());
        run_start = code.end;
        pos = code.end;
        if code.kind == "text"
            && code.params.len() == 1
            && let Some(value) = code.params.get("text")
        {
            unescape_into(&mut text, value);
            continue;
        }
        flush_text(&mut out, &mut text);
        let data = code
            .params
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(unescape(v))))
            .collect();
        out.push(Segment {
            kind: code.kind.to_owned(),
            data,
        });
    }
    unescape_into(&mut text, input.get(run_start..).unwrap_or_default());
    flush_text(&mut out, &mut text);
    out
}

/// A data value as it appears in a CQ code: strings as they are, anything else as compact JSON.
fn value_to_param(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Print segments as a CQ-code string (escaping text and parameter values; non-string data values printed as JSON scalars; objects/arrays as compact JSON). parse_cq(&to_cq(segs)) must equal segs after normalisation (merged text, data values as strings).
pub fn to_cq(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        write_segment(&mut out, seg);
    }
    out
}

fn write_segment(out: &mut String, seg: &Segment) {
    // array.md: a `text` segment becomes plain text, not a code.
    if seg.kind == "text"
        && seg.data.len() == 1
        && let Some(value) = seg.data.get("text")
    {
        escape_into(out, &value_to_param(value), false);
        return;
    }
    if is_name(&seg.kind) && seg.data.keys().all(|k| is_name(k)) {
        out.push_str("[CQ:");
        out.push_str(&seg.kind);
        for (key, value) in &seg.data {
            out.push(',');
            out.push_str(key);
            out.push('=');
            escape_into(out, &value_to_param(value), true);
        }
        out.push(']');
    } else {
        // There is no escape for type names or keys, so printing this as a code could make it
        // parse as a different code. As escaped text it reads back as what was there.
        let mut raw = String::from("[CQ:");
        raw.push_str(&seg.kind);
        for (key, value) in &seg.data {
            raw.push(',');
            raw.push_str(key);
            raw.push('=');
            raw.push_str(&value_to_param(value));
        }
        raw.push(']');
        escape_into(out, &raw, false);
    }
}

/// string.md, 转义: text escapes `&`, `[`, `]`; parameter values also escape `,`.
fn escape_into(out: &mut String, s: &str, comma: bool) {
    out.reserve(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '[' => out.push_str("&#91;"),
            ']' => out.push_str("&#93;"),
            ',' if comma => out.push_str("&#44;"),
            c => out.push(c),
        }
    }
}

pub fn escape_text(s: &str) -> String {
    let mut out = String::new();
    escape_into(&mut out, s, false);
    out
}

pub fn escape_param(s: &str) -> String {
    let mut out = String::new();
    escape_into(&mut out, s, true);
    out
}

/// What follows `&` in each escape of string.md, and what it stands for.
const ESCAPES: [(&str, char); 4] = [("amp;", '&'), ("#91;", '['), ("#93;", ']'), ("#44;", ',')];

/// One left-to-right pass, so `&amp;#91;` becomes `&#91;` and not `[` (the double escaping a
/// text containing `&#91;` gets). `&#44;` is accepted in text too: escape_text never produces
/// it, so this cannot misread anything printed here, and senders that escape commas
/// everywhere are read right.
fn unescape_into(out: &mut String, s: &str) {
    out.reserve(s.len());
    let mut rest = s;
    while let Some((before, after)) = rest.split_once('&') {
        out.push_str(before);
        let known = ESCAPES
            .iter()
            .find_map(|(tail, c)| after.strip_prefix(tail).map(|r| (*c, r)));
        rest = match known {
            Some((c, r)) => {
                out.push(c);
                r
            }
            None => {
                out.push('&');
                after
            }
        };
    }
    out.push_str(rest);
}

/// Reverse of the escapes above; unknown `&...;` sequences are left as they are.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    unescape_into(&mut out, s);
    out
}

fn invalid(original: &Value) -> Segment {
    Segment {
        kind: INVALID_KIND.to_owned(),
        data: BTreeMap::from([(RAW_KEY.to_owned(), original.clone())]),
    }
}

/// An array element as a segment: an object with a string `type` (array.md); its `data` is read
/// as [`Segment`]'s deserializer does. Other members are ignored. Anything else is `_invalid`.
fn segment_from_value(value: &Value) -> Segment {
    if let Value::Object(map) = value
        && let Some(Value::String(kind)) = map.get("type")
    {
        let data = match map.get("data") {
            Some(data) => data_from_value(data.clone()),
            None => BTreeMap::new(),
        };
        return Segment {
            kind: kind.clone(),
            data,
        };
    }
    invalid(value)
}

/// Parse the `message` field of an event whatever its form: a JSON string (CQ codes, or plain text when `auto_escape` is known to be on — take a bool), an array of segments (elements that are not valid segments are kept as `Segment { kind: "_invalid", data: {"_": original} }`), a single segment object, or anything else (kept as one `_invalid` segment). Never panics.
pub fn parse_message(value: &serde_json::Value, raw_text: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    match value {
        // event/message.md: `auto_escape` (send the string as plain text) only applies to a
        // string message, so `raw_text` is ignored for the other forms.
        Value::String(s) if raw_text => push_segment(&mut out, Segment::text(s)),
        Value::String(s) => return parse_cq(s),
        // array.md: values in segments are real values and are never unescaped.
        Value::Array(items) => {
            out.reserve(items.len());
            for item in items {
                push_segment(&mut out, segment_from_value(item));
            }
        }
        Value::Object(_) => push_segment(&mut out, segment_from_value(value)),
        other => out.push(invalid(other)),
    }
    out
}

/// The plain text of a message: text segments concatenated, other segments rendered as a short marker like `[image]`, `[file:name.csv]`, `[at:123]`, `[face]`; used by extraction and for display.
pub fn plain_text(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        let detail = match seg.kind.as_str() {
            "text" => {
                match seg.data.get("text") {
                    Some(Value::String(s)) => out.push_str(s),
                    _ => out.push_str(&seg.get("text").unwrap_or_default()),
                }
                continue;
            }
            // segment.md: `qq` is a QQ number or `all`.
            "at" => seg.get("qq"),
            // Not in the spec: NapCat and LLOneBot send received files as `file` segments with
            // the file name in `file` (some also in `name`). The name matters for extraction.
            "file" => seg.get("name").or_else(|| seg.get("file")),
            _ => None,
        };
        out.push('[');
        out.push_str(&seg.kind);
        if let Some(detail) = detail {
            out.push(':');
            out.push_str(&detail);
        }
        out.push(']');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn seg(kind: &str, data: &[(&str, &str)]) -> Segment {
        Segment {
            kind: kind.to_owned(),
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect(),
        }
    }

    fn text(s: &str) -> Segment {
        Segment::text(s)
    }

    /// What `parse_cq(&to_cq(segs))` should give: values as strings, plain text merged.
    fn normalise(segs: &[Segment]) -> Vec<Segment> {
        let mut out = Vec::new();
        for s in segs {
            let data = s
                .data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(value_to_param(v).into_owned())))
                .collect();
            push_segment(
                &mut out,
                Segment {
                    kind: s.kind.clone(),
                    data,
                },
            );
        }
        out
    }

    fn assert_round_trip(segs: &[Segment]) {
        assert_eq!(
            parse_cq(&to_cq(segs)),
            normalise(segs),
            "via {:?}",
            to_cq(segs)
        );
    }

    // ---- examples from the spec ----

    #[test]
    fn spec_array_md_example_string_and_array_agree() {
        let string =
            "&#91;第一部分&#93;[CQ:image,file=123.jpg]图片之后的部分，表情：[CQ:face,id=123]";
        let array = json!([
            {"type": "text", "data": {"text": "[第一部分]"}},
            {"type": "image", "data": {"file": "123.jpg"}},
            {"type": "text", "data": {"text": "图片之后的部分，表情："}},
            {"type": "face", "data": {"id": "123"}}
        ]);
        let expected = vec![
            text("[第一部分]"),
            seg("image", &[("file", "123.jpg")]),
            text("图片之后的部分，表情："),
            seg("face", &[("id", "123")]),
        ];
        assert_eq!(parse_cq(string), expected);
        assert_eq!(parse_message(&json!(string), false), expected);
        assert_eq!(parse_message(&array, false), expected);
        assert_eq!(to_cq(&expected), string);
    }

    #[test]
    fn spec_string_md_examples() {
        assert_eq!(
            parse_cq("[CQ:face,id=178]看看我刚拍的照片[CQ:image,file=123.jpg]"),
            vec![
                seg("face", &[("id", "178")]),
                text("看看我刚拍的照片"),
                seg("image", &[("file", "123.jpg")]),
            ]
        );
        assert_eq!(parse_cq("[CQ:shake]"), vec![seg("shake", &[])]);
        // The value is everything after the first `=`.
        assert_eq!(
            parse_cq("[CQ:share,title=标题中有=等号,url=http://baidu.com]"),
            vec![seg(
                "share",
                &[("title", "标题中有=等号"), ("url", "http://baidu.com")]
            )]
        );
        assert_eq!(
            parse_cq(
                "[CQ:share,title=震惊&#44;小伙睡觉前居然...,url=http://baidu.com/?a=1&amp;b=2]"
            ),
            vec![seg(
                "share",
                &[
                    ("title", "震惊,小伙睡觉前居然..."),
                    ("url", "http://baidu.com/?a=1&b=2")
                ]
            )]
        );
        // 转义 example.
        let raw = "- [x] 使用 `&data` 获取地址";
        let escaped = "- &#91;x&#93; 使用 `&amp;data` 获取地址";
        assert_eq!(escape_text(raw), escaped);
        assert_eq!(unescape(escaped), raw);
        assert_eq!(parse_cq(escaped), vec![text(raw)]);
        // Spaces are not allowed in a code (string.md), so this one is text.
        assert_eq!(
            parse_cq("[CQ:face, id=178]"),
            vec![text("[CQ:face, id=178]")]
        );
    }

    #[test]
    fn spec_segment_md_examples_both_forms() {
        let cases = [
            (
                "[CQ:at,qq=10001000]",
                json!({"type": "at", "data": {"qq": "10001000"}}),
            ),
            ("[CQ:rps]", json!({"type": "rps", "data": {}})),
            (
                "[CQ:poke,id=2003,type=126]",
                json!({"type": "poke", "data": {"type": "126", "id": "2003"}}),
            ),
            (
                "[CQ:location,lat=39.8969426,lon=116.3109099]",
                json!({"type": "location", "data": {"lat": "39.8969426", "lon": "116.3109099"}}),
            ),
            (
                "[CQ:music,audio=http://baidu.com/1.mp3,title=音乐标题,type=custom,url=http://baidu.com]",
                json!({"type": "music", "data": {"type": "custom", "url": "http://baidu.com", "audio": "http://baidu.com/1.mp3", "title": "音乐标题"}}),
            ),
            (
                "[CQ:node,content=&#91;CQ:face&#44;id=123&#93;哈喽～,nickname=某人,user_id=10001000]",
                json!({"type": "node", "data": {"user_id": "10001000", "nickname": "某人", "content": "[CQ:face,id=123]哈喽～"}}),
            ),
        ];
        for (string, object) in &cases {
            let from_string = parse_cq(string);
            assert_eq!(from_string, parse_message(object, false), "{string}");
            assert_eq!(from_string, parse_message(&json!([object]), false));
            // Keys are printed sorted, and the cases above are written that way.
            assert_eq!(to_cq(&from_string), *string);
        }
        // The node's content is itself a CQ string.
        let node = parse_cq(cases[5].0);
        let content = node[0].get("content").unwrap();
        assert_eq!(
            parse_cq(&content),
            vec![seg("face", &[("id", "123")]), text("哈喽～")]
        );
    }

    #[test]
    fn json_segment_with_escaped_commas() {
        let s = r#"[CQ:json,data={"app":"com.tencent"&#44;"ver":"1.0"&#44;"a":&#91;1&#93;}]"#;
        let segs = parse_cq(s);
        assert_eq!(
            segs,
            vec![seg(
                "json",
                &[("data", r#"{"app":"com.tencent","ver":"1.0","a":[1]}"#)]
            )]
        );
        assert_eq!(to_cq(&segs), s);
    }

    // ---- escaping ----

    #[test]
    fn escape_functions() {
        assert_eq!(escape_text("a&b[c]d,e"), "a&amp;b&#91;c&#93;d,e");
        assert_eq!(escape_param("a&b[c]d,e"), "a&amp;b&#91;c&#93;d&#44;e");
        assert_eq!(escape_text("&#91;"), "&amp;#91;");
        assert_eq!(unescape("&amp;#91;"), "&#91;");
        assert_eq!(unescape("&amp;amp;"), "&amp;");
        assert_eq!(unescape("&#91;&#93;&#44;&amp;"), "[],&");
        // Unknown or incomplete sequences stay as they are.
        assert_eq!(
            unescape("&lt; &#92; &#x5b; &AMP; &amp &# & &&amp;;"),
            "&lt; &#92; &#x5b; &AMP; &amp &# & &&;"
        );
        assert_eq!(unescape("尾巴&"), "尾巴&");
        assert_eq!(escape_text(""), "");
        assert_eq!(unescape(""), "");
    }

    #[test]
    fn text_round_trips() {
        for s in [
            "[CQ:at,qq=all]",
            "[CQ:",
            "&amp;#91;",
            "&#91;",
            "&&&;;;[[]]",
            "a,b,c=d",
            "中文消息😀👨‍👩‍👧 emoji",
            "［CQ:at,qq=1］",
            "line1\nline2\r\n\ttab\0nul",
            "]",
        ] {
            let segs = vec![text(s)];
            assert_eq!(parse_cq(&escape_text(s)), segs, "{s:?}");
            assert_round_trip(&segs);
        }
        // Text containing a literal code is escaped, so it is not turned into a code.
        assert_eq!(to_cq(&[text("[CQ:at,qq=all]")]), "&#91;CQ:at,qq=all&#93;");
        // Full-width brackets are ordinary characters.
        assert_eq!(escape_text("［］"), "［］");
        assert_eq!(parse_cq("［CQ:at,qq=1］"), vec![text("［CQ:at,qq=1］")]);
    }

    #[test]
    fn param_round_trips() {
        let segs = vec![
            seg(
                "share",
                &[
                    ("title", "a,b,,c"),
                    ("url", "http://x/?a=1&b=2,3"),
                    ("content", "[CQ:at,qq=all]"),
                    ("image", ""),
                ],
            ),
            text("中文😀"),
            seg("image", &[("file", "&amp;#91;"), ("summary", "［图片］")]),
            seg("x.y-z_0", &[("k", "=")]),
        ];
        assert_round_trip(&segs);
        assert_eq!(
            to_cq(&segs[..1]),
            "[CQ:share,content=&#91;CQ:at&#44;qq=all&#93;,image=,title=a&#44;b&#44;&#44;c,url=http://x/?a=1&amp;b=2&#44;3]"
        );
    }

    #[test]
    fn empty_values() {
        assert_eq!(
            parse_cq("[CQ:image,file=,url=]"),
            vec![seg("image", &[("file", ""), ("url", "")])]
        );
        assert_eq!(to_cq(&[seg("image", &[("file", "")])]), "[CQ:image,file=]");
    }

    #[test]
    fn text_codes_are_text() {
        assert_eq!(parse_cq("a[CQ:text,text=b&#44;c]d"), vec![text("ab,cd")]);
        assert_eq!(parse_cq("[CQ:text,text=]"), vec![]);
        // With anything more than `text` it is kept as a segment, and printed back as a code.
        let rich = parse_cq("a[CQ:text,qq=1,text=b]");
        assert_eq!(
            rich,
            vec![text("a"), seg("text", &[("qq", "1"), ("text", "b")])]
        );
        assert_eq!(to_cq(&rich), "a[CQ:text,qq=1,text=b]");
        assert_eq!(parse_cq("[CQ:text]"), vec![seg("text", &[])]);
        assert_eq!(to_cq(&[seg("text", &[])]), "[CQ:text]");
        // Adjacent text segments merge; empty ones vanish.
        assert_eq!(
            parse_message(
                &json!([{"type":"text","data":{"text":"a"}},{"type":"text","data":{"text":""}},{"type":"text","data":{"text":"b"}}]),
                false
            ),
            vec![text("ab")]
        );
    }

    // ---- malformed codes ----

    #[test]
    fn malformed_codes_are_literal_text() {
        let cases: [(&str, Vec<Segment>); 17] = [
            ("[CQ:image,file=a.jpg", vec![text("[CQ:image,file=a.jpg")]),
            ("x[CQ:]y", vec![text("x[CQ:]y")]),
            ("[CQ:image,file]", vec![text("[CQ:image,file]")]),
            ("[CQ:ima ge,file=x]", vec![text("[CQ:ima ge,file=x]")]),
            ("[CQ:image,=x]", vec![text("[CQ:image,=x]")]),
            ("[CQ:image,]", vec![text("[CQ:image,]")]),
            ("[CQ:image,,file=a]", vec![text("[CQ:image,,file=a]")]),
            ("[CQ:image,file=a,]", vec![text("[CQ:image,file=a,]")]),
            (
                "[CQ:image,file=a,file=b]",
                vec![text("[CQ:image,file=a,file=b]")],
            ),
            ("[cq:image,file=a]", vec![text("[cq:image,file=a]")]),
            ("[CQ:图片,file=a]", vec![text("[CQ:图片,file=a]")]),
            // Malformed text is unescaped like any text.
            (
                "[CQ:image,file=a&#44;b&amp;",
                vec![text("[CQ:image,file=a,b&")],
            ),
            // A nested code: the outer one is broken by the raw `[`, the inner one is real.
            (
                "[CQ:text,text=[CQ:at,qq=1]]",
                vec![text("[CQ:text,text="), seg("at", &[("qq", "1")]), text("]")],
            ),
            ("[[CQ:at,qq=1]", vec![text("["), seg("at", &[("qq", "1")])]),
            (
                "[CQ:at,qq=1[CQ:face,id=2]",
                vec![text("[CQ:at,qq=1"), seg("face", &[("id", "2")])],
            ),
            (
                "[CQ:image,file=a]]",
                vec![seg("image", &[("file", "a")]), text("]")],
            ),
            ("[CQ:[CQ:shake]", vec![text("[CQ:"), seg("shake", &[])]),
        ];
        for (input, expected) in cases {
            let got = parse_cq(input);
            assert_eq!(got, expected, "{input:?}");
            // Nothing is lost: printing and parsing again is stable.
            assert_eq!(parse_cq(&to_cq(&got)), got, "{input:?}");
        }
        assert_eq!(parse_cq(""), vec![]);
    }

    // ---- array form: types, data shapes ----

    #[test]
    fn numbers_booleans_and_nulls_in_data() {
        let at: Segment =
            serde_json::from_value(json!({"type":"at","data":{"qq":123456}})).unwrap();
        assert_eq!(at.data["qq"], json!(123456));
        assert_eq!(at.get("qq").as_deref(), Some("123456"));
        assert_eq!(to_cq(std::slice::from_ref(&at)), "[CQ:at,qq=123456]");
        assert_eq!(plain_text(&[at]), "[at:123456]");

        let file = parse_message(
            &json!([{"type":"file","data":{"file":"leak.csv","file_size":1024,"busid":102,"ok":true,"x":null,"f":1.5}}]),
            false,
        );
        assert_eq!(file[0].get("file_size").as_deref(), Some("1024"));
        assert_eq!(file[0].get("ok").as_deref(), Some("true"));
        assert_eq!(file[0].get("f").as_deref(), Some("1.5"));
        assert_eq!(file[0].get("x"), None);
        assert_eq!(file[0].get("missing"), None);
        assert_eq!(plain_text(&file), "[file:leak.csv]");
        let printed = to_cq(&file);
        assert_eq!(
            printed,
            "[CQ:file,busid=102,f=1.5,file=leak.csv,file_size=1024,ok=true,x=null]"
        );
        assert_round_trip(&file);
        assert_eq!(parse_cq(&printed)[0].get("x").as_deref(), Some("null"));
    }

    #[test]
    fn data_null_missing_or_not_an_object() {
        let cases = [
            (json!({"type":"shake","data":null}), BTreeMap::new()),
            (json!({"type":"shake"}), BTreeMap::new()),
            (
                json!({"type":"x","data":"str"}),
                BTreeMap::from([("_".to_owned(), json!("str"))]),
            ),
            (
                json!({"type":"x","data":[1,"a"]}),
                BTreeMap::from([("_".to_owned(), json!([1, "a"]))]),
            ),
            (
                json!({"type":"x","data":5}),
                BTreeMap::from([("_".to_owned(), json!(5))]),
            ),
            (
                json!({"type":"x","data":false}),
                BTreeMap::from([("_".to_owned(), json!(false))]),
            ),
        ];
        for (value, data) in cases {
            let via_serde: Segment = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(via_serde.data, data, "{value}");
            assert_eq!(parse_message(&value, false), vec![via_serde.clone()]);
            assert_round_trip(&[via_serde]);
        }
        // Serialising writes `data` back as an object.
        let s = serde_json::to_value(Segment::text("hi")).unwrap();
        assert_eq!(s, json!({"type":"text","data":{"text":"hi"}}));
    }

    #[test]
    fn unknown_types_and_nested_values_kept_verbatim() {
        let mface =
            json!({"type":"mface","data":{"emoji_id":"abc","summary":"[动画表情]","key":"k,1"}});
        let node = json!({"type":"node","data":{"user_id":10001000,"content":[{"type":"face","data":{"id":"123"}}]}});
        let segs = parse_message(&json!([mface, node]), false);
        assert_eq!(segs[0].kind, "mface");
        assert_eq!(segs[0].data["summary"], json!("[动画表情]"));
        assert_eq!(
            segs[1].data["content"],
            json!([{"type":"face","data":{"id":"123"}}])
        );
        assert_eq!(segs[1].get("content"), None);
        let printed = to_cq(&segs);
        assert_eq!(
            printed,
            "[CQ:mface,emoji_id=abc,key=k&#44;1,summary=&#91;动画表情&#93;]\
             [CQ:node,content=&#91;{\"data\":{\"id\":\"123\"}&#44;\"type\":\"face\"}&#93;,user_id=10001000]"
        );
        // The nested content comes back as its JSON text, which still parses.
        let back = parse_cq(&printed);
        let content: Value = serde_json::from_str(&back[1].get("content").unwrap()).unwrap();
        assert_eq!(content, segs[1].data["content"]);
        assert_eq!(plain_text(&segs), "[mface][node]");
    }

    #[test]
    fn hostile_types_and_keys_never_print_as_codes() {
        let segs = vec![
            seg("at,qq=all", &[]),
            seg("image", &[("file=x,url", "y")]),
            seg("", &[("a", "b")]),
            seg("ima ge", &[("file", "]&[")]),
        ];
        let printed = to_cq(&segs);
        assert!(!printed.contains('['), "{printed}");
        assert_eq!(
            parse_cq(&printed),
            vec![text(
                "[CQ:at,qq=all][CQ:image,file=x,url=y][CQ:,a=b][CQ:ima ge,file=]&[]"
            )]
        );
    }

    #[test]
    fn parse_message_forms() {
        let string = json!("[CQ:face,id=1]&#91;hi&#93;");
        assert_eq!(
            parse_message(&string, false),
            vec![seg("face", &[("id", "1")]), text("[hi]")]
        );
        // auto_escape: the string is plain text, not unescaped.
        assert_eq!(
            parse_message(&string, true),
            vec![text("[CQ:face,id=1]&#91;hi&#93;")]
        );
        assert_eq!(parse_message(&json!(""), true), vec![]);
        assert_eq!(parse_message(&json!([]), false), vec![]);
        // A single segment object.
        assert_eq!(
            parse_message(&json!({"type":"at","data":{"qq":"all"}}), true),
            vec![seg("at", &[("qq", "all")])]
        );
        // Elements that are not segments are kept, in place.
        let array = json!([1, "hi", {"data":{}}, {"type": 5}, {"type":"text","data":{"text":"a"}}, {"type":"text","data":{"text":"b"}}, null, [{"type":"x"}]]);
        let Value::Array(items) = &array else {
            unreachable!()
        };
        let got = parse_message(&array, false);
        let mut expected: Vec<Segment> = items[..4].iter().map(invalid).collect();
        expected.push(text("ab"));
        expected.push(invalid(&items[6]));
        expected.push(invalid(&items[7]));
        assert_eq!(got, expected);
        assert_eq!(got[1].kind, "_invalid");
        assert_eq!(got[1].data["_"], json!("hi"));
        // Anything else is one invalid segment.
        for other in [json!(null), json!(42), json!(true), json!({"no":"type"})] {
            assert_eq!(parse_message(&other, false), vec![invalid(&other)]);
        }
    }

    #[test]
    fn plain_text_markers() {
        let segs = parse_message(
            &json!([
                {"type":"reply","data":{"id":"9"}},
                {"type":"at","data":{"qq":"all"}},
                {"type":"text","data":{"text":" 出 "}},
                {"type":"image","data":{"file":"a.jpg","url":"http://x"}},
                {"type":"face","data":{"id":"1"}},
                {"type":"file","data":{"file":"f.bin","name":"客户.csv"}},
                {"type":"file","data":{}},
                {"type":"at"},
                {"type":"text","data":{"text":7,"x":1}},
                3
            ]),
            false,
        );
        assert_eq!(
            plain_text(&segs),
            "[reply][at:all] 出 [image][face][file:客户.csv][file][at]7[_invalid]"
        );
        assert_eq!(plain_text(&[]), "");
    }

    // ---- size: linear time and memory ----

    #[test]
    fn megabyte_of_brackets_and_ampersands_is_linear() {
        let n = 1 << 20;
        let inputs = [
            "[".repeat(n),
            "&".repeat(n),
            "[[&&".repeat(n / 4),
            "[CQ:".repeat(n / 4),
            "[CQ:a,b=".repeat(n / 8),
            "&amp".repeat(n / 4),
            format!("[CQ:a{}", ",b=c".repeat(n / 4)),
            format!("[CQ:a{}]", ",b=c".repeat(n / 4)),
        ];
        for input in &inputs {
            let segs = parse_cq(input);
            assert_eq!(segs.len(), 1);
            assert_eq!(plain_text(&segs).chars().count(), input.chars().count());
            assert_eq!(unescape(input).len(), input.len());
            assert_eq!(parse_cq(&to_cq(&segs)), segs);
        }
        let escaped = "&amp;".repeat(n / 5);
        assert_eq!(plain_text(&parse_cq(&escaped)).len(), n / 5);
        let codes = "[CQ:a]".repeat(n / 6);
        assert_eq!(parse_cq(&codes).len(), n / 6);
        let distinct: String = (0..n / 16).map(|i| format!(",k{i}=v")).collect();
        let one = parse_cq(&format!("[CQ:a{distinct}]"));
        assert_eq!(one[0].data.len(), n / 16);
        let value = format!("[CQ:image,file={}]", "&#44;".repeat(n / 5));
        assert_eq!(parse_cq(&value)[0].get("file").unwrap().len(), n / 5);
    }

    // ---- properties ----

    /// Strings made of the pieces that matter to the parser, so that codes, escapes and
    /// near-misses actually occur, mixed with arbitrary Unicode.
    fn tricky_string() -> impl Strategy<Value = String> {
        let pieces = vec![
            "[",
            "]",
            "&",
            ",",
            "=",
            ";",
            "#",
            "91",
            "93",
            "44",
            "amp",
            "CQ:",
            "[CQ:",
            "[CQ:at",
            "[CQ:text,text=",
            "[CQ:at,qq=",
            ",qq=",
            "[CQ:shake]",
            "[CQ:image,file=a.jpg]",
            "]]",
            "&amp;",
            "&#91;",
            "&#93;",
            "&#44;",
            "a",
            "text",
            "qq",
            " ",
            "中",
            "😀",
            "［",
            "\n",
        ];
        prop_oneof![
            any::<String>(),
            prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|v| v.concat()),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.-]{1,8}",
            Just("text".to_owned()),
            Just("at".to_owned()),
        ]
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            tricky_string().prop_map(|s| Segment::text(&s)),
            (
                name(),
                prop::collection::btree_map(name(), tricky_string().prop_map(Value::String), 0..4)
            )
                .prop_map(|(kind, data)| Segment { kind, data }),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            tricky_string().prop_map(Value::String),
            prop::sample::select(vec![
                "text", "image", "at", "file", "type", "data", "_invalid"
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 96, 6, |inner| {
            let key = prop_oneof![
                Just("type".to_owned()),
                Just("data".to_owned()),
                Just("text".to_owned()),
                Just("qq".to_owned()),
                "[a-z_]{0,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner.clone(), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                (inner.clone(), inner).prop_map(|(t, d)| json!({"type": t, "data": d})),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_cq_never_panics_and_is_stable(s in tricky_string()) {
            let once = parse_cq(&s);
            // Re-printing what was parsed gives back the same segments: nothing was dropped
            // or reinterpreted.
            prop_assert_eq!(parse_cq(&to_cq(&once)), once.clone());
            // Array and string forms agree.
            let array = serde_json::to_value(&once).unwrap();
            prop_assert_eq!(parse_message(&array, false), once.clone());
            let _ = plain_text(&once);
            // Text in which no code was recognised reads back exactly, unescaped.
            if !s.contains("[CQ:text,") && once.iter().all(|seg| seg.kind == "text" && seg.data.len() == 1) {
                prop_assert_eq!(plain_text(&once), unescape(&s));
            }
        }

        #[test]
        fn escapes_round_trip(s in tricky_string()) {
            prop_assert_eq!(unescape(&escape_text(&s)), s.clone());
            prop_assert_eq!(unescape(&escape_param(&s)), s.clone());
            let expected = if s.is_empty() { vec![] } else { vec![Segment::text(&s)] };
            prop_assert_eq!(parse_cq(&escape_text(&s)), expected);
        }

        #[test]
        fn parse_message_never_panics(v in json_value(), raw in any::<bool>()) {
            let segs = parse_message(&v, raw);
            let _ = plain_text(&segs);
            let printed = to_cq(&segs);
            let again = parse_cq(&printed);
            prop_assert_eq!(parse_cq(&to_cq(&again)), again.clone());
            if let Value::Array(items) = &v {
                prop_assert!(segs.len() <= items.len());
            }
            let _ = serde_json::from_value::<Segment>(v.clone());
            let _ = serde_json::from_value::<Vec<Segment>>(v);
        }

        #[test]
        fn segments_round_trip(segs in prop::collection::vec(segment(), 0..8)) {
            prop_assert_eq!(parse_cq(&to_cq(&segs)), normalise(&segs));
        }
    }
}
