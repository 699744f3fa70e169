//! Hosts on a private network, for tests that need real network faults between processes.
//!
//! A [`Lab`] is a set of Linux network namespaces (`ip netns`): one per host, each with a
//! loopback and one `eth0`, whose veth peer is a port of a bridge living in a namespace of its
//! own (the switch). Addresses ([`SUBNET`]`.0/24`) exist only inside these namespaces: the
//! machine's own interfaces, routes and ports are untouched, and two runs at once never see
//! each other (each has its own switch, so they may use the same addresses and ports).
//! [`Lab::cut`] pulls a host's cable (its switch port goes down: packets are lost silently,
//! no reset is sent, like a partition) and [`Lab::heal`] plugs it back.
//!
//! Processes run inside a host through `ip netns exec NS program ...`, which execs the program
//! itself (the pid is the program's; [`Proc`] kills it like any other). The test process stays
//! in the machine's namespace; it reaches Redis over Redis's own Unix socket and an HTTP
//! server through `uds-relay` (a Unix socket relayed to a TCP address by a process inside a
//! host): Unix sockets are files, not network addresses, so they cross namespaces.
//!
//! Dropping the lab kills every process still inside its namespaces and deletes them (also
//! after a failed assertion: `Drop` runs while a panic unwinds). Namespaces and temp folders
//! left by a run that was killed outright (named after a test process that no longer exists)
//! are deleted by the next [`Lab::create`].
//!
//! Creating namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Where the kernel refuses,
//! [`Lab::create`] answers [`LabError::Unsupported`] with the reason, so a test can skip and say
//! why.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::process::{Proc, Spawn};

/// The first three octets of every lab address: hosts are `SUBNET.10`, `SUBNET.11`, ...
pub const SUBNET: &str = "10.77.0";

/// The prefix of every namespace a lab creates: `icns-<test pid>-<random>-<role>`.
const PREFIX: &str = "icns-";

/// The port Redis listens on inside its host. A fixed port is safe here: nothing else lives
/// in that namespace.
pub const REDIS_PORT: u16 = 6379;

/// Why a lab could not be built.
#[derive(Debug)]
pub enum LabError {
    /// The kernel or the privileges forbid network namespaces here (not root, no
    /// CAP_NET_ADMIN, `ip netns add` refused): tests skip, printing this reason.
    Unsupported(String),
    /// Anything else: a real failure.
    Failed(anyhow::Error),
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Unsupported(why) => write!(f, "network namespaces unavailable: {why}"),
            LabError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for LabError {
    fn from(e: anyhow::Error) -> Self {
        LabError::Failed(e)
    }
}

/// One host of the lab.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its role, as given to [`Lab::create`] (`redis`, `api`, `worker-1`, ...).
    pub role: String,
    /// Its namespace's name.
    pub ns: String,
    /// Its address on the lab network.
    pub addr: Ipv4Addr,
    /// Its port on the switch (an interface of the switch namespace).
    port: String,
}

/// A private network of hosts (see the module docs); dropping it removes everything.
pub struct Lab {
    ip: PathBuf,
    switch: String,
    hosts: Vec<Host>,
    /// Every namespace created so far, switch first (deleted in reverse).
    made: Vec<String>,
    dir: tempfile::TempDir,
}

/// A Redis server inside a lab host.
pub struct NsRedis {
    /// The `redis-server` process.
    pub proc: Proc,
    /// `redis://<host address>:6379`: what the other hosts use.
    pub url: String,
    /// `redis+unix://<socket>`: what the test process uses.
    pub local_url: String,
}

/// An HTTP server (api) inside a lab host.
pub struct NsHttp {
    /// The process.
    pub proc: Proc,
    /// `http://<host address>:<port>`: what the other hosts use.
    pub url: String,
    /// The port it bound (it was given port 0).
    pub port: u16,
}

/// A `uds-relay` inside a lab host: a Unix socket of the test process's file system
/// relayed to a TCP address on the lab network.
pub struct Relay {
    /// The relay process.
    pub proc: Proc,
    /// Its Unix socket.
    pub socket: PathBuf,
}

impl Relay {
    /// An HTTP client whose every request goes through the relay (the URL's host is only the
    /// `Host` header), with the 60 s timeout of [`crate::Client`].
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .unix_socket(self.socket.as_path())
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build an HTTP client over a Unix socket")
    }
}

