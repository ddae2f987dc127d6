//! Redis's glob patterns (`*`, `?`, `[a-z]`, `[^...]`, `\` escapes), for KEYS, SCAN MATCH and
//! pattern subscriptions.
//!
//! Same answers as Redis's `stringmatchlen`, but iterative: on a mismatch it only retries from
//! the most recent `*`, so the work is at most O(pattern x string) whatever the pattern, where
//! a recursive matcher can be driven exponential by patterns like `*a*a*a*a*b`.

/// Whether `string` matches `pattern`.
pub fn matches(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    // Redis quirk kept for compatibility: an empty string matches only the empty pattern
    // (callers special-case a lone "*" as "everything", as Redis does).
    if string.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut s) = (0, 0);
    // Where to resume after the last '*': (pattern index after it, string index it covers to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, s));
            continue;
        }
        if s == string.len() {
            return p == pattern.len();
        }
        if let Some(next_p) = match_one(pattern, p, string[s], nocase) {
            p = next_p;
            s += 1;
            continue;
        }
        match star {
            Some((star_p, star_s)) if star_s < string.len() => {
                star = Some((star_p, star_s + 1));
                p = star_p;
                s = star_s + 1;
            }
            _ => return false,
        }
    }
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches the pattern element at `p` (not a '*') against `c`; returns the index after it.
fn match_one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'[' => match_class(pattern, p + 1, c, nocase),
        b'\\' if p + 1 < pattern.len() => eq(pattern[p + 1], c, nocase).then_some(p + 2),
        literal => eq(literal, c, nocase).then_some(p + 1),
    }
}

/// Matches a class whose body starts at `p`; an unterminated class ends with the pattern.
fn match_class(pattern: &[u8], mut p: usize, c: u8, nocase: bool) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                matched |= pattern[p + 1] == c;
                p += 2;
            }
            Some(&start) if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                let end = pattern[p + 2];
                let (mut lo, mut hi) = (start.min(end), start.max(end));
                let mut ch = c;
                if nocase {
                    lo = lo.to_ascii_lowercase();
                    hi = hi.to_ascii_lowercase();
                    ch = ch.to_ascii_lowercase();
                }
                matched |= (lo..=hi).contains(&ch);
                p += 3;
            }
            Some(&literal) => {
                matched |= eq(literal, c, nocase);
                p += 1;
            }
        }
    }
    (matched != negate).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_semantics() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("user:*", "user:1"));
        assert!(m("[abc", "b"));
        assert!(m("*.txt", "a.b.txt"));
        assert!(m("a**", "a"));
        assert!(!m("*", ""));
        assert!(m("", ""));
        assert!(matches(b"HeLLo", b"hello", true));
        assert!(matches(b"h[A-Z]llo", b"hello", true));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let string = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(100));
        let start = std::time::Instant::now();
        assert!(!matches(pattern.as_bytes(), string.as_bytes(), false));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// CVE-2024-31228's shape: a long run of stars and brackets overflowed Redis's recursive
    /// matcher's stack. This one does not recurse.
    #[test]
    fn deep_patterns_do_not_recurse() {
        let pattern = format!("{}*c", "*a]".repeat(50_000));
        let string = "a]".repeat(200);
        assert!(!matches(pattern.as_bytes(), string.as_bytes(), false));
        let fitting = format!("{}*c", "*a]".repeat(200));
        assert!(matches(
            fitting.as_bytes(),
            format!("{string}c").as_bytes(),
            false
        ));
    }
}
