//! The statements the store runs, one file each in `sql/`.

// The statements. Those that select by state name their partial index
// (`INDEXED BY`): a plan that walks every pending row would make each
// claim cost grow with the backlog, and SQLite refuses to run a statement
// whose named index cannot serve it rather than fall back to such a plan.
// The test `every_statement_reads_through_an_index` checks the plans.

/// Stores a notification unless its id is there already (its body then
/// goes in with [`INSERT_BODY`]).
pub(super) const INSERT: &str = include_str!("sql/insert.sql");

/// The body of the notification [`INSERT`] stored.
pub(super) const INSERT_BODY: &str = include_str!("sql/insert_body.sql");

/// A notification's body.
pub(super) const BODY: &str = include_str!("sql/body.sql");

/// Drops a notification's body.
pub(super) const DELETE_BODY: &str = include_str!("sql/delete_body.sql");

/// Ends the attempts whose lease lapsed: pending again, or dead after the
/// last attempt.
pub(super) const SWEEP_LAPSED: &str = include_str!("sql/sweep_lapsed.sql");

/// Leases the oldest due notifications.
pub(super) const CLAIM: &str = include_str!("sql/claim.sql");

/// When the next notification becomes due (a retry or a lapsing lease).
pub(super) const NEXT_DUE: &str = include_str!("sql/next_due.sql");

/// Marks a leased notification done (its body is dropped with
/// [`DELETE_BODY`]; the id stays, for deduplication).
pub(super) const COMPLETE: &str = include_str!("sql/complete.sql");

/// Records a failed attempt: pending again at the retry time, or dead.
pub(super) const FAIL: &str = include_str!("sql/fail.sql");

/// Hands a leased notification back without using up its attempt.
pub(super) const RELEASE: &str = include_str!("sql/release.sql");

/// The four counts, each read from its state's partial index, and the
/// earliest due time of a pending notification (the first entry of the
/// pending index).
pub(super) const COUNTS: &str = include_str!("sql/counts.sql");

/// One page of dead notifications, after a cursor.
pub(super) const DEAD_PAGE: &str = include_str!("sql/dead_page.sql");

/// Makes a dead notification pending again, with fresh attempts.
pub(super) const REQUEUE: &str = include_str!("sql/requeue.sql");

/// Deletes a chunk of done notifications older than the retention.
pub(super) const PRUNE: &str = include_str!("sql/prune.sql");

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inbox::sqlite::schema::{migrate, open_connection};

    /// Every statement finds its rows through an index, never by walking
    /// the table or sorting what it found: the cost of a claim must not
    /// grow with the number of notifications waiting.
    #[test]
    fn every_statement_reads_through_an_index() {
        let dir = std::env::temp_dir().join(format!(
            "tower-intercom-plans-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let connection = open_connection(&dir.join("inbox.sqlite3"), Duration::ZERO, false)
            .expect("a connection");
        migrate(&connection).expect("the schema");
        let statements = [
            ("INSERT", INSERT),
            ("INSERT_BODY", INSERT_BODY),
            ("BODY", BODY),
            ("DELETE_BODY", DELETE_BODY),
            ("SWEEP_LAPSED", SWEEP_LAPSED),
            ("CLAIM", CLAIM),
            ("NEXT_DUE", NEXT_DUE),
            ("COMPLETE", COMPLETE),
            ("FAIL", FAIL),
            ("RELEASE", RELEASE),
            ("COUNTS", COUNTS),
            ("DEAD_PAGE", DEAD_PAGE),
            ("REQUEUE", REQUEUE),
            ("PRUNE", PRUNE),
        ];
        for (name, sql) in statements {
            let mut plan = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            // Parameters left unbound: the plan does not depend on them.
            let mut rows = plan.raw_query();
            let mut steps = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get::<_, String>(3).unwrap());
            }
            for step in &steps {
                let reads_table = step.contains("intercom_inbox")
                    && (step.starts_with("SCAN") || step.starts_with("SEARCH"));
                if reads_table {
                    let partial_scan = step.starts_with("SCAN")
                        && ["_ready", "_leased", "_done", "_dead"]
                            .iter()
                            .any(|index| step.contains(&format!("INDEX intercom_inbox{index}")));
                    assert!(
                        step.starts_with("SEARCH") && step.contains("USING") || partial_scan,
                        "{name} reads the table without an index: {steps:?}"
                    );
                    assert!(!step.contains("intercom_inbox_state"), "{name}: {steps:?}");
                }
                assert!(!step.contains("TEMP B-TREE"), "{name} sorts: {steps:?}");
            }
        }
        drop(connection);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
