//! Function instances: each function's prebuilt binary, started
//! `--concurrency` times before the first request (no instance starts on
//! demand, so no request waits for one), started again if it ends, and
//! replaced by a new generation after a rebuild (`--watch`): new instances
//! start at once, old ones stop as soon as they are idle, so a request in
//! progress finishes on the code that took it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Notify;

use crate::Runtime;

/// Wait before starting again an instance that ended on its own.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// How each instance is started.
pub struct Launch {
    /// Where the functions' binaries are (one per function, named after it).
    pub bin_dir: PathBuf,
    /// The functions' settings (NAME=VALUE).
    pub env: Vec<(String, String)>,
    /// Instances per function.
    pub concurrency: usize,
    /// The memory the functions are told they have, in MB.
    pub memory_mb: u32,
    /// The Runtime API's port.
    pub runtime_port: u16,
}

struct Slot {
    generation: u64,
    idle: bool,
    stop: Arc<Notify>,
}

#[derive(Default)]
pub struct Instances {
    generation: AtomicU64,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Instances {
    /// The instance asks for work: false if it has been replaced (it is
    /// stopped instead).
    pub fn waiting(&self, key: &str) -> bool {
        let current = self.generation.load(Ordering::SeqCst);
        let mut slots = self.slots.lock().unwrap();
        let Some(slot) = slots.get_mut(key) else { return false };
        if slot.generation < current {
            slot.stop.notify_one();
            return false;
        }
        slot.idle = true;
        true
    }

    /// The instance took an invocation.
    pub fn working(&self, key: &str) {
        if let Some(slot) = self.slots.lock().unwrap().get_mut(key) {
            slot.idle = false;
        }
    }

    /// A new generation replaces the instances: the idle ones of older
    /// generations stop now, busy ones when they next ask for work.
    fn next_generation(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        for slot in self.slots.lock().unwrap().values() {
            if slot.generation < generation && slot.idle {
                slot.stop.notify_one();
            }
        }
        generation
    }
}

/// Starts every function's instances, of the current generation.
pub fn start_all(rt: &Arc<Runtime>, launch: &Arc<Launch>) {
    let generation = rt.instances.generation.load(Ordering::SeqCst);
    for function in rt.queues.keys() {
        for index in 0..launch.concurrency {
            let key = format!("{function}/{generation}.{index}");
            tokio::spawn(run(rt.clone(), launch.clone(), function.clone(), key, generation));
        }
    }
}

/// Replaces every instance by a new one (after a rebuild).
pub fn replace_all(rt: &Arc<Runtime>, launch: &Arc<Launch>) {
    let generation = rt.instances.next_generation();
    eprintln!("[local] starting generation {generation} of the instances");
    start_all(rt, launch);
}

/// Runs one instance until it is replaced, starting it again whenever it ends.
async fn run(rt: Arc<Runtime>, launch: Arc<Launch>, function: String, key: String, generation: u64) {
    let stop = Arc::new(Notify::new());
    rt.instances.slots.lock().unwrap().insert(key.clone(), Slot { generation, idle: false, stop: stop.clone() });
    loop {
        let mut command = Command::new(launch.bin_dir.join(&function));
        command
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_FUNCTION_NAME", &function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", launch.memory_mb.to_string())
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/rt/{key}", launch.runtime_port))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("[local] {key}: cannot start {}: {e}", launch.bin_dir.join(&function).display());
                tokio::time::sleep(RESTART_DELAY * 4).await;
                continue;
            }
        };
        tokio::select! {
            status = child.wait() => {
                let lost = rt.in_flight.fail_instance(&key, "the function's instance ended");
                eprintln!("[local] {key}: instance ended ({}), {lost} invocation(s) failed; starting it again",
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
                if let Some(slot) = rt.instances.slots.lock().unwrap().get_mut(&key) {
                    slot.idle = false;
                }
                tokio::time::sleep(RESTART_DELAY).await;
            }
            () = stop.notified() => {
                let _ = child.kill().await;
                rt.in_flight.fail_instance(&key, "the function's instance was replaced");
                rt.instances.slots.lock().unwrap().remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_generation_stops_idle_instances_at_once_and_busy_ones_when_they_ask_for_work() {
        let instances = Instances::default();
        let idle = Arc::new(Notify::new());
        let busy = Arc::new(Notify::new());
        for (key, stop) in [("f/0.0", &idle), ("f/0.1", &busy)] {
            instances.slots.lock().unwrap().insert(key.into(), Slot { generation: 0, idle: false, stop: stop.clone() });
        }
        assert!(instances.waiting("f/0.0"));
        assert_eq!(instances.next_generation(), 1);
        // A stored permit: the idle one was told to stop.
        assert!(futures_ready(idle.notified()));
        assert!(!futures_ready(busy.notified()));
        assert!(!instances.waiting("f/0.1"), "the busy one gets no more work");
        assert!(futures_ready(busy.notified()));
        assert!(!instances.waiting("f/9.9"), "an unknown instance gets none either");
    }

    /// Whether a notification is ready now.
    fn futures_ready(notified: tokio::sync::futures::Notified<'_>) -> bool {
        let mut notified = std::pin::pin!(notified);
        let waker = std::task::Waker::noop();
        notified.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }
}
