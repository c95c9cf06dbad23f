//! Text that reaches a generated file (kickstarts, preseeds, xl configs, GRUB and network files):
//! the characters none of them can carry as the admin meant, refused in one place, the reader, so
//! no key of any file is left out.
//!
//! Every control character (C0, DEL, C1) and the Unicode line and paragraph separators are
//! refused; multi-line text (a script) may hold tabs and newlines. A carriage return is refused
//! too, even as part of `\r\n`: pykickstart would take a lone one as a line break, and in the
//! shell that runs the script every `\r\n` line would end its command with a stray `\r`.

/// Whether a value may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

/// Where Python's `str.splitlines()` breaks lines, as pykickstart reads a kickstart.
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

fn describe(c: char) -> String {
    let name = match c {
        '\0' => "a NUL",
        '\t' => "a tab",
        '\n' => "a newline",
        '\r' => "a carriage return",
        c if is_line_break(c) => "a line break",
        _ => "a control character",
    };
    format!("{name} (U+{:04X})", u32::from(c))
}

/// Refuses the characters that no generated file carries safely; see the module's comment.
pub fn check(s: &str, lines: Lines) -> Result<(), String> {
    let mut line = 1;
    for c in s.chars() {
        match (c, lines) {
            ('\n', Lines::Many) => line += 1,
            ('\t', Lines::Many) => {}
            (c, _) if c.is_control() || is_line_break(c) => {
                return Err(match lines {
                    Lines::One => format!(
                        "holds {}; a value here is one line of printable text",
                        describe(c)
                    ),
                    Lines::Many => format!(
                        "holds {} on line {line}; a script may hold tabs and newlines (\\n) but no other control character or line break{}",
                        describe(c),
                        if c == '\r' {
                            " (save it with Unix line ends)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_printable_text() {
        assert!(check("xen1 — 東京", Lines::One).is_ok());
        for bad in [
            "a\0b",
            "a\tb",
            "a\nb",
            "a\rb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{2028}b",
        ] {
            assert!(check(bad, Lines::One).is_err(), "{bad:?}");
        }
        assert_eq!(
            check("a\0", Lines::One).unwrap_err(),
            "holds a NUL (U+0000); a value here is one line of printable text"
        );
    }

    #[test]
    fn scripts_keep_tabs_and_newlines_only() {
        assert!(check("#!/bin/sh\n\techo hi\n", Lines::Many).is_ok());
        for sep in [
            "\r", "\r\n", "\u{0b}", "\u{0c}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{85}", "\u{2028}",
            "\u{2029}",
        ] {
            let s = format!("true\n{sep}%end\n");
            let e = check(&s, Lines::Many).unwrap_err();
            assert!(e.contains("on line 2"), "{sep:?}: {e}");
            assert!(
                s.split(is_line_break).any(|l| l.starts_with('%')),
                "{sep:?}"
            );
        }
        let e = check("echo hi\r\n", Lines::Many).unwrap_err();
        assert!(
            e.contains("carriage return (U+000D) on line 1")
                && e.ends_with("(save it with Unix line ends)"),
            "{e}"
        );
        assert!(
            check("a\0", Lines::Many)
                .unwrap_err()
                .contains("a NUL (U+0000)")
        );
    }
}
