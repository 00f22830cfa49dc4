//! Load-balancer side of the harness: `bulkhead serve` nodes on loopback ports ([`Cluster`])
//! behind real nginx or HAProxy ([`Balancer`]), configured by the shipped generator
//! (`scripts/lb-config`) from a node list written for the test's ports, exactly as an operator
//! would. Both balancers run in the foreground, in their own process group, with every file in
//! the test's temporary directory; dropping them ends the whole group.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::eventually;
use crate::http::{Endpoint, TestServer};

/// How long a node, once signalled or closed, gets to exit, and a balancer to come up.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "bulkhead-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        // nginx's workers drop to `nobody` when the tests run as root: they must reach it.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Principals of the cluster's token file: `p0` … `p{PRINCIPALS-1}`.
pub const PRINCIPALS: usize = 30;

/// The bearer token of principal `index`.
pub fn token(index: usize) -> String {
    format!("token-of-principal-{index:02}-0123456789")
}

/// Renewals of one principal's access token (`renewed`): JWT-shaped, the same `sub`, a
/// different `iat` each, as an OAuth client's successive tokens are. (The nodes know them as
/// static tokens; the balancer reads only their claims.)
pub const RENEWALS: usize = 8;

/// Renewal `index` of the principal `renewed`'s token.
pub fn renewed_token(index: usize) -> String {
    let header = base64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = base64url(
        format!(
            r#"{{"sub":"renewed-user","iat":{}}}"#,
            1_700_000_000 + index * 3600
        )
        .as_bytes(),
    );
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let value = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| {
            acc | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(value >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Several `bulkhead serve` nodes, `n1`, `n2`, …, each on its own loopback port.
pub struct Cluster {
    pub dir: TempDir,
    ports: Vec<u16>,
    /// `None` while a node is down.
    nodes: Vec<Option<TestServer>>,
    args: Vec<String>,
}

impl Cluster {
    /// Start `count` nodes sharing one token file (`PRINCIPALS` principals) and `args`.
    pub fn start(count: usize, args: &[&str]) -> Self {
        let dir = TempDir::new("cluster");
        let tokens: String = (0..PRINCIPALS)
            .map(|index| format!("p{index}:{}\n", token(index)))
            .chain((0..RENEWALS).map(|index| format!("renewed:{}\n", renewed_token(index))))
            .collect();
        let tokens_file = dir.0.join("tokens");
        std::fs::write(&tokens_file, tokens).unwrap();
        let mut all = vec![
            "--tokens".to_string(),
            tokens_file.display().to_string(),
            // The load of a test: many calls from few principals.
            "--rate-limit".into(),
            "100000".into(),
            "--rate-burst".into(),
            "100000".into(),
        ];
        all.extend(args.iter().map(|arg| arg.to_string()));
        // Port 0 at first (a port chosen here could be taken by a parallel test before the
        // node binds it); a restarted node gets the port it had.
        let mut cluster = Self {
            dir,
            ports: vec![0; count],
            nodes: (0..count).map(|_| None).collect(),
            args: all,
        };
        for index in 0..count {
            cluster.start_node(index);
        }
        cluster
    }

    /// The name of node `index` (its `--node`).
    pub fn name(index: usize) -> String {
        format!("n{}", index + 1)
    }

    /// The index of the node a handle or legacy id names.
    pub fn index_of(handle: &str) -> usize {
        let node = handle.split('.').next().unwrap_or_default();
        node.strip_prefix('n')
            .and_then(|number| number.parse::<usize>().ok())
            .and_then(|number| number.checked_sub(1))
            .unwrap_or_else(|| panic!("{handle:?} names no node of the cluster"))
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Start node `index` (again) on its port.
    pub fn start_node(&mut self, index: usize) {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let name = Self::name(index);
        args.extend(["--node", &name]);
        let listen = format!("127.0.0.1:{}", self.ports[index]);
        let node = TestServer::start_on(&listen, &args, &[]);
        self.ports[index] = node.addr.port();
        self.nodes[index] = Some(node);
    }

    /// The running node `index`.
    pub fn node(&self, index: usize) -> &TestServer {
        self.nodes[index].as_ref().expect("the node is running")
    }

    pub fn node_mut(&mut self, index: usize) -> &mut TestServer {
        self.nodes[index].as_mut().expect("the node is running")
    }

    /// SIGKILL node `index` and reap it.
    pub fn kill(&mut self, index: usize) {
        let mut node = self.nodes[index].take().expect("the node is running");
        let _ = node.child.kill();
        let _ = node.child.wait();
    }

    /// Send SIGUSR1 (drain) to node `index` and wait until it answers as draining (the
    /// signal is handled asynchronously: a request sent at once could still open a session).
    pub fn drain(&self, index: usize) {
        let node = self.node(index);
        signal(node.pid(), Signal::SIGUSR1);
        assert!(
            eventually(PROCESS_TIMEOUT, || node.get("/readyz").text()
                == "draining\n"),
            "node {} did not drain: {}",
            Self::name(index),
            node.stderr()
        );
    }

    /// Wait for node `index` to exit by itself; returns whether it exited 0.
    pub fn wait_exit(&mut self, index: usize, within: Duration) -> bool {
        let node = self.node_mut(index);
        let mut status = None;
        let exited = eventually(within, || {
            status = node.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(
            exited,
            "node {} did not exit: {}",
            Self::name(index),
            node.stderr()
        );
        self.nodes[index] = None;
        status.is_some_and(|status| status.success())
    }

    /// The node list for `scripts/lb-config`: the balancer on `listen`, these nodes, with
    /// `draining` marked.
    fn node_list(&self, listen: SocketAddr, draining: &[usize]) -> String {
        let mut list =
            format!("listen {listen}\nhost localhost\ncall-timeout 60\nprincipal-claim sub\n");
        for (index, port) in self.ports.iter().enumerate() {
            let flag = if draining.contains(&index) {
                " drain"
            } else {
                ""
            };
            list.push_str(&format!(
                "node {} 127.0.0.1:{port}{flag}\n",
                Self::name(index)
            ));
        }
        list
    }
}

/// Send `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), signal);
}

/// Which load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Haproxy,
}

impl Kind {
    fn program(self) -> PathBuf {
        let name = match self {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
        };
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
            .map(|dir| dir.join(name))
            .find(|path| path.is_file());
        found.unwrap_or_else(|| {
            panic!(
                "{name} is not installed: `apt-get install nginx haproxy` (.ci/run installs them)"
            )
        })
    }
}

/// A real nginx or HAProxy in front of a [`Cluster`].
pub struct Balancer {
    pub kind: Kind,
    child: Child,
    pub endpoint: Endpoint,
    dir: TempDir,
    log: Arc<Mutex<String>>,
}

impl std::ops::Deref for Balancer {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Balancer {
    /// Render the configuration for `cluster` with `scripts/lb-config` and start the balancer
    /// on a free port (another, should a parallel test take that port first).
    pub fn start(kind: Kind, cluster: &Cluster) -> Self {
        let mut attempts = 3;
        loop {
            match Self::try_start(kind, cluster) {
                Ok(balancer) => return balancer,
                Err(log) if attempts > 1 && log.contains("in use") => attempts -= 1,
                Err(log) => panic!("{kind:?} did not start: {log}"),
            }
        }
    }

    fn try_start(kind: Kind, cluster: &Cluster) -> Result<Self, String> {
        let dir = TempDir::new(match kind {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
        });
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        render(kind, &dir.0, &cluster.node_list(addr, &[]));
        #[allow(
            clippy::disallowed_methods,
            reason = "the harness runs the real load balancer under test"
        )]
        let mut command = std::process::Command::new(kind.program());
        match kind {
            Kind::Nginx => {
                write_nginx_main(&dir.0);
                command
                    .arg("-p")
                    .arg(&dir.0)
                    .arg("-c")
                    .arg(dir.0.join("nginx.conf"))
                    .args(["-e", "stderr"]);
            }
            Kind::Haproxy => {
                command.arg("-db").arg("-f").arg(dir.0.join("haproxy.cfg"));
            }
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the load balancer");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut balancer = Self {
            kind,
            child,
            endpoint: Endpoint { addr },
            dir,
            log,
        };
        let listening = eventually(PROCESS_TIMEOUT, || {
            TcpStream::connect(addr).is_ok() || matches!(balancer.child.try_wait(), Ok(Some(_)))
        });
        if listening && matches!(balancer.child.try_wait(), Ok(None)) {
            Ok(balancer)
        } else {
            Err(balancer.log())
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Mark `draining` nodes in the node list, re-render and reload (nginx only: it has no
    /// active health checks, so this is how it learns of a drain).
    pub fn reload_with_draining(&mut self, cluster: &Cluster, draining: &[usize]) {
        assert_eq!(self.kind, Kind::Nginx, "HAProxy notices a drain by itself");
        render(
            self.kind,
            &self.dir.0,
            &cluster.node_list(self.endpoint.addr, draining),
        );
        // Reloaded once the old worker (one: `worker_processes 1`) has exited: until then it
        // may still accept a connection and route it by the old configuration.
        let exited = self.log().matches("exited with code").count();
        signal(self.child.id(), Signal::SIGHUP);
        assert!(
            eventually(PROCESS_TIMEOUT, || self
                .log()
                .matches("exited with code")
                .count()
                > exited),
            "nginx did not reload: {}",
            self.log()
        );
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // The whole group: nginx's workers would outlive a killed master.
        let group = Pid::from_raw(-(self.child.id() as i32));
        let _ = kill(group, Signal::SIGTERM);
        if !eventually(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = kill(group, Signal::SIGKILL);
            let _ = self.child.wait();
        }
        let _ = kill(group, Signal::SIGKILL);
    }
}

/// Run `scripts/lb-config` on `list`, writing the balancer's configuration into `dir`.
fn render(kind: Kind, dir: &Path, list: &str) {
    let nodes = dir.join("nodes");
    std::fs::write(&nodes, list).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lb-config");
    let output_flag = match kind {
        Kind::Nginx => ["--nginx", "bulkhead.conf"],
        Kind::Haproxy => ["--haproxy", "haproxy.cfg"],
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "the harness runs the shipped configuration generator"
    )]
    let output = std::process::Command::new(script)
        .arg(&nodes)
        .arg(output_flag[0])
        .arg(dir.join(output_flag[1]))
        .output()
        .expect("run scripts/lb-config");
    assert!(
        output.status.success(),
        "scripts/lb-config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The smallest main configuration around the shipped http-context file, with every path in
/// `dir`: what `/etc/nginx/nginx.conf` is to `conf.d/bulkhead.conf`.
fn write_nginx_main(dir: &Path) {
    let dir = dir.display();
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr notice;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n\
         \x20   client_body_temp_path {dir}/client_body;\n    proxy_temp_path {dir}/proxy;\n\
         \x20   fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n\
         \x20   scgi_temp_path {dir}/scgi;\n    include {dir}/bulkhead.conf;\n}}\n"
    );
    std::fs::write(format!("{dir}/nginx.conf"), main).unwrap();
}

/// A 2026-07-28 tool call as principal `principal`, in `session` when given; the reply.
pub fn call(
    endpoint: &Endpoint,
    principal: usize,
    tool: &str,
    arguments: Value,
    session: Option<&str>,
) -> (u16, Value) {
    call_with(endpoint, &token(principal), tool, arguments, session)
}

/// [`call`] with any bearer token.
pub fn call_with(
    endpoint: &Endpoint,
    token: &str,
    tool: &str,
    mut arguments: Value,
    session: Option<&str>,
) -> (u16, Value) {
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let response = endpoint.modern(
        Some(token),
        1,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    let reply = if response.body.is_empty() {
        Value::Null
    } else {
        response.json()
    };
    (response.status, reply)
}

/// `session_info` as `principal` (its default session without `session`): handle and pid.
pub fn session_info(
    endpoint: &Endpoint,
    principal: usize,
    session: Option<&str>,
) -> Result<(String, u32), Value> {
    let (_, reply) = call(endpoint, principal, "session_info", json!({}), session);
    let info = &reply["result"]["structuredContent"];
    match (info["session"].as_str(), info["pid"].as_u64()) {
        (Some(handle), Some(pid)) => Ok((handle.to_string(), pid as u32)),
        _ => Err(reply),
    }
}

/// Open an explicit session as `principal`; its handle and worker pid.
pub fn open_session(endpoint: &Endpoint, principal: usize) -> (String, u32) {
    let (status, reply) = call(endpoint, principal, "session_open", json!({}), None);
    let opened = &reply["result"]["structuredContent"];
    match (opened["session"].as_str(), opened["pid"].as_u64()) {
        (Some(handle), Some(pid)) => (handle.to_string(), pid as u32),
        _ => panic!("session_open failed ({status}): {reply}"),
    }
}
