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
//! Each write is as atomic as it was alone: one statement is, and a write of several
//! statements opens its own transaction, which inside the group is a savepoint. A write
//! that fails leaves nothing behind and does not touch the others; if the group's commit
//! fails, every write in it reports the failure.

use std::future::Future;
use std::pin::Pin;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::error::DbResultExt;

/// The most writes one commit covers (bounds how long a caller waits behind others).
const MAX_GROUP: usize = 256;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a queued write hands back after running: its answer, sent once the group is on
/// disk (with the commit's error instead, if that failed).
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

type Run = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Answer> + Send>;

/// A queued write: `run` it, or `fail` it without running when its group cannot start.
struct Job {
    run: Run,
    fail: Box<dyn FnOnce(StoreError) + Send>,
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
    /// group is committed. `write` owns what it uses: it runs on the writer's task.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // Shared by `run` and `fail`; whichever the writer calls takes it.
        let reply = std::sync::Arc::new(std::sync::Mutex::new(Some(reply)));
        let fail_reply = reply.clone();
        let send = |reply: &std::sync::Mutex<Option<oneshot::Sender<_>>>, result| {
            let sender = reply.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(sender) = sender {
                let _ = sender.send(result);
            }
        };
        let job = Job {
            run: Box::new(move |connection| {
                Box::pin(async move {
                    let result = write(connection).await;
                    Box::new(move |committed: Result<(), StoreError>| {
                        // A write that failed keeps its own error; one that ran is only
                        // as good as the commit that carries it.
                        send(&reply, result.and_then(|value| committed.map(|()| value)));
                    }) as Answer
                })
            }),
            fail: Box::new(move |error| send(&fail_reply, Err(error))),
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

/// Runs one group in one transaction; if it cannot start (another process held the
/// write lock past the busy timeout), every write in the group fails with that error.
async fn commit_group(connection: &mut SqliteConnection, group: Vec<Job>) {
    let mut transaction = match connection.begin_with("BEGIN IMMEDIATE").await.db() {
        Ok(transaction) => transaction,
        Err(error) => {
            tracing::warn!(%error, writes = group.len(), "could not start a write transaction");
            for job in group {
                (job.fail)(error.clone());
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(group.len());
    for job in group {
        answers.push((job.run)(&mut transaction).await);
    }
    let committed = transaction.commit().await.db();
    if let Err(error) = &committed {
        tracing::warn!(%error, writes = answers.len(), "a group commit failed");
    }
    for answer in answers {
        answer(committed.clone());
    }
}
