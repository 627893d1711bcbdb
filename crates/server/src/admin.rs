//! Administration the command line does directly against the store (no running server):
//! migrations and apps (`keystead migrate`, `keystead app ...`). The clock and the random
//! number generator are parameters; only `main` reads them.

use anyhow::Context;
use keystead_identity::{id_prefix, new_app_key, new_id};
use keystead_store::{App, AppProvider, Store, StoreError};
use rand::CryptoRng;
use serde::Serialize;

use crate::config::Config;

/// Connects to the configured database (creating the data directory first) and applies
/// the migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url())
        .await
        .context("connecting to the database")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// An OpenID provider as given on the command line: `PROVIDER=ISSUER_URL@CLIENT_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSpec {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
}

/// Parses `PROVIDER=ISSUER_URL@CLIENT_ID`. The client id is what follows the last `@`.
pub fn parse_oidc(spec: &str) -> anyhow::Result<OidcSpec> {
    let bad = || anyhow::anyhow!("--oidc {spec:?} is not PROVIDER=ISSUER_URL@CLIENT_ID");
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (issuer, client_id) = rest.rsplit_once('@').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let issuer_ok = (issuer.starts_with("https://") || issuer.starts_with("http://"))
        && issuer.len() > "https://".len()
        && !issuer.chars().any(char::is_whitespace);
    if !name_ok || !issuer_ok || client_id.is_empty() || client_id.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(OidcSpec {
        name: name.to_string(),
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id: client_id.to_string(),
    })
}

/// Checks a web origin and returns its normal form: `scheme://host[:port]`, scheme and
/// host lowercase, no trailing slash, the scheme's default port dropped (as browsers send
/// it in `Origin`). Only `http` and `https`; no path, query, fragment or user info.
pub fn normalize_origin(input: &str) -> Result<String, String> {
    let bad = |why: &str| format!("origin {input:?} is not valid: {why}");
    let (scheme, rest) = input
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://host[:port]"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains(['/', '?', '#', '@', '\\']) || authority.contains(char::is_whitespace) {
        return Err(bad("an origin has no path, query, fragment or user info"));
    }
    // An IPv6 literal is bracketed; a port follows the last `:` outside the brackets.
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (v6, tail) = after
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 literal"))?;
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad("bad IPv6 literal"));
        }
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or_else(|| bad("bad port"))?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !host_ok {
            return Err(bad("bad host"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad("bad port"));
            }
            let n: u16 = p.parse().map_err(|_| bad("bad port"))?;
            if n == 0 {
                return Err(bad("bad port"));
            }
            (n != default_port).then_some(n)
        }
    };
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A new app's id and key; the key is shown once and only its hash is stored.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    pub app_id: String,
    pub app_key: String,
}

/// A new key for an existing app.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKey {
    pub app_id: String,
    pub app_key: String,
}

/// What `keystead app create` registers; checked before anything is stored.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub name: String,
    pub origins: Vec<String>,
    pub providers: Vec<OidcSpec>,
}

impl NewApp {
    /// Checks and normalises the command line's values.
    pub fn parse(name: &str, origins: &[String], oidc: &[String]) -> anyhow::Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            anyhow::bail!("--name must not be empty");
        }
        if origins.is_empty() {
            anyhow::bail!("at least one --origin is required");
        }
        let mut normal = Vec::new();
        for origin in origins {
            let origin = normalize_origin(origin).map_err(anyhow::Error::msg)?;
            if !normal.contains(&origin) {
                normal.push(origin);
            }
        }
        let providers = oidc
            .iter()
            .map(|s| parse_oidc(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, p) in providers.iter().enumerate() {
            if providers[..i].iter().any(|q| q.name == p.name) {
                anyhow::bail!("provider {:?} given twice", p.name);
            }
        }
        Ok(Self {
            name: name.to_string(),
            origins: normal,
            providers,
        })
    }
}

/// Registers an app with its origins, providers and a first key.
pub async fn create_app<R: CryptoRng + ?Sized>(
    store: &Store,
    new: &NewApp,
    now: i64,
    rng: &mut R,
) -> anyhow::Result<CreatedApp> {
    let app_id = new_id(id_prefix::APP, rng);
    let (app_key, key_hash) = new_app_key(rng);
    let providers: Vec<AppProvider> = new
        .providers
        .iter()
        .map(|p| AppProvider {
            app_id: app_id.clone(),
            name: p.name.clone(),
            kind: "oidc".into(),
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
        })
        .collect();
    let app = App {
        id: app_id.clone(),
        name: new.name.clone(),
        created_at: now,
    };
    store
        .create_app_with(&app, &new.origins, &providers, &key_hash)
        .await
        .context("creating the app")?;
    Ok(CreatedApp { app_id, app_key })
}

