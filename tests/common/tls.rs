//! Certificates for the TLS tests, made with the openssl command line in a
//! temporary directory: a CA, a server certificate for `redis.test` and
//! 127.0.0.1 (or for `redis.test` only), and a client certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct Certs {
    pub dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(super::servers::program("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// `server_ip`: whether the server certificate also names 127.0.0.1.
    pub fn new(server_ip: bool) -> Certs {
        let dir = TempDir::new().expect("dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=redpush test CA",
            ],
        );
        let san = if server_ip {
            "subjectAltName=DNS:redis.test,IP:127.0.0.1"
        } else {
            "subjectAltName=DNS:redis.test"
        };
        std::fs::write(
            d.join("server.ext"),
            format!("{san}\nextendedKeyUsage=serverAuth\n"),
        )
        .expect("ext");
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                ],
            );
        }
        Certs { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn show(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}
