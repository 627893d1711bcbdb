//! SQLite's single writer, with group commit.
//!
//! SQLite lets one connection write at a time. With writes spread over a pool, every
//! connection that finds the write lock taken sleeps in SQLite's busy handler (1, 2, 5,
//! 10 … ms) and tries again, and every commit waits for its own `fsync`. Here one thread
//! runs every write: it takes the writes queued while the last commit was on disk, runs
//! them one after another inside one `BEGIN IMMEDIATE` transaction, commits once, and
//! only then answers each caller. Nobody sleeps on a lock, one `fsync` covers the whole
//! group, and durability is unchanged: no caller hears "done" before its write is on
//! disk.
//!
//! The thread has two connections to the file and uses one at a time. The hot writes
//! (a login's session, a first login's user, a new wallet) run on its own rusqlite
//! connection, in the thread itself: a group of them is a run of SQLite calls with no
//! hand-off between threads. The other writes run on a sqlx connection, which hands
//! every statement to its own worker thread and back; on a busy machine each such round
//! trip waited hundreds of microseconds for a core (a probe under the login benchmark:
//! `BEGIN` 0.69 ms, 77 µs per write, the commit 1.3 ms, for groups of eight). A group
//! holding both kinds commits the rusqlite writes, then the sqlx ones: still one
//! transaction at a time.
//!
//! Each write is as atomic as it was alone. One statement is by itself (SQLite undoes a
//! failed statement, not its transaction). A write of several statements is all or
//! nothing without a savepoint of its own: the group runs them plainly, and if one such
//! write fails, the writer rolls the whole group back and runs it again with a savepoint
//! around each of them, so the failed write leaves nothing and the others are done as if
//! alone. Failures are rare (a lost race for a unique row), so the usual group saves two
//! statements per write. If the group's commit fails, every write in it reports the
//! failure.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::error::DbResultExt;
use crate::positional::positional;

/// The most writes one commit covers (bounds how long a caller waits behind others).
const MAX_GROUP: usize = 256;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a queued write on the sqlx connection, keeping its result for the answer; true
/// if it succeeded. Runs again if its group is rolled back and redone.
type Run = Box<dyn for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, bool> + Send>;

/// The same on the thread's rusqlite connection.
type RunDirect = Box<dyn FnMut(&rusqlite::Connection) -> bool + Send>;

/// Sends the caller the kept result, once the group is on disk (or the group's error
/// instead: it could not start, or its commit failed).
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Whether a write can fail halfway and so needs undoing on its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statements {
    /// One statement, or several that manage their own transaction (a savepoint here).
    One,
    /// Several statements, all or nothing: undone by redoing the group (module docs).
    Several,
}

struct Job<R> {
    run: R,
    answer: Answer,
    statements: Statements,
}

enum Message {
    Write(Job<Run>),
    WriteDirect(Job<RunDirect>),
    Stop(oneshot::Sender<()>),
}

/// The handle every clone of the store shares.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Message>,
}

