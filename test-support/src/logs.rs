//! Captures what the layer logs through `tracing`, to check that no secret
//! or signature ever reaches a log line.
//!
//! One global subscriber (installed on first use) writes every event, at
//! every level, to the capture of the thread that emits it, if that thread
//! is capturing. A global subscriber rather than `tracing`'s scoped ones:
//! with scoped subscribers, another test thread can get a callsite's
//! interest cached first, and events go missing from the capture.

use std::{
    cell::RefCell,
    io,
    sync::{Arc, Mutex, Once},
};

use tracing_subscriber::fmt::MakeWriter;

/// Everything logged on this thread (a current-thread runtime's tasks
/// included) while capturing.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Stops capturing when dropped.
pub struct Capturing {
    previous: Option<Logs>,
}

impl Drop for Capturing {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|capture| *capture.borrow_mut() = previous);
    }
}

impl Logs {
    /// Captures the logs of `f`.
    pub fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
        let (logs, capturing) = Self::start();
        let value = f();
        drop(capturing);
        (value, logs.text())
    }

    /// Captures until the guard is dropped.
    pub fn start() -> (Self, Capturing) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(ThreadCapture)
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the tests");
        });
        let logs = Self::default();
        let previous = CAPTURE.with(|capture| capture.borrow_mut().replace(logs.clone()));
        (logs, Capturing { previous })
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Writes to the current thread's capture, or nowhere.
struct ThreadCapture;

impl io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logs) = &*capture.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;

    fn make_writer(&'a self) -> Self::Writer {
        ThreadCapture
    }
}
