//! A local OpenID provider for the README demo and manual testing: discovery, JWKS and a client-credentials token
//! endpoint on 127.0.0.1. Test keys only; never expose it.
//!
//! ```text
//! test-provider [--port 9000] [--issuer-path /TENANT/v2.0] [--audience api://demo] [--tenant GUID]
//!               [--roles Reader,Writer] [--scopes "user.read"] [--lifetime 3600] [--print-token]
//! ```

use std::process::ExitCode;

use oidc_testkit::{ProviderOptions, TestProvider};

const USAGE: &str = "usage: test-provider [--port N] [--issuer-path P] [--audience A] [--tenant T] \
[--roles R1,R2] [--scopes \"s1 s2\"] [--lifetime SECONDS] [--print-token]";

fn parse(args: Vec<String>) -> Result<(ProviderOptions, bool), String> {
    let mut opts = ProviderOptions { port: 9000, ..Default::default() };
    let mut print_token = false;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => opts.port = value()?.parse().map_err(|_| "--port must be a number".to_string())?,
            "--issuer-path" => opts.issuer_path = value()?,
            "--audience" => opts.audience = value()?,
            "--tenant" => opts.tenant = value()?,
            "--roles" => {
                opts.roles = value()?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            "--scopes" => opts.scopes = value()?,
            "--lifetime" => {
                opts.token_lifetime = value()?.parse().map_err(|_| "--lifetime must be seconds".to_string())?
            }
            "--print-token" => print_token = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if !opts.issuer_path.is_empty() && !opts.issuer_path.starts_with('/') {
        opts.issuer_path.insert(0, '/');
    }
    Ok((opts, print_token))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (opts, print_token) = match parse(std::env::args().skip(1).collect()) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let provider = match TestProvider::start_with(opts).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("test provider (TEST KEYS ONLY) listening on {}", provider.url());
    println!("issuer      {}", provider.issuer());
    println!("discovery   {}", provider.discovery_url());
    println!("audience    {}", provider.audience());
    println!("tenant      {}", provider.tenant());
    println!();
    println!("get an app-only access token:");
    println!(
        "  curl -s -d grant_type=client_credentials -d client_id=demo-client {} | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/'",
        provider.token_url()
    );
    if print_token {
        println!();
        println!("a user access token (scp + roles), valid for the configured lifetime:");
        println!("{}", provider.sign(provider.default_claims()));
    }
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let (o, p) =
            parse(args(&["--port", "0", "--issuer-path", "t/v2.0", "--roles", "A, B", "--print-token"])).unwrap();
        assert_eq!(o.port, 0);
        assert_eq!(o.issuer_path, "/t/v2.0");
        assert_eq!(o.roles, vec!["A", "B"]);
        assert!(p);
        assert!(parse(args(&["--port"])).is_err());
        assert!(parse(args(&["--nope"])).is_err());
        assert!(parse(args(&["--port", "x"])).is_err());
    }
}
