//! The schema: its name, its versions and their migrations, and the
//! statements the store runs, one file each in `sql/`, written for the
//! configured schema.

use tokio_postgres::{error::SqlState, Client};

use super::{errors::store_error, StoreError};

/// The schema version this version of the crate writes.
pub(super) const SCHEMA_VERSION: i32 = 1;

/// Every migration, in order: version, what it does, its SQL. A new
/// version of the schema is a new file added here, never an edit of an
/// older one.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "the notifications and their bodies",
    include_str!("sql/migrate_1.sql"),
)];

/// The schema itself and the table of the migrations applied to it.
const MIGRATIONS_TABLE: &str = include_str!("sql/migrations.sql");

/// The longest schema name: the notification channel `<schema>.inbox` must
/// fit in Postgres's 63 bytes.
pub(super) const MAX_SCHEMA_LEN: usize = 57;

/// The advisory lock's first key, the second being the schema name's
/// hash: migrations of one schema wait for each other, other schemas'
/// go on.
const MIGRATION_LOCK: i32 = 0x7469_6e62;

/// Checks that `name` is a plain lower-case identifier (`[a-z_][a-z0-9_]*`,
/// at most [`MAX_SCHEMA_LEN`] bytes, not `pg_…`), so that it means the same
/// quoted or not, and can be written into statements as it is.
pub(super) fn validate_schema(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SCHEMA_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StoreError::unavailable(format!(
            "the inbox's Postgres schema name must be 1 to {MAX_SCHEMA_LEN} lower-case \
             letters, digits and underscores, not starting with a digit or pg_: {:?}",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The notification channel of the schema's inbox.
pub(super) fn channel(schema: &str) -> String {
    format!("{schema}.inbox")
}

/// The statements, written for one schema.
pub(super) struct Statements {
    pub(super) insert: String,
    pub(super) claim: String,
    pub(super) hand_back: String,
    pub(super) complete: String,
    pub(super) fail: String,
    pub(super) release: String,
    pub(super) requeue: String,
    pub(super) counts: String,
    pub(super) dead_page: String,
    pub(super) prune: String,
}

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
        let write = |sql: &str| in_schema(sql, schema);
        Self {
            insert: write(include_str!("sql/insert.sql")),
            claim: write(include_str!("sql/claim.sql")),
            hand_back: write(include_str!("sql/hand_back.sql")),
            complete: write(include_str!("sql/complete.sql")),
            fail: write(include_str!("sql/fail.sql")),
            release: write(include_str!("sql/release.sql")),
            requeue: write(include_str!("sql/requeue.sql")),
            counts: write(include_str!("sql/counts.sql")),
            dead_page: write(include_str!("sql/dead_page.sql")),
            prune: write(include_str!("sql/prune.sql")),
        }
    }

    /// Each statement with its name.
    #[cfg(test)]
    fn all(&self) -> [(&'static str, &str); 10] {
        [
            ("insert", &self.insert),
            ("claim", &self.claim),
            ("hand_back", &self.hand_back),
            ("complete", &self.complete),
            ("fail", &self.fail),
            ("release", &self.release),
            ("requeue", &self.requeue),
            ("counts", &self.counts),
            ("dead_page", &self.dead_page),
            ("prune", &self.prune),
        ]
    }
}

/// `sql` with `{schema}` replaced by the (validated) schema name, quoted.
fn in_schema(sql: &str, schema: &str) -> String {
    sql.replace("{schema}", &format!("\"{schema}\""))
}

/// Brings the schema to [`SCHEMA_VERSION`]. A schema already there is only
/// read (a role with no right to create tables opens it); otherwise the
/// missing migrations run in one transaction holding an advisory lock, so
/// that receivers starting at once migrate one after the other, and the
/// later ones find the work done.
pub(super) async fn migrate(
    client: &mut Client,
    schema: &str,
    timeout: std::time::Duration,
) -> Result<(), StoreError> {
    let error = |error: tokio_postgres::Error| store_error(&error, timeout);
    if check_version(current_version(client, schema).await.map_err(error)?)? {
        return Ok(());
    }
    let transaction = client.transaction().await.map_err(error)?;
    // The connection's statement_timeout is for inserts and claims: the
    // migration (and the wait for another's) gets the whole timeout.
    transaction
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            timeout.as_millis()
        ))
        .await
        .map_err(error)?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&MIGRATION_LOCK, &schema],
        )
        .await
        .map_err(error)?;
    transaction
        .batch_execute(&in_schema(MIGRATIONS_TABLE, schema))
        .await
        .map_err(error)?;
    let version = current_version(&transaction, schema).await.map_err(error)?;
    if !check_version(version)? {
        let applied = version.unwrap_or(0);
        for (version, description, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > applied) {
            transaction
                .batch_execute(&in_schema(sql, schema))
                .await
                .map_err(error)?;
            transaction
                .execute(
                    &in_schema(
                        "INSERT INTO {schema}.inbox_migrations (version, description) \
                         VALUES ($1, $2)",
                        schema,
                    ),
                    &[version, description],
                )
                .await
                .map_err(error)?;
        }
    }
    transaction.commit().await.map_err(error)
}

/// Whether the schema is at this crate's version; an error when it is newer.
fn check_version(version: Option<i32>) -> Result<bool, StoreError> {
    match version {
        Some(version) if version > SCHEMA_VERSION => Err(StoreError::unavailable(format!(
            "the inbox's Postgres schema has version {version}, newer than this version of \
             tower-intercom knows ({SCHEMA_VERSION})"
        ))),
        Some(version) => Ok(version == SCHEMA_VERSION),
        None => Ok(false),
    }
}

/// The last migration applied; `None` when there is none (no schema yet).
async fn current_version(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
) -> Result<Option<i32>, tokio_postgres::Error> {
    let sql = in_schema("SELECT max(version) FROM {schema}.inbox_migrations", schema);
    match client.query_one(&sql, &[]).await {
        Ok(row) => row.try_get(0),
        Err(error)
            if error.code() == Some(&SqlState::UNDEFINED_TABLE)
                || error.code() == Some(&SqlState::INVALID_SCHEMA_NAME) =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["tower_intercom", "_x", "a1", &"a".repeat(MAX_SCHEMA_LEN)] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1a",
            "Upper",
            "with space",
            "quote\"d",
            "semi;colon",
            "pg_catalog",
            "dash-ed",
            "é",
            &"a".repeat(MAX_SCHEMA_LEN + 1),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_statement_names_the_schema_and_only_it() {
        let statements = Statements::new("my_app");
        for (name, sql) in statements.all() {
            assert!(sql.contains("\"my_app\".inbox"), "{name}");
            assert!(!sql.contains("{schema}"), "{name}");
        }
        for (_, _, sql) in MIGRATIONS {
            assert!(!in_schema(sql, "s").contains("{schema}"));
        }
    }
}
