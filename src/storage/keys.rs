//! Names that reach a Table Storage URL or filter, parsed once: table names, partition and row keys,
//! property names, and `$filter` expressions built from those (string literals quoted per OData).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("table name {0:?}: 3-63 letters and digits, starting with a letter, not \"tables\"")]
    TableName(String),
    #[error(
        "key {0:?}: 1-512 characters of A-Z, a-z, 0-9 and - _ . : | ~ (keys travel in URLs, so nothing needs escaping)"
    )]
    Key(String),
    #[error("property name {0:?}: a letter or _ then up to 254 letters, digits or _")]
    Property(String),
}

/// A table name (Table service rules: `^[A-Za-z][A-Za-z0-9]{2,62}$`, `tables` reserved).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        let ok = (3..=63).contains(&input.len())
            && input.starts_with(|c: char| c.is_ascii_alphabetic())
            && input.chars().all(|c| c.is_ascii_alphanumeric())
            && !input.eq_ignore_ascii_case("tables");
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(KeyError::TableName(input.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableName({})", self.0)
    }
}

/// A PartitionKey or RowKey. The service allows more (up to 1 KiB, anything but `/ \ # ?` and control
/// characters), but these characters need no escaping in a path, a query or an OData literal, so a key
/// means the same to Azure, Azurite and the signature.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableKey(String);

impl TableKey {
    pub const MAX_LEN: usize = 512;

    pub fn parse(input: &str) -> Result<Self, KeyError> {
        let ok = (1..=Self::MAX_LEN).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'|' | b'~'));
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(KeyError::Key(input.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableKey({})", self.0)
    }
}

fn property(name: &str) -> Result<&str, KeyError> {
    let ok = (1..=255).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(KeyError::Property(name.to_owned()))
    }
}

/// An OData string literal: single quotes doubled ("Querying tables and entities").
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A `$filter` expression, built only from parsed keys, checked property names and quoted literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter(String);

impl Filter {
    /// `PartitionKey eq '<pk>'`.
    pub fn partition(pk: &TableKey) -> Self {
        Self(format!("PartitionKey eq {}", literal(pk.as_str())))
    }
    /// `… and RowKey ge '<from>' and RowKey lt '<to>'`.
    pub fn rows_between(self, from: &TableKey, to: &TableKey) -> Self {
        self.rows_in(from.as_str(), to.as_str())
    }
    /// Rows whose RowKey starts with `prefix`: from the prefix up to (excluding) the prefix with its
    /// last character incremented (`m|` → `m}`; the bound itself need not be a valid key).
    pub fn row_prefix(self, prefix: &TableKey) -> Self {
        let mut end = prefix.as_str().to_owned();
        let last = end.pop().unwrap_or('-');
        end.push(char::from_u32(last as u32 + 1).unwrap_or('\u{7f}'));
        self.rows_in(prefix.as_str(), &end)
    }
    fn rows_in(self, from: &str, to: &str) -> Self {
        Self(format!(
            "{} and RowKey ge {} and RowKey lt {}",
            self.0,
            literal(from),
            literal(to)
        ))
    }
    /// `… and RowKey gt '<after>'` (resume after the last row seen).
    pub fn rows_after(self, after: &TableKey) -> Self {
        Self(format!("{} and RowKey gt {}", self.0, literal(after.as_str())))
    }
    /// `… and RowKey lt '<bound>'` (the bound need not be a valid key: it is only compared).
    pub fn and_row_key_lt(self, bound: &str) -> Result<Self, KeyError> {
        Ok(Self(format!("{} and RowKey lt {}", self.0, literal(bound))))
    }
    /// `… and <property> eq '<value>'` for a string property.
    pub fn and_eq(self, name: &str, value: &str) -> Result<Self, KeyError> {
        Ok(Self(format!(
            "{} and {} eq {}",
            self.0,
            property(name)?,
            literal(value)
        )))
    }
    /// `… and <property> lt '<value>'` for a string property.
    pub fn and_lt(self, name: &str, value: &str) -> Result<Self, KeyError> {
        Ok(Self(format!(
            "{} and {} lt {}",
            self.0,
            property(name)?,
            literal(value)
        )))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a property name of an entity about to be written.
pub(super) fn check_property(name: &str) -> Result<(), KeyError> {
    property(name).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_service_rules() {
        assert!(TableName::parse("reprocessoperations").is_ok());
        for bad in ["ab", "1abc", "has-dash", "tables", "Tables", &"a".repeat(64)] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_refuse_what_would_need_escaping() {
        assert!(TableKey::parse("r|0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10").is_ok());
        for bad in [
            "",
            "a/b",
            "a'b",
            "a b",
            "a?b",
            "a#b",
            "a\\b",
            "é",
            "a\u{1}",
            &"a".repeat(513),
        ] {
            assert!(TableKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_quote_literals_and_check_names() {
        let pk = TableKey::parse("op-1").unwrap();
        let f = Filter::partition(&pk)
            .row_prefix(&TableKey::parse("m|").unwrap())
            .and_eq("state", "it's")
            .unwrap();
        assert_eq!(
            f.as_str(),
            "PartitionKey eq 'op-1' and RowKey ge 'm|' and RowKey lt 'm}' and state eq 'it''s'"
        );
        assert!(Filter::partition(&pk).and_eq("x eq 1 or y", "v").is_err());
    }
}
