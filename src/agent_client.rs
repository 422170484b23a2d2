//! Asking a running agent: `redpush status` (`/api/status`, printed as a
//! table) and `redpush healthcheck` (`/healthz` or `/readyz`, as an exit
//! code for a container's health check or an exec probe). The agent's
//! address, scheme and credentials come from the same configuration
//! (`listen`, `[http]`) the agent was started with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::http_client::USER_AGENT;
use crate::secret::read_secret;
use crate::status::Status;
use crate::tls::{certificates, pinned_client_config};
use crate::untrusted::one_line;

/// Prints the agent's status; exit 0, or 1 when the agent cannot be asked.
pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let status = fetch(settings).await?;
    print!("{}", status.text());
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when the agent answers 200 on `/healthz` (or `/readyz` with
/// `ready`), 1 otherwise, with the reason on stderr.
pub async fn healthcheck(settings: &Settings, ready: bool) -> anyhow::Result<ExitCode> {
    let path = if ready { "/readyz" } else { "/healthz" };
    // The probes carry no credentials and the agent is this machine's own
    // (loopback for a wildcard address): its certificate is not checked, so
    // a certificate for the host's public name works.
    let client = builder().danger_accept_invalid_certs(true);
    let url = agent_url(settings, path);
    let client = client.build().context("cannot build the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the agent at {url} (listen / --listen)"))?;
    let code = response.status();
    if code.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    let body = response.text().await.unwrap_or_default();
    eprintln!("redpush: {url} answered {code}: {}", one_line(body.trim()));
    Ok(ExitCode::FAILURE)
}

async fn fetch(settings: &Settings) -> anyhow::Result<Status> {
    let mut client = builder();
    if let Some((cert, _)) = &settings.http.tls {
        // The agent is the one holding the configured certificate's key.
        let chain = certificates(cert).context("http.tls_cert_file")?;
        let leaf = chain
            .into_iter()
            .next()
            .with_context(|| format!("http.tls_cert_file {}: no certificate", cert.display()))?;
        client = client.tls_backend_preconfigured(pinned_client_config(leaf));
    }
    let url = agent_url(settings, "/api/status");
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

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// `path` on the agent of `settings`: HTTPS when `[http]` has TLS.
fn agent_url(settings: &Settings, path: &str) -> String {
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}{path}", reachable(settings.listen))
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