impl Lab {
    /// Creates the switch and one host per role, addressed `SUBNET.10`, `SUBNET.11`, ... in
    /// order, all links up. [`LabError::Unsupported`] when namespaces are forbidden here.
    pub fn create(roles: &[&str]) -> Result<Lab, LabError> {
        let ip = find_program("ip").ok_or_else(|| {
            LabError::Failed(anyhow::anyhow!(
                "no `ip` command (Debian package iproute2): run scripts/provision.sh"
            ))
        })?;
        if !has_cap_net_admin() {
            return Err(LabError::Unsupported(format!(
                "this process lacks CAP_NET_ADMIN ({}); network namespaces need root \
                 (CAP_NET_ADMIN and CAP_SYS_ADMIN)",
                uid_line()
            )));
        }
        sweep_stale(&ip);
        let prefix = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let switch = format!("{prefix}-switch");
        if let Err(e) = run(&ip, &["netns", "add", &switch]) {
            return Err(LabError::Unsupported(format!(
                "`ip netns add` failed: {e:#}"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .map_err(|e| LabError::Failed(e.into()))?;
        // From here on the lab owns what exists: a failure drops it, which cleans up.
        let mut lab = Lab {
            ip,
            switch: switch.clone(),
            hosts: Vec::new(),
            made: vec![switch.clone()],
            dir,
        };
        lab.ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        lab.ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (i, role) in roles.iter().enumerate() {
            let ns = format!("{prefix}-{role}");
            let port = format!("port{i}");
            let addr: Ipv4Addr = format!("{SUBNET}.{}", 10 + i)
                .parse()
                .map_err(|e| LabError::Failed(anyhow::anyhow!("bad address: {e}")))?;
            lab.ip(&["netns", "add", &ns])?;
            lab.made.push(ns.clone());
            let peer = ["link", "add", &port, "type", "veth", "peer", "name", "eth0"];
            let mut args = vec!["-n", switch.as_str()];
            args.extend(peer);
            args.extend(["netns", ns.as_str()]);
            lab.ip(&args)?;
            lab.ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
            let cidr = format!("{addr}/24");
            lab.ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            lab.ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            lab.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            lab.hosts.push(Host {
                role: (*role).to_owned(),
                ns,
                addr,
                port,
            });
        }
        Ok(lab)
    }

    /// Runs `ip ARGS`, failing with its stderr.
    fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        run(&self.ip, args)
    }

    /// The host playing `role`.
    pub fn host(&self, role: &str) -> anyhow::Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.role == role)
            .with_context(|| format!("the lab has no host {role}"))
    }

    /// Every host, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The folder holding logs, port files and sockets (removed with the lab).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pulls `role`'s cable: its switch port goes down, so nothing reaches it or leaves it
    /// (its own `eth0` stays configured and sees no carrier).
    pub fn cut(&self, role: &str) -> anyhow::Result<()> {
        let port = self.host(role)?.port.clone();
        self.ip(&["-n", &self.switch, "link", "set", &port, "down"])
    }

    /// Plugs `role`'s cable back.
    pub fn heal(&self, role: &str) -> anyhow::Result<()> {
        let port = self.host(role)?.port.clone();
        self.ip(&["-n", &self.switch, "link", "set", &port, "up"])
    }

    /// The pids of the processes inside `role`'s host.
    pub fn pids(&self, role: &str) -> anyhow::Result<Vec<u32>> {
        Ok(ns_pids(&self.ip, &self.host(role)?.ns))
    }

    /// Runs `program ARGS` inside `role`'s host to its end and returns its output (stdout and
    /// stderr): for diagnostics such as `ss -tnoi` (the host's TCP connections).
    pub fn output(&self, role: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let ns = self.host(role)?.ns.clone();
        let out = Command::new(&self.ip)
            .args(["netns", "exec", ns.as_str(), program])
            .args(args)
            .output()
            .with_context(|| format!("cannot run {program} in {ns}"))?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Starts `program ARGS` inside `role`'s host with a clean environment plus `env`
    /// (see [`Spawn`]); its output goes to `<dir>/<name>.log`.
    pub fn spawn(
        &self,
        role: &str,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<Proc> {
        let ns = self.host(role)?.ns.clone();
        let program_s = program.display().to_string();
        let mut all = vec!["netns", "exec", ns.as_str(), program_s.as_str()];
        all.extend_from_slice(args);
        Spawn {
            name,
            program: &self.ip,
            args: &all,
            env,
            dir: self.dir(),
            inherit_env: false,
        }
        .start()
        .with_context(|| format!("cannot start {program_s} in {ns}"))
    }

    /// Starts a private `redis-server` (no persistence) in `role`'s host, listening on its
    /// lab address and on a Unix socket for the test process; waits until it answers.
    pub fn redis(&self, role: &str) -> anyhow::Result<NsRedis> {
        let host = self.host(role)?;
        let socket = self.dir().join("redis.sock");
        let (addr, port, sock, dir) = (
            host.addr.to_string(),
            REDIS_PORT.to_string(),
            socket.display().to_string(),
            self.dir().display().to_string(),
        );
        let args = [
            "--bind",
            addr.as_str(),
            "--port",
            port.as_str(),
            // The other hosts are clients: without this, a Redis with no password only
            // answers its own loopback.
            "--protected-mode",
            "no",
            "--unixsocket",
            sock.as_str(),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.as_str(),
        ];
        let redis_server = find_program("redis-server")
            .context("no redis-server (apt-get install redis-server)")?;
        let mut proc = self.spawn(role, "redis", &redis_server, &args, &[])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(s) = proc.exited() {
                anyhow::bail!("redis-server exited ({s}):\n{}", proc.log_tail(20));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server did not open {}:\n{}",
                socket.display(),
                proc.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NsRedis {
            proc,
            url: format!("redis://{addr}:{REDIS_PORT}"),
            local_url: format!("redis+unix://{sock}"),
        })
    }

    /// Starts the api binary in `role`'s host on its lab address, port 0, and learns the port
    /// from its `PORT_FILE`. `/health` cannot be probed from here (the test process has no
    /// route into the lab): go through a [`Lab::relay`].
    pub async fn api(&self, role: &str, env: &[(String, String)]) -> anyhow::Result<NsHttp> {
        self.http_server(role, "api", "API_BIND", env).await
    }

    /// Starts the ui binary in `role`'s host, as [`Lab::api`] starts the api (`API_URL` in
    /// `env` says where the api is).
    pub async fn ui(&self, role: &str, env: &[(String, String)]) -> anyhow::Result<NsHttp> {
        self.http_server(role, "ui", "UI_BIND", env).await
    }

    async fn http_server(
        &self,
        role: &str,
        bin: &str,
        bind_var: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<NsHttp> {
        let host = self.host(role)?;
        let port_file = self.dir().join(format!("{role}.port"));
        let bind = format!("{}:0", host.addr);
        let env = crate::with(
            env,
            &[
                (bind_var, bind.as_str()),
                ("PORT_FILE", &port_file.display().to_string()),
            ],
        );
        let mut proc = self.spawn(role, bin, &crate::paths::binary_path(bin)?, &[], &env)?;
        let port =
            crate::stack::wait_port_file(&mut proc, &port_file, Duration::from_secs(90)).await?;
        Ok(NsHttp {
            proc,
            url: format!("http://{}:{port}", host.addr),
            port,
        })
    }

    /// Starts a worker in `role`'s host.
    pub fn worker(&self, role: &str, name: &str, env: &[(String, String)]) -> anyhow::Result<Proc> {
        self.spawn(role, name, &crate::paths::binary_path("worker")?, &[], env)
    }

    /// Starts `uds-relay` in `role`'s host: connections to `<dir>/<name>.sock` are relayed to
    /// `target` (`host:port` on the lab network), as a client on that host would connect.
    pub fn relay(&self, role: &str, name: &str, target: &str) -> anyhow::Result<Relay> {
        let socket = self.dir().join(format!("{name}.sock"));
        let sock = socket.display().to_string();
        let mut proc = self.spawn(
            role,
            name,
            &crate::paths::binary_path("uds-relay")?,
            &[sock.as_str(), target],
            &[],
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(s) = proc.exited() {
                anyhow::bail!("uds-relay exited ({s}):\n{}", proc.log_tail(20));
            }
            anyhow::ensure!(Instant::now() < deadline, "uds-relay did not open {sock}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Relay { proc, socket })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            remove_namespace(&self.ip, ns);
        }
    }
}

/// Kills whatever runs inside `ns` (only lab processes can) and deletes the namespace; its
/// veth ends go with it.
fn remove_namespace(ip: &Path, ns: &str) {
    let pids = ns_pids(ip, ns);
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(std::process::Stdio::null())
            .status();
    }
    if let Err(e) = run(ip, &["netns", "del", ns]) {
        eprintln!("netns lab: cannot delete namespace {ns}: {e:#}");
    }
}

/// The pids inside namespace `ns` (`ip netns pids`).
fn ns_pids(ip: &Path, ns: &str) -> Vec<u32> {
    Command::new(ip)
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes namespaces and temp folders of earlier runs whose test process is gone (killed
/// before its `Drop` could run).
fn sweep_stale(ip: &Path) {
    if let Ok(out) = Command::new(ip).args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if left_by_dead_run(name) {
                eprintln!("netns lab: removing namespace {name}, left by a run that was killed");
                remove_namespace(ip, name);
            }
        }
    }
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if left_by_dead_run(&name) {
            eprintln!(
                "netns lab: removing {}, left by a run that was killed",
                tmp.join(&name).display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `name` is a lab's (`icns-<pid>-...`) and its test process no longer exists.
fn left_by_dead_run(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Runs `program ARGS`, failing with its stderr.
fn run(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "`{} {}` failed ({}): {}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `name` on `PATH`, or in the sbin folders a non-root `PATH` often lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Whether this process holds CAP_NET_ADMIN (bit 12 of `CapEff` in /proc/self/status).
fn has_cap_net_admin() -> bool {
    status_field("CapEff")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

/// "uid N" from /proc/self/status, for messages.
fn uid_line() -> String {
    status_field("Uid")
        .and_then(|u| u.split_whitespace().nth(1).map(str::to_owned))
        .map_or_else(
            || "uid unknown".to_owned(),
            |u| format!("effective uid {u}"),
        )
}

fn status_field(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    })
}
