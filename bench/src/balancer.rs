//! Bulkhead behind a real load balancer: warm-call latency direct to a node, through nginx and
//! through HAProxy (what the balancer adds), and throughput through nginx in front of one node
//! and of three.
//!
//! The balancers run with the shipped configurations, rendered by `scripts/lb-config` from a
//! node list for this run's ports, in the foreground and in their own process group, with
//! every file in the bench's log directory. The nodes run without authentication (the bench's
//! callers are all `anonymous`, so the principal hash would send every sessionless call to one
//! node): sessions are opened on each node directly and then called through the balancer by
//! handle, which is how their calls are routed in production too.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::HttpClient;
use crate::launch::{Binaries, HttpSupervisor};
use crate::rpc::opened_session;
use crate::scenarios::{Plan, common_args};
use crate::stats::{Samples, Summary};

/// Calls thrown away on each path before measuring.
const WARMUP_CALLS: usize = 300;
/// Calls per path per round of the interleaved latency measurement.
const ROUND: usize = 100;
/// How long a balancer gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One path of the latency measurement.
#[derive(Debug, Clone)]
pub struct BalancerLatency {
    pub path: &'static str,
    pub summary: Summary,
}

/// One throughput row: `sessions` busy at once through `via` in front of `nodes` nodes.
#[derive(Debug, Clone)]
pub struct BalancedThroughput {
    pub via: &'static str,
    pub nodes: usize,
    pub sessions: usize,
    pub calls_per_second: f64,
    pub summary: Summary,
}

/// Everything this part measured.
#[derive(Debug, Clone, Default)]
pub struct BalancerFigures {
    pub latency: Vec<BalancerLatency>,
    pub throughput: Vec<BalancedThroughput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Haproxy,
}

/// A balancer process; dropping it ends its whole process group.
struct Balancer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill with the process group of a child we started and a valid signal.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left of the group (nginx's workers) goes.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Measure the whole part.
pub fn measure(binaries: &Binaries, plan: &Plan) -> io::Result<BalancerFigures> {
    let most = plan.concurrency.iter().copied().max().unwrap_or(1);
    let args = |node: &str| {
        let mut args = common_args(most * 2 + 10, 0);
        args.extend(["--node".to_string(), node.to_string()]);
        args
    };
    let nodes: Vec<HttpSupervisor> = (1..=3)
        .map(|index| {
            let name = format!("n{index}");
            HttpSupervisor::start(binaries, &args(&name), &format!("balanced-{name}"))
        })
        .collect::<io::Result<_>>()?;
    let node_addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.addr).collect();
    let nginx_one = start(Kind::Nginx, binaries, &node_addrs[..1], "nginx-1")?;
    let nginx_three = start(Kind::Nginx, binaries, &node_addrs, "nginx-3")?;
    let haproxy_one = start(Kind::Haproxy, binaries, &node_addrs[..1], "haproxy-1")?;

    let paths = [
        ("direct to the node", node_addrs[0]),
        ("through nginx", nginx_one.addr),
        ("through HAProxy", haproxy_one.addr),
    ];
    let latency = interleaved_latency(node_addrs[0], &paths, plan.calls)?;
    let mut throughput = Vec::new();
    for &sessions in &plan.concurrency {
        for (via, nodes, target) in [
            ("direct", 1, node_addrs[0]),
            ("nginx", 1, nginx_one.addr),
            ("nginx", 3, nginx_three.addr),
        ] {
            let (calls_per_second, summary) =
                throughput_through(target, &node_addrs[..nodes], sessions, plan.throughput_time)?;
            throughput.push(BalancedThroughput {
                via,
                nodes,
                sessions,
                calls_per_second,
                summary,
            });
        }
    }
    drop((nginx_one, nginx_three, haproxy_one));
    for mut node in nodes {
        node.stop()?;
    }
    Ok(BalancerFigures {
        latency,
        throughput,
    })
}

/// One session on `node`; its handle. The client that opened it is closed.
fn open_on(node: SocketAddr) -> io::Result<String> {
    let mut client = HttpClient::connect(node)?;
    let opened = client.tool("session_open", json!({}), None)?;
    Ok(opened_session(&opened)?.0)
}