/// Gives an app a new key and revokes its others.
pub async fn rotate_key<R: CryptoRng + ?Sized>(
    store: &Store,
    app_id: &str,
    now: i64,
    rng: &mut R,
) -> anyhow::Result<RotatedKey> {
    let (app_key, key_hash) = new_app_key(rng);
    store
        .rotate_app_key(app_id, &key_hash, now)
        .await
        .map_err(|e| no_such_app(e, app_id))?;
    Ok(RotatedKey {
        app_id: app_id.to_string(),
        app_key,
    })
}

/// Allows one more origin for an app; returns its normal form.
pub async fn add_origin(store: &Store, app_id: &str, origin: &str) -> anyhow::Result<String> {
    let origin = normalize_origin(origin).map_err(anyhow::Error::msg)?;
    store
        .add_app_origin(app_id, &origin)
        .await
        .map_err(|e| no_such_app(e, app_id))?;
    Ok(origin)
}

fn no_such_app(e: StoreError, app_id: &str) -> anyhow::Error {
    match e {
        StoreError::NotFound => anyhow::anyhow!("no app {app_id:?}"),
        e => e.into(),
    }
}

/// One app as `keystead app list` shows it (never a key).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppListing {
    pub app_id: String,
    pub name: String,
    pub created_at: i64,
    pub origins: Vec<String>,
    pub login_providers: Vec<ProviderListing>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderListing {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
}

pub async fn list_apps(store: &Store) -> anyhow::Result<Vec<AppListing>> {
    let mut out = Vec::new();
    for app in store.list_apps().await? {
        let origins = store.list_app_origins(&app.id).await?;
        let login_providers = store
            .list_app_providers(&app.id)
            .await?
            .into_iter()
            .map(|p| ProviderListing {
                name: p.name,
                issuer: p.issuer,
                client_id: p.client_id,
            })
            .collect();
        out.push(AppListing {
            app_id: app.id,
            name: app.name,
            created_at: app.created_at,
            origins,
            login_providers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystead_identity::hash_token;

    #[test]
    fn origins_are_checked_and_normalised() {
        for (input, want) in [
            ("https://App.Example", "https://app.example"),
            ("HTTPS://app.example/", "https://app.example"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://app.example:443", "https://app.example"),
            ("http://app.example:80/", "http://app.example"),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            assert_eq!(normalize_origin(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "app.example",
            "ftp://app.example",
            "https://",
            "https://app.example/path",
            "https://app.example?x=1",
            "https://user@app.example",
            "https://app.example:99999",
            "https://app.example:",
            "https://app..example",
            "null",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oidc_specs_are_parsed() {
        let p = parse_oidc("google=https://accounts.google.com@123.apps.googleusercontent.com")
            .unwrap();
        assert_eq!(p.name, "google");
        assert_eq!(p.issuer, "https://accounts.google.com");
        assert_eq!(p.client_id, "123.apps.googleusercontent.com");
        for bad in [
            "google",
            "=https://a@b",
            "g=ftp://a@b",
            "g=https://a@",
            "g=https://a",
        ] {
            assert!(parse_oidc(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn create_rotate_and_list() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let mut rng = rand::rng();
        let new = NewApp::parse(
            "Demo",
            &["https://Demo.Example/".into()],
            &["dev=http://127.0.0.1:8080/dev/oidc@demo".into()],
        )
        .unwrap();
        let created = create_app(&store, &new, 100, &mut rng).await.unwrap();
        let app = store
            .app_for_key(&hash_token(&created.app_key))
            .await
            .unwrap();
        assert_eq!(app.id, created.app_id);
        assert_eq!(
            store.list_app_origins(&app.id).await.unwrap(),
            vec!["https://demo.example".to_string()]
        );

        let rotated = rotate_key(&store, &app.id, 200, &mut rng).await.unwrap();
        assert!(
            store
                .app_for_key(&hash_token(&created.app_key))
                .await
                .is_err()
        );
        assert!(
            store
                .app_for_key(&hash_token(&rotated.app_key))
                .await
                .is_ok()
        );
        assert!(rotate_key(&store, "app_nope", 300, &mut rng).await.is_err());
        assert!(
            add_origin(&store, "app_nope", "https://x.example")
                .await
                .is_err()
        );

        let listed = list_apps(&store).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].login_providers[0].name, "dev");
    }
}
