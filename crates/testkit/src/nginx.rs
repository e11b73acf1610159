//! Throwaway nginx: its own prefix, config, error log and temp paths, in the
//! foreground on a free 127.0.0.1 port, serving files a test writes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{ServerDir, ServerProcess, chmod, free_port, port_open, require_program, run};

/// What to serve.
#[derive(Debug, Clone, Default)]
pub struct NginxOptions {
    /// Files under the document root: `(relative path, content)`.
    pub files: Vec<(String, String)>,
    /// Extra directives inside the `server { }` block (e.g. `location` blocks).
    pub server_config: String,
    /// Extra directives inside the `http { }` block (e.g. an `upstream` with `keepalive`).
    pub http_config: String,
}

/// A running throwaway nginx; stopped and deleted on drop.
#[derive(Debug)]
pub struct Nginx {
    process: ServerProcess,
    port: u16,
    dir: ServerDir,
}

impl Nginx {
    /// Write the prefix, check the config with `nginx -t`, start and wait for the port.
    pub fn start(options: NginxOptions) -> Result<Self> {
        let nginx = require_program("/usr/sbin/nginx")?;
        let dir = ServerDir::create("nginx")?;
        let prefix = dir.path();
        chmod(prefix, 0o755)?;
        let html = prefix.join("html");
        for sub in ["html", "tmp", "logs"] {
            fs::create_dir_all(prefix.join(sub)).map_err(Error::io(format!("create {sub}")))?;
        }
        for (path, content) in &options.files {
            let file = html.join(path.trim_start_matches('/'));
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent).map_err(Error::io("create docroot subdir"))?;
            }
            fs::write(&file, content).map_err(Error::io(format!("write {}", file.display())))?;
        }
        let port = free_port()?;
        let p = prefix.display();
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\n\
             error_log {p}/logs/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/logs/access.log;\n\
               client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n\
               scgi_temp_path {p}/tmp/scgi;\n  default_type application/octet-stream;\n\
               types {{ text/html html; application/json json; text/plain txt; }}\n{http_extra}\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {html};\n{extra}\n  }}\n}}\n",
            html = html.display(),
            extra = options.server_config,
            http_extra = options.http_config,
        );
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, config).map_err(Error::io("write nginx.conf"))?;
        let errlog = prefix.join("logs").join("error.log");
        let with_prefix = |command: &mut Command| {
            command
                .arg("-e")
                .arg(&errlog)
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(&conf);
        };
        let mut check = Command::new(&nginx);
        with_prefix(&mut check);
        run(check.arg("-t"))?;

        let mut command = Command::new(&nginx);
        with_prefix(&mut command);
        let mut process =
            ServerProcess::spawn("nginx", &mut command, &dir, errlog.clone(), Signal::SIGTERM)?;
        process.wait_ready(|_| port_open(port))?;
        Ok(Self { process, port, dir })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The document root.
    pub fn docroot(&self) -> PathBuf {
        self.dir.path().join("html")
    }

    /// The prefix directory (config, logs).
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// The error log so far (last lines).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