/// Warm-call latency on each path, in rounds that take turns so drift hits them alike. Every
/// path calls the same session, on `node`.
fn interleaved_latency(
    node: SocketAddr,
    paths: &[(&'static str, SocketAddr)],
    calls: usize,
) -> io::Result<Vec<BalancerLatency>> {
    let handle = open_on(node)?;
    let mut clients = Vec::new();
    for (_, addr) in paths {
        let mut client = HttpClient::connect(*addr)?;
        for _ in 0..WARMUP_CALLS {
            client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
        }
        clients.push(client);
    }
    let mut samples: Vec<Samples> = paths
        .iter()
        .map(|_| Samples::with_capacity(calls))
        .collect();
    let mut done = 0;
    while done < calls {
        let round = ROUND.min(calls - done);
        for (client, samples) in clients.iter_mut().zip(&mut samples) {
            for _ in 0..round {
                let started = Instant::now();
                client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                samples.push(started.elapsed());
            }
        }
        done += round;
    }
    paths
        .iter()
        .zip(samples)
        .map(|((path, _), samples)| {
            let summary = samples
                .summary()
                .ok_or_else(|| io::Error::other("no latency samples"))?;
            Ok(BalancerLatency { path, summary })
        })
        .collect()
}

/// Calls per second with `sessions` clients calling back to back through `target`, each on
/// its own keep-alive connection, in a session opened on one of `nodes` in turn.
fn throughput_through(
    target: SocketAddr,
    nodes: &[SocketAddr],
    sessions: usize,
    time: Duration,
) -> io::Result<(f64, Summary)> {
    let barrier = Barrier::new(sessions);
    let results: Vec<io::Result<(usize, Samples)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..sessions)
            .map(|index| {
                let barrier = &barrier;
                let node = nodes[index % nodes.len()];
                scope.spawn(move || {
                    let prepared = open_on(node).and_then(|handle| {
                        let mut client = HttpClient::connect(target)?;
                        for _ in 0..WARMUP_CALLS / 10 {
                            client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                        }
                        Ok((client, handle))
                    });
                    barrier.wait();
                    let (mut client, handle) = prepared?;
                    let mut samples = Samples::with_capacity(10_000);
                    let deadline = Instant::now() + time;
                    let mut calls = 0;
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                        samples.push(started.elapsed());
                        calls += 1;
                    }
                    client.tool("session_close", json!({}), Some(&handle))?;
                    Ok((calls, samples))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a client thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    let mut all = Samples::default();
    for result in results {
        let (calls, samples) = result?;
        total += calls;
        all.extend(samples);
    }
    let summary = all
        .summary()
        .ok_or_else(|| io::Error::other("no calls in the throughput run"))?;
    Ok((total as f64 / time.as_secs_f64(), summary))
}

/// Render the shipped configuration for `nodes` and start the balancer on a free port.
fn start(
    kind: Kind,
    binaries: &Binaries,
    nodes: &[SocketAddr],
    name: &str,
) -> io::Result<Balancer> {
    let dir = binaries.log_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut list = format!("listen {addr}\nhost localhost\ncall-timeout 60\n");
    for (index, node) in nodes.iter().enumerate() {
        list.push_str(&format!("node n{} {node}\n", index + 1));
    }
    std::fs::write(dir.join("nodes"), list)?;
    let (flag, file) = match kind {
        Kind::Nginx => ("--nginx", "bulkhead.conf"),
        Kind::Haproxy => ("--haproxy", "haproxy.cfg"),
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "the bench runs the shipped configuration generator"
    )]
    let rendered = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lb-config"))
        .arg(dir.join("nodes"))
        .arg(flag)
        .arg(dir.join(file))
        .output()?;
    if !rendered.status.success() {
        return Err(io::Error::other(format!(
            "scripts/lb-config failed: {}",
            String::from_utf8_lossy(&rendered.stderr)
        )));
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the bench runs the real load balancer it measures"
    )]
    let mut command = Command::new(program(kind)?);
    match kind {
        Kind::Nginx => {
            write_nginx_main(&dir)?;
            command
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .args(["-e", "stderr"]);
        }
        Kind::Haproxy => {
            command.arg("-db").arg("-f").arg(dir.join(file));
        }
    }
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let log = std::fs::File::create(binaries.log_dir.join(format!("{name}.log")))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let mut balancer = Balancer { child, addr };
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(addr).is_err() {
        if Instant::now() >= deadline || !matches!(balancer.child.try_wait(), Ok(None)) {
            return Err(io::Error::other(format!(
                "{name} did not start; see {name}.log in {}",
                binaries.log_dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // HAProxy's first health checks, so no measured call meets a node still marked down.
    std::thread::sleep(Duration::from_millis(300));
    Ok(balancer)
}

fn program(kind: Kind) -> io::Result<PathBuf> {
    let name = match kind {
        Kind::Nginx => "nginx",
        Kind::Haproxy => "haproxy",
    };
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            io::Error::other(format!("{name} is not installed (apt-get install {name})"))
        })
}

/// The smallest main configuration around the shipped http-context file. Keep-alive
/// connections from the load generator are never closed after N requests (nginx's default is
/// 1000), so one connection carries a whole measurement.
fn write_nginx_main(dir: &Path) -> io::Result<()> {
    let dir = dir.display();
    let main = format!(
        "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n\
         \x20   keepalive_requests 100000000;\n\
         \x20   client_body_temp_path {dir}/client_body;\n    proxy_temp_path {dir}/proxy;\n\
         \x20   fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n\
         \x20   scgi_temp_path {dir}/scgi;\n    include {dir}/bulkhead.conf;\n}}\n"
    );
    std::fs::write(format!("{dir}/nginx.conf"), main)
}
