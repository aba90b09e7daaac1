//! `llmchat-local`: the API on this machine as on Lambda. Every function's
//! prebuilt binary runs as warm instances polling a Lambda Runtime API, and
//! requests reach them by the routes in Cargo.toml, as API Gateway events;
//! buffered and streamed responses alike.
//!
//!   llmchat-local --port N --bin-dir DIR [--bind ADDR] [--concurrency N]
//!                 [--env-file FILE] [--timeout-secs N] [--memory-mb N]
//!                 [--manifest Cargo.toml] [--watch DIR]... [--build COMMAND]
//!
//! With `--watch`, a change under a watched directory runs `--build` (a shell
//! command) and, when it succeeds, replaces the instances with the new
//! binaries; requests in progress finish on the old ones.

mod api;
mod instances;
mod invocations;
mod runtime_api;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::process::Command;

use instances::{Instances, Launch};
use llmchat_local::routes;
use invocations::{InFlight, Queue};

/// Longest a request waits for its function: Lambda's own limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
/// How often watched directories are looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// Directories never watched: build output and tools' state.
const NOT_WATCHED: &[&str] = &["target", ".git", "node_modules", ".llmchat"];

/// What both servers share.
pub struct Runtime {
    pub routes: Vec<routes::Route>,
    pub queues: HashMap<String, Queue>,
    pub in_flight: InFlight,
    pub instances: Instances,
    pub timeout: Duration,
}

struct Args {
    bind: String,
    port: u16,
    bin_dir: PathBuf,
    concurrency: usize,
    env_file: Option<PathBuf>,
    timeout: Duration,
    memory_mb: u32,
    manifest: PathBuf,
    watch: Vec<PathBuf>,
    build: Option<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!("llmchat-local: {problem}");
    eprintln!("usage: llmchat-local --port N --bin-dir DIR [--bind ADDR] [--concurrency N] [--env-file FILE]");
    eprintln!("                     [--timeout-secs N] [--memory-mb N] [--manifest Cargo.toml] [--watch DIR]... [--build COMMAND]");
    std::process::exit(2)
}

fn args() -> Args {
    let mut args = Args {
        bind: "127.0.0.1".into(),
        port: 0,
        bin_dir: PathBuf::new(),
        concurrency: 2,
        env_file: None,
        timeout: DEFAULT_TIMEOUT,
        memory_mb: 1024,
        manifest: PathBuf::from("Cargo.toml"),
        watch: Vec::new(),
        build: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| v.parse::<u64>().ok().filter(|n| *n > 0).unwrap_or_else(|| usage(&format!("{flag} {v}: not a positive number")));
        match flag.as_str() {
            "--bind" => args.bind = value,
            "--port" => args.port = u16::try_from(number(&value)).unwrap_or_else(|_| usage("--port: not a port")),
            "--bin-dir" => args.bin_dir = value.into(),
            "--concurrency" => args.concurrency = number(&value) as usize,
            "--env-file" => args.env_file = Some(value.into()),
            "--timeout-secs" => args.timeout = Duration::from_secs(number(&value)),
            "--memory-mb" => args.memory_mb = u32::try_from(number(&value)).unwrap_or_else(|_| usage("--memory-mb: too large")),
            "--manifest" => args.manifest = value.into(),
            "--watch" => args.watch.push(value.into()),
            "--build" => args.build = Some(value),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if args.port == 0 || args.bin_dir.as_os_str().is_empty() {
        usage("--port and --bin-dir are required");
    }
    if !args.watch.is_empty() && args.build.is_none() {
        usage("--watch needs --build");
    }
    args
}

/// An env file's settings: `NAME=VALUE` lines, the value optionally in
/// single quotes; blank lines and `#` comments skipped.
fn read_env(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut settings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or(format!("line {}: not NAME=VALUE", n + 1))?;
        let value = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(value);
        settings.push((name.trim().to_owned(), value.to_owned()));
    }
    Ok(settings)
}

/// A summary of the files under `dirs` that changes when any of them does.
fn fingerprint(dirs: &[PathBuf]) -> (usize, SystemTime) {
    fn walk(dir: &Path, count: &mut usize, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if !NOT_WATCHED.iter().any(|n| path.file_name().is_some_and(|f| f == *n)) {
                    walk(&path, count, newest);
                }
            } else {
                *count += 1;
                if let Ok(modified) = meta.modified() {
                    *newest = (*newest).max(modified);
                }
            }
        }
    }
    let (mut count, mut newest) = (0, SystemTime::UNIX_EPOCH);
    for path in dirs {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                count += 1;
                newest = newest.max(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            }
            _ => walk(path, &mut count, &mut newest),
        }
    }
    (count, newest)
}

