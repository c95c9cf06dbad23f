//! One piece of work per key at a time: concurrent requests for the same missing file share one upstream
//! fetch. The work runs as its own task, so it completes (and a resumable download is not cut short)
//! even when the request that started it goes away.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::watch;

pub struct SingleFlight<T> {
    inflight: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            inflight: Mutex::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// The result of `work` for `key`, started on `runtime` unless the same key is already running.
    pub async fn run<F>(self: &Arc<Self>, key: String, runtime: &Handle, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut rx = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(key.clone(), rx.clone());
                    let this = self.clone();
                    runtime.spawn(async move {
                        let result = work.await;
                        // remove first: a request arriving after this sees the finished state on disk
                        this.inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let done = rx.wait_for(Option::is_some).await;
        match done {
            Ok(value) => value.clone().expect("waited for Some"),
            Err(_) => panic!("single-flight task ended without a result"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for _ in 0..20 {
            let (flights, runs) = (flights.clone(), runs.clone());
            waiters.push(tokio::spawn(async move {
                flights
                    .run("k".into(), &Handle::current(), async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }));
        }
        for w in waiters {
            assert_eq!(w.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // a later call runs again
        let again = flights
            .run("k".into(), &Handle::current(), async { 7 })
            .await;
        assert_eq!(again, 7);
    }
}