impl Writer {
    /// Opens the writer's two connections to the database file at `path` and starts its
    /// thread.
    pub(crate) async fn start(
        options: SqliteConnectOptions,
        path: &Path,
        busy_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let connection = options.connect().await.db()?;
        let direct = open_direct(path, busy_timeout)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("starting the database writer: {e}")))?;
        let (queue, inbox) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || runtime.block_on(run(direct, connection, inbox)))
            .map_err(|e| StoreError::Database(format!("starting the database writer: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `write` on the writer's sqlx connection inside the current group; answers
    /// once the group is committed. `write` owns what it uses (it runs on the writer's
    /// thread) and may run twice (when its group is redone): each run starts from the
    /// same database.
    pub(crate) async fn write<T, F>(
        &self,
        statements: Statements,
        mut write: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (result, answer, answered) = outcome::<T>();
        let run: Run = Box::new(move |connection| {
            let future = write(connection);
            let result = result.clone();
            Box::pin(async move { keep(&result, future.await) })
        });
        let job = Job {
            run,
            answer,
            statements,
        };
        self.send(Message::Write(job), answered).await
    }

    /// [`Writer::write`] on the writer's rusqlite connection, in the writer's thread.
    pub(crate) async fn write_direct<T, F>(
        &self,
        statements: Statements,
        mut write: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (result, answer, answered) = outcome::<T>();
        let run: RunDirect = Box::new(move |connection| keep(&result, write(connection)));
        let job = Job {
            run,
            answer,
            statements,
        };
        self.send(Message::WriteDirect(job), answered).await
    }

    async fn send<T>(
        &self,
        message: Message,
        answered: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.queue.send(message).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Finishes the queued writes and closes the connections.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

type Kept<T> = Arc<Mutex<Option<Result<T, StoreError>>>>;

/// Keeps a run's result for its answer (a redone run replaces it); true if it succeeded.
fn keep<T>(kept: &Kept<T>, outcome: Result<T, StoreError>) -> bool {
    let ok = outcome.is_ok();
    *lock(kept) = Some(outcome);
    ok
}

/// Where a write's run keeps its result, the answer that reports it once its group is
/// done, and the caller's end of that answer.
fn outcome<T: Send + 'static>() -> (Kept<T>, Answer, oneshot::Receiver<Result<T, StoreError>>) {
    let (reply, answered) = oneshot::channel();
    let result: Kept<T> = Arc::new(Mutex::new(None));
    let kept = result.clone();
    let answer: Answer = Box::new(move |group: Result<(), StoreError>| {
        // A write that failed keeps its own error; one that ran is only as good as the
        // commit that carries it; one that never ran gets the group's error.
        let outcome = match lock(&kept).take() {
            Some(outcome) => outcome.and_then(|value| group.map(|()| value)),
            None => Err(group.err().unwrap_or_else(stopped)),
        };
        let _ = reply.send(outcome);
    });
    (result, answer, answered)
}

/// The writer's rusqlite connection, set up as sqlx sets up its own (`connect_sqlite`):
/// foreign keys on, the same busy timeout; `synchronous` FULL, so a commit is on disk
/// before anyone hears of it. The file is in WAL mode already (the pool made it so).
fn open_direct(
    path: &Path,
    busy_timeout: std::time::Duration,
) -> Result<rusqlite::Connection, StoreError> {
    let open = || {
        let connection = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(busy_timeout)?;
        connection.pragma_update(None, "foreign_keys", true)?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        Ok(connection)
    };
    open().map_err(crate::error::from_rusqlite)
}

/// Runs one statement on the writer's rusqlite connection (prepared once, then kept);
/// returns the rows it changed.
pub(crate) fn execute(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    connection
        .prepare_cached(&positional(sql))
        .and_then(|mut statement| statement.execute(params))
        .map_err(crate::error::from_rusqlite)
}

/// The first column of the one row `sql` returns, on the writer's rusqlite connection.
pub(crate) fn query_one<T: rusqlite::types::FromSql>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<T, StoreError> {
    connection
        .prepare_cached(&positional(sql))
        .and_then(|mut statement| statement.query_row(params, |row| row.get(0)))
        .map_err(crate::error::from_rusqlite)
}

fn stopped() -> StoreError {
    StoreError::Database("the database writer has stopped".into())
}

async fn run(
    direct: rusqlite::Connection,
    mut connection: SqliteConnection,
    mut inbox: mpsc::UnboundedReceiver<Message>,
) {
    let mut stop = None;
    while stop.is_none() {
        let Some(first) = inbox.recv().await else {
            break;
        };
        let mut group = Vec::new();
        let mut direct_group = Vec::new();
        let mut take = |message| match message {
            Message::Write(job) => group.push(job),
            Message::WriteDirect(job) => direct_group.push(job),
            Message::Stop(done) => stop = Some(done),
        };
        take(first);
        let mut taken = 1;
        while taken < MAX_GROUP {
            match inbox.try_recv() {
                Ok(message) => take(message),
                Err(_) => break,
            }
            taken += 1;
        }
        if !direct_group.is_empty() {
            let committed = run_direct_group(&direct, &mut direct_group);
            answer_all(direct_group, committed);
        }
        if !group.is_empty() {
            let committed = run_group(&mut connection, &mut group).await;
            answer_all(group, committed);
        }
    }
    let _ = connection.close().await;
    drop(direct);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers every write in a group. If the group could not start (another process held
/// the write lock past the busy timeout) or its commit failed, every write in it fails
/// with that error.
fn answer_all<R>(group: Vec<Job<R>>, committed: Result<(), StoreError>) {
    if let Err(error) = &committed {
        tracing::warn!(%error, writes = group.len(), "a group of writes failed");
    }
    for job in group {
        (job.answer)(committed.clone());
    }
}

/// Runs the group's writes inside `BEGIN IMMEDIATE` and commits them.
async fn run_group(
    connection: &mut SqliteConnection,
    group: &mut [Job<Run>],
) -> Result<(), StoreError> {
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await.db()?;
    let mut redo = false;
    for job in group.iter_mut() {
        if !(job.run)(&mut transaction).await && job.statements == Statements::Several {
            redo = true;
            break;
        }
    }
    if !redo {
        return transaction.commit().await.db();
    }
    // A write of several statements failed halfway: start again, each such write under
    // a savepoint it can be rolled back to alone.
    transaction.rollback().await.db()?;
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await.db()?;
    for job in group.iter_mut() {
        if job.statements == Statements::One {
            (job.run)(&mut transaction).await;
            continue;
        }
        let mut savepoint = transaction.begin().await.db()?;
        if (job.run)(&mut savepoint).await {
            savepoint.commit().await.db()?;
        } else {
            savepoint.rollback().await.db()?;
        }
    }
    transaction.commit().await.db()
}

/// [`run_group`] on the rusqlite connection. A transaction left open by an error here is
/// rolled back before the group reports it, so the next group starts clean.
fn run_direct_group(
    connection: &rusqlite::Connection,
    group: &mut [Job<RunDirect>],
) -> Result<(), StoreError> {
    let result = run_direct_group_once(connection, group);
    if result.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    result
}

fn run_direct_group_once(
    connection: &rusqlite::Connection,
    group: &mut [Job<RunDirect>],
) -> Result<(), StoreError> {
    let sql = |statement: &str| {
        connection
            .execute_batch(statement)
            .map_err(crate::error::from_rusqlite)
    };
    sql("BEGIN IMMEDIATE")?;
    let redo = group
        .iter_mut()
        .any(|job| !(job.run)(connection) && job.statements == Statements::Several);
    if !redo {
        return sql("COMMIT");
    }
    // As in `run_group`.
    sql("ROLLBACK")?;
    sql("BEGIN IMMEDIATE")?;
    for job in group.iter_mut() {
        if job.statements == Statements::One {
            (job.run)(connection);
            continue;
        }
        sql("SAVEPOINT write")?;
        if (job.run)(connection) {
            sql("RELEASE write")?;
        } else {
            sql("ROLLBACK TO write")?;
            sql("RELEASE write")?;
        }
    }
    sql("COMMIT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::time::Duration;

    const BUSY: Duration = Duration::from_millis(50);

    fn insert(id: &'static str) -> impl FnMut(&rusqlite::Connection) -> Result<(), StoreError> {
        move |sqlite| execute(sqlite, "INSERT INTO t (id) VALUES ($1)", [id]).map(|_| ())
    }

    /// A group that cannot start (another connection holds the write lock past the busy
    /// timeout) fails as a whole and leaves the writer's connection out of any
    /// transaction: the next writes, of both kinds, go through; a taken key is `Conflict`.
    #[tokio::test]
    async fn a_group_that_cannot_start_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id TEXT PRIMARY KEY);")
            .unwrap();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .busy_timeout(BUSY);
        let writer = Writer::start(options, &path, BUSY).await.unwrap();

        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let refused = writer.write_direct(Statements::One, insert("a")).await;
        assert!(
            matches!(&refused, Err(StoreError::Database(m)) if m.contains("locked")),
            "{refused:?}"
        );
        other.execute_batch("COMMIT").unwrap();

        writer
            .write_direct(Statements::One, insert("b"))
            .await
            .unwrap();
        let again = writer.write_direct(Statements::One, insert("b")).await;
        assert_eq!(again, Err(StoreError::Conflict));
        writer
            .write(Statements::One, |sqlite| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id) VALUES ('c')")
                        .execute(sqlite)
                        .await
                        .map(|_| ())
                        .db()
                })
            })
            .await
            .unwrap();
        writer.stop().await;

        let ids: Vec<String> = other
            .prepare("SELECT id FROM t ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["b", "c"]);
    }
}