/// Rebuilds and replaces the instances whenever a watched file changes.
async fn watch(rt: Arc<Runtime>, launch: Arc<Launch>, dirs: Vec<PathBuf>, build: String) {
    let mut seen = fingerprint(&dirs);
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let now = fingerprint(&dirs);
        if now == seen {
            continue;
        }
        // Let a save of several files finish.
        tokio::time::sleep(WATCH_INTERVAL).await;
        seen = fingerprint(&dirs);
        eprintln!("[local] a change: {build}");
        match Command::new("sh").arg("-c").arg(&build).status().await {
            Ok(status) if status.success() => instances::replace_all(&rt, &launch),
            Ok(status) => eprintln!("[local] the build failed ({status}); the instances keep running the last build"),
            Err(e) => eprintln!("[local] cannot run the build: {e}"),
        }
    }
}

/// A connection that acknowledges what it reads at once. A function streams
/// its response in small writes, and its runtime client (lambda_runtime's)
/// leaves Nagle's algorithm on: a write that follows another before that one
/// is acknowledged waits for the ACK, which Linux may delay by 40 ms. Quick
/// ACKs keep the runtime from adding that wait to a token.
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if read.is_ready() {
            // Linux turns quick ACKs off again by itself: set after every read.
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        read
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Serves `listener` with `serve` for each request, one task per connection.
async fn accept<F, Fut, B>(listener: TcpListener, rt: Arc<Runtime>, serve: F)
where
    F: Fn(Arc<Runtime>, hyper::Request<hyper::body::Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let rt = rt.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| serve(rt.clone(), req));
            // A client that goes away mid-request is no error of ours.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(QuickAck(stream)), service).await;
        });
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let manifest = std::fs::read_to_string(&args.manifest).unwrap_or_else(|e| usage(&format!("{}: {e}", args.manifest.display())));
    let routes = routes::parse(&manifest).unwrap_or_else(|e| usage(&e));
    let env = match &args.env_file {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| read_env(&t))
            .unwrap_or_else(|e| usage(&format!("{}: {e}", file.display()))),
        None => Vec::new(),
    };
    let functions = routes::functions(&routes);
    for function in &functions {
        if !args.bin_dir.join(function).is_file() {
            usage(&format!(
                "no binary {} for `{function}`, which the router in {} names (build the functions first; is it a package under functions/?)",
                args.bin_dir.join(function).display(),
                args.manifest.display()
            ));
        }
    }

    let runtime_listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| usage(&format!("Runtime API: {e}")));
    let runtime_port = runtime_listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let address: SocketAddr = format!("{}:{}", args.bind, args.port).parse().unwrap_or_else(|_| usage("--bind: not an address"));
    let api_listener = TcpListener::bind(address).await.unwrap_or_else(|e| usage(&format!("{address}: {e}")));

    let rt = Arc::new(Runtime {
        queues: functions.into_iter().map(|f| (f, Queue::default())).collect(),
        routes,
        in_flight: InFlight::default(),
        instances: Instances::default(),
        timeout: args.timeout,
    });
    let launch = Arc::new(Launch {
        bin_dir: args.bin_dir,
        env,
        concurrency: args.concurrency,
        memory_mb: args.memory_mb,
        runtime_port,
    });
    tokio::spawn(accept(runtime_listener, rt.clone(), runtime_api::serve));
    instances::start_all(&rt, &launch);
    if let Some(build) = args.build.filter(|_| !args.watch.is_empty()) {
        tokio::spawn(watch(rt.clone(), launch.clone(), args.watch, build));
    }
    eprintln!(
        "[local] {} functions, {} instances each, serving http://{address}",
        rt.queues.len(),
        launch.concurrency
    );
    tokio::select! {
        () = accept(api_listener, rt.clone(), api::serve) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
    // Leaving drops the instances' processes (kill on drop).
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_as_the_stack_writes_them() {
        let env = read_env("A='x y'\n\n# note\nB=plain\nC='it=s'\n").unwrap();
        assert_eq!(env, [("A".into(), "x y".into()), ("B".into(), "plain".into()), ("C".into(), "it=s".into())]);
        assert!(read_env("no equals sign").is_err());
    }

    #[test]
    fn a_change_under_a_watched_directory_changes_the_fingerprint() {
        let dir = std::env::temp_dir().join(format!("llmchat-local-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join("a.rs"), "1").unwrap();
        let before = fingerprint(std::slice::from_ref(&dir));
        std::fs::write(dir.join("target/out"), "ignored").unwrap();
        assert_eq!(fingerprint(std::slice::from_ref(&dir)), before, "build output is not watched");
        std::fs::write(dir.join("b.rs"), "2").unwrap();
        assert_ne!(fingerprint(std::slice::from_ref(&dir)), before);
        let file = [dir.join("a.rs")];
        let before = fingerprint(&file);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("a.rs"), "3").unwrap();
        assert_ne!(fingerprint(&file), before, "a watched file counts too");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
