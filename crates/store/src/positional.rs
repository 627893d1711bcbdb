//! The store's SQL numbers its parameters `$1`, `$2`, … for both databases. SQLite reads
//! `$2` as a parameter *named* "$2" and numbers named parameters by first appearance, so
//! `SET updated_at = $2 WHERE id = $1` would bind the first value to `updated_at`. sqlx
//! reads the digits; for rusqlite, which binds by position, the statements are given
//! SQLite's own numbered form, `?2`, which means what it says.

use std::borrow::Cow;

/// `sql` with every `$` that starts a parameter number written as `?`.
pub(crate) fn positional(sql: &str) -> Cow<'_, str> {
    let bytes = sql.as_bytes();
    let numbered = |i: usize| bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
    if !(0..bytes.len()).any(numbered) {
        return Cow::Borrowed(sql);
    }
    // Byte for byte: one ASCII byte for another keeps the text UTF-8 (collecting `char`s
    // cost a few thousand instructions a statement).
    let mut rewritten = bytes.to_vec();
    for (i, byte) in rewritten.iter_mut().enumerate() {
        if numbered(i) {
            *byte = b'?';
        }
    }
    Cow::Owned(String::from_utf8(rewritten).expect("an ASCII byte replaced by another"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_sqlites_numbered_form() {
        assert_eq!(
            positional("UPDATE t SET at = $2 WHERE id = $1 AND n = $12"),
            "UPDATE t SET at = ?2 WHERE id = ?1 AND n = ?12"
        );
        assert!(matches!(positional("SELECT 1"), Cow::Borrowed(_)));
        assert_eq!(
            positional("SELECT 'né $' FROM t WHERE name = $1 || 'ü'"),
            "SELECT 'né $' FROM t WHERE name = ?1 || 'ü'"
        );
        assert_eq!(
            positional("SELECT '$' || x, $ FROM t"),
            "SELECT '$' || x, $ FROM t"
        );
    }

    /// The reason for it: bound by position, `$2` before `$1` swaps the values.
    #[test]
    fn out_of_order_parameters_bind_by_their_numbers() {
        let sqlite = rusqlite::Connection::open_in_memory().unwrap();
        sqlite
            .execute_batch("CREATE TABLE t (id TEXT, at INTEGER)")
            .unwrap();
        let sql = "INSERT INTO t (at, id) VALUES ($2, $1)";
        sqlite
            .execute(&positional(sql), rusqlite::params!["a", 7])
            .unwrap();
        sqlite.execute(sql, rusqlite::params!["b", 8]).unwrap();
        let a: i64 = sqlite
            .query_row("SELECT at FROM t WHERE id = 'a'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(a, 7);
        // Unconverted, the values trade places: id 8, at "b".
        let swapped: String = sqlite
            .query_row("SELECT at FROM t WHERE id = '8'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(swapped, "b");
    }
}
