//! `redpush status`: asks a running agent for `/api/status` and prints it
//! as a table. The agent's address, scheme and credentials come from the
//! same configuration (`listen`, `[http]`) the agent was started with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::http_client::USER_AGENT;
use crate::secret::read_secret;
use crate::status::Status;

/// Prints the agent's status; exit 0, or 1 when the agent cannot be asked.
pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let status = fetch(settings).await?;
    print!("{}", status.text());
    Ok(ExitCode::SUCCESS)
}

async fn fetch(settings: &Settings) -> anyhow::Result<Status> {
    let address = reachable(settings.listen);
    let mut client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    let scheme = match &settings.http.tls {
        None => "http",
        Some((cert, _)) => {
            // A self-signed certificate is trusted as itself.
            let pem = std::fs::read(cert)
                .with_context(|| format!("http.tls_cert_file {}", cert.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default() {
                client = client.add_root_certificate(cert);
            }
            "https"
        }
    };
    let url = format!("{scheme}://{address}/api/status");
    let client = client.build().context("cannot build the HTTP client")?;
    let mut request = client.get(&url);
    if let Some((user, file)) = &settings.http.basic_auth {
        let password = read_secret(file).context("http.basic_auth.password_file")?;
        request = request.basic_auth(user, Some(password.expose()));
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the agent at {url} (listen / --listen)"))?;
    let code = response.status();
    if !code.is_success() {
        anyhow::bail!("{url} answered {code}");
    }
    let body = response.text().await.context("reading the status")?;
    serde_json::from_str(&body).with_context(|| format!("{url} did not answer a status"))
}

/// Where to connect for an agent listening on `listen`: a wildcard address
/// is reached through loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_reached_through_loopback() {
        let at = |s: &str| reachable(s.parse().expect("addr")).to_string();
        assert_eq!(at("0.0.0.0:9121"), "127.0.0.1:9121");
        assert_eq!(at("[::]:9121"), "[::1]:9121");
        assert_eq!(at("10.1.2.3:9121"), "10.1.2.3:9121");
    }
}
