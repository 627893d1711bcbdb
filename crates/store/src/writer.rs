//! SQLite's single writer, with group commit.
//!
//! SQLite lets one connection write at a time. With writes spread over a pool, every
//! connection that finds the write lock taken sleeps in SQLite's busy handler (1, 2, 5,
//! 10 … ms) and tries again, and every commit waits for its own `fsync`. Here one task
//! owns one connection and runs every write: it takes the writes queued while the last
//! commit was on disk, runs them one after another inside one `BEGIN IMMEDIATE`
//! transaction, commits once, and only then answers each caller. Nobody sleeps on a lock,
//! one `fsync` covers the whole group, and durability is unchanged: no caller hears
//! "done" before its write is on disk.
//!
//! Each write is as atomic as it was alone. One statement is by itself (SQLite undoes a
//! failed statement, not its transaction). A write of several statements is all or
//! nothing without a savepoint of its own: the group runs them plainly, and if one such
//! write fails, the writer rolls the whole group back and runs it again with a savepoint
//! around each of them, so the failed write leaves nothing and the others are done as if
//! alone. Failures are rare (a lost race for a unique row), so the usual group saves two
//! round trips to the connection's worker thread per write. If the group's commit fails,
//! every write in it reports the failure.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::error::DbResultExt;

/// The most writes one commit covers (bounds how long a caller waits behind others).
const MAX_GROUP: usize = 256;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a queued write, keeping its result for the answer; true if it succeeded. Runs
/// again if its group is rolled back and redone.
type Run = Box<dyn for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, bool> + Send>;

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

struct Job {
    run: Run,
    answer: Answer,
    statements: Statements,
}

enum Message {
    Write(Job),
    Stop(oneshot::Sender<()>),
}

/// The handle every clone of the store shares.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Message>,
}

impl Writer {
    /// Opens the writer's own connection and starts its task.
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let connection = options.connect().await.db()?;
        let (queue, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, inbox));
        Ok(Self { queue })
    }

    /// Runs `write` on the writer's connection inside the current group; answers once the
    /// group is committed. `write` owns what it uses (it runs on the writer's task) and
    /// may run twice (when its group is redone): each run starts from the same database.
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
        let (reply, answer) = oneshot::channel();
        let result = Arc::new(Mutex::new(None::<Result<T, StoreError>>));
        let kept = result.clone();
        let job = Job {
            run: Box::new(move |connection| {
                let future = write(connection);
                let result = result.clone();
                Box::pin(async move {
                    let outcome = future.await;
                    let ok = outcome.is_ok();
                    *lock(&result) = Some(outcome);
                    ok
                })
            }),
            answer: Box::new(move |group: Result<(), StoreError>| {
                // A write that failed keeps its own error; one that ran is only as good as
                // the commit that carries it; one that never ran gets the group's error.
                let outcome = match lock(&kept).take() {
                    Some(outcome) => outcome.and_then(|value| group.map(|()| value)),
                    None => Err(group.err().unwrap_or_else(stopped)),
                };
                let _ = reply.send(outcome);
            }),
            statements,
        };
        self.queue
            .send(Message::Write(job))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Finishes the queued writes and closes the connection.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the database writer has stopped".into())
}

async fn run(mut connection: SqliteConnection, mut inbox: mpsc::UnboundedReceiver<Message>) {
    let mut stop = None;
    while stop.is_none() {
        let Some(first) = inbox.recv().await else {
            break;
        };
        let mut group = Vec::new();
        match first {
            Message::Write(job) => group.push(job),
            Message::Stop(done) => stop = Some(done),
        }
        while stop.is_none() && group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(Message::Write(job)) => group.push(job),
                Ok(Message::Stop(done)) => stop = Some(done),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            commit_group(&mut connection, group).await;
        }
    }
    let _ = connection.close().await;
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one group in one transaction and answers every write in it. If the group cannot
/// start (another process held the write lock past the busy timeout), every write in it
/// fails with that error.
async fn commit_group(connection: &mut SqliteConnection, mut group: Vec<Job>) {
    let committed = run_group(connection, &mut group).await;
    if let Err(error) = &committed {
        tracing::warn!(%error, writes = group.len(), "a group of writes failed");
    }
    for job in group {
        (job.answer)(committed.clone());
    }
}

/// Runs the group's writes inside `BEGIN IMMEDIATE` and commits them.
async fn run_group(connection: &mut SqliteConnection, group: &mut [Job]) -> Result<(), StoreError> {
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
