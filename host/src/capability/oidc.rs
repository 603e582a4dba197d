//! The `oidc` capability: JWTs (OIDC ID tokens, OAuth access tokens)
//! verified against the keys of the issuers the operator granted.
//!
//! The token's unverified `iss` only chooses which granted issuer's keys
//! and rules apply; everything is then checked (jsonwebtoken): the
//! signature with the issuer's key named by `kid`, of that key's algorithm
//! (a key's JWK `alg`, else its type: an EC P-256 key verifies only ES256
//! tokens), and `iss`, `aud`, `exp`, `nbf` within the leeway. `none` and
//! HMAC never verify: an HS256 token "signed" with an RSA public key is
//! the classic confusion attack.
//!
//! Keys (a JWKS) come from a file, a URL or the issuer's discovery document
//! (`/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §4),
//! fetched on the service's runtime when the issuer is first granted, then
//! every `refresh_secs`, and when a token names a key the set lacks (at
//! most once per [`REFETCH_AFTER`]: tokens with made-up `kid`s must not
//! turn into a request storm on the issuer). A failed fetch keeps the keys
//! already held. Issuers are shared by every policy granted the same
//! configuration and kept across reloads.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::GrantError;
use crate::config::{OidcIssuerConfig, secure_url};
use crate::metrics::Metrics;
use crate::policy::sandbox::CallState;
use crate::policy::wit::nats::callout::oidc::{Host, TokenError, VerifiedToken};
use crate::untrusted::printable;

/// The soonest a token naming an unknown key (or a failed fetch) refetches.
pub const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// A fetch's own deadline (a caller's ends sooner).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// The longest token looked at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// What a message shows of a value from a token (an issuer, a key id).
const QUOTED_BYTES: usize = 128;

/// Every granted issuer, by its configuration.
pub(crate) struct Issuers {
    runtime: Handle,
    metrics: Arc<Metrics>,
    by_config: Mutex<HashMap<OidcIssuerConfig, Weak<Issuer>>>,
}

/// A policy's trusted issuers.
#[derive(Clone)]
pub(crate) struct Verifier {
    issuers: Vec<Arc<Issuer>>,
    /// Whether a token naming an unknown key may fetch the keys again
    /// (not a shadow's: it must not use up the enforcing calls' refetches).
    may_refetch: bool,
}

/// One issuer: its rules, where its keys come from and the keys held.
struct Issuer {
    config: OidcIssuerConfig,
    algorithms: Vec<Algorithm>,
    source: KeySource,
    runtime: Handle,
    /// Counts its fetches (not a fixture's issuer's: it never fetches).
    metrics: Option<Arc<Metrics>>,
    keys: RwLock<Arc<KeySet>>,
    fetch: Mutex<FetchState>,
    /// Bumped at the end of every fetch, failed or not.
    fetched: watch::Sender<u64>,
}

enum KeySource {
    /// Given when granted (a `jwks_file`, read again at each reload, or a
    /// fixture's key set); never fetched.
    Fixed,
    /// `jwks_url`, or the discovery document's `jwks_uri` when `None`.
    Url {
        client: reqwest::Client,
        jwks_url: Option<String>,
    },
}

#[derive(Default)]
struct FetchState {
    running: bool,
    last_started: Option<Instant>,
    last_error: Option<String>,
}

/// The keys of an issuer usable for signatures.
#[derive(Default)]
struct KeySet {
    keys: Vec<SigningKey>,
}

struct SigningKey {
    kid: Option<String>,
    /// The algorithms it verifies: its JWK `alg`, else those of its type.
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl Issuers {
    pub(crate) fn new(runtime: Handle, metrics: Arc<Metrics>) -> Issuers {
        Issuers {
            runtime,
            metrics,
            by_config: Mutex::new(HashMap::new()),
        }
    }

    /// A verifier trusting `configs`: issuers already granted with the
    /// same configuration are shared (with their keys); new ones start
    /// fetching their keys.
    pub(crate) fn verifier(&self, configs: &[OidcIssuerConfig]) -> Result<Verifier, GrantError> {
        let mut known = self
            .by_config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|_, issuer| issuer.strong_count() > 0);
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            // A key file is read again at each grant (a reload): not shared.
            let shared = known
                .get(config)
                .filter(|_| config.jwks_file.is_none())
                .and_then(Weak::upgrade);
            let issuer = match shared {
                Some(issuer) => issuer,
                None => {
                    let issuer =
                        Issuer::start(config.clone(), self.runtime.clone(), self.metrics.clone())?;
                    known.insert(config.clone(), Arc::downgrade(&issuer));
                    issuer
                }
            };
            issuers.push(issuer);
        }
        Ok(Verifier {
            issuers,
            may_refetch: true,
        })
    }
}

impl Issuer {
    fn start(
        config: OidcIssuerConfig,
        runtime: Handle,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Issuer>, GrantError> {
        let failed = |reason: String| GrantError::Oidc {
            issuer: config.issuer.clone(),
            reason,
        };
        let (source, keys) = match &config.jwks_file {
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| {
                    failed(format!("cannot read jwks_file {}: {e}", path.display()))
                })?;
                let keys = KeySet::parse(&text)
                    .map_err(|e| failed(format!("jwks_file {}: {e}", path.display())))?;
                (KeySource::Fixed, keys)
            }
            None => (
                KeySource::Url {
                    client: http_client(&config).map_err(failed)?,
                    jwks_url: config.jwks_url.clone(),
                },
                KeySet::default(),
            ),
        };
        let issuer = Issuer::new(config, source, keys, runtime, Some(metrics));
        if matches!(issuer.source, KeySource::Url { .. }) {
            issuer.start_fetch(true);
            issuer.schedule_refreshes();
        }
        Ok(issuer)
    }

    /// An issuer whose keys are the key set `jwks` (a fixture's), or none.
    fn fixed(
        config: OidcIssuerConfig,
        jwks: Option<&[u8]>,
        runtime: Handle,
    ) -> Result<Arc<Issuer>, GrantError> {
        let keys = match jwks {
            Some(jwks) => KeySet::parse(jwks).map_err(|reason| GrantError::Oidc {
                issuer: config.issuer.clone(),
                reason: format!("jwks: {reason}"),
            })?,
            None => KeySet::default(),
        };
        Ok(Issuer::new(config, KeySource::Fixed, keys, runtime, None))
    }

    fn new(
        config: OidcIssuerConfig,
        source: KeySource,
        keys: KeySet,
        runtime: Handle,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Issuer> {
        Arc::new(Issuer {
            metrics,
            algorithms: config
                .algorithms()
                .iter()
                .filter_map(|name| Algorithm::from_str(name).ok())
                .collect(),
            source,
            runtime,
            keys: RwLock::new(Arc::new(keys)),
            fetch: Mutex::new(FetchState::default()),
            fetched: watch::channel(0).0,
            config,
        })
    }

    /// Refetches every `refresh_secs` while the issuer is granted.
    fn schedule_refreshes(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.refresh_secs);
        self.runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match weak.upgrade() {
                    Some(issuer) => {
                        issuer.start_fetch(true);
                    }
                    None => return,
                }
            }
        });
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn fetch_state(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.fetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a fetch of the keys unless one is running (or, unless
    /// `scheduled`, one started less than [`REFETCH_AFTER`] ago); whether
    /// one is running now.
    fn start_fetch(self: &Arc<Self>, scheduled: bool) -> bool {
        let KeySource::Url { client, jwks_url } = &self.source else {
            return false;
        };
        let mut state = self.fetch_state();
        if state.running {
            return true;
        }
        if !scheduled
            && state
                .last_started
                .is_some_and(|at| at.elapsed() < REFETCH_AFTER)
        {
            return false;
        }
        state.running = true;
        state.last_started = Some(Instant::now());
        drop(state);
        let issuer = self.clone();
        let (client, jwks_url) = (client.clone(), jwks_url.clone());
        // On the service's runtime, and to its end even when the call that
        // asked is cancelled by its deadline: the keys serve the next calls.
        self.runtime.spawn(async move {
            // Whatever happens to this task, the fetch is over when it ends.
            let _over = FetchOver(issuer.clone());
            let fetched = fetch_keys(&client, &issuer.config.issuer, jwks_url.as_deref()).await;
            if let Some(metrics) = &issuer.metrics {
                metrics.oidc_key_fetch(&issuer.config.issuer, fetched.is_ok());
            }
            let mut state = issuer.fetch_state();
            match fetched {
                Ok(keys) => {
                    tracing::info!(issuer = %issuer.config.issuer, keys = keys.keys.len(), "OIDC issuer keys fetched");
                    state.last_error = None;
                    *issuer
                        .keys
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
                }
                Err(reason) => {
                    tracing::warn!(issuer = %issuer.config.issuer, %reason, "cannot fetch the OIDC issuer's keys; keeping those held");
                    state.last_error = Some(reason);
                }
            }
        });
        true
    }

    /// The key for a token of `algorithm` naming `kid`, fetching the keys
    /// again if none has it (when `may_refetch`).
    async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        algorithm: Algorithm,
        may_refetch: bool,
    ) -> Result<(Arc<KeySet>, usize), TokenError> {
        let mut fetched = self.fetched.subscribe();
        let keys = self.keys();
        if let Some(found) = keys.find(kid, algorithm)? {
            return Ok((keys, found));
        }
        if may_refetch && self.start_fetch(false) {
            // Cancelled with the call if it outlasts the deadline.
            let _ = fetched.changed().await;
        }
        // Again, also when no fetch was started: one may have ended since.
        let keys = self.keys();
        if let Some(found) = keys.find(kid, algorithm)? {
            return Ok((keys, found));
        }
        if keys.keys.is_empty() {
            let why = self
                .fetch_state()
                .last_error
                .clone()
                .unwrap_or_else(|| "none fetched yet".into());
            return Err(TokenError::KeysUnavailable(format!(
                "issuer {}: {why}",
                self.config.issuer
            )));
        }
        Err(TokenError::UnknownKey(match kid {
            Some(kid) => format!(
                "issuer {} has no key {:?}",
                self.config.issuer,
                printable(kid, QUOTED_BYTES)
            ),
            None => format!(
                "the token names no kid and issuer {} has no single {algorithm:?} key",
                self.config.issuer
            ),
        }))
    }

    /// Checks `token` (whose header is `header`) with this issuer's keys
    /// and rules; returns its claims.
    async fn verify(
        self: &Arc<Self>,
        token: &str,
        header: &Header,
        may_refetch: bool,
    ) -> Result<String, TokenError> {
        let algorithm = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| {
                TokenError::AlgorithmRefused(format!(
                    "{:?} is not an algorithm issuer {} may use here",
                    printable(&header.alg, QUOTED_BYTES),
                    self.config.issuer
                ))
            })?;
        let (keys, index) = self
            .key(header.kid.as_deref(), algorithm, may_refetch)
            .await?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(token, &keys.keys[index].key, &validation)
                .map_err(|e| refused(e.kind()))?;
        Ok(decoded.claims.to_string())
    }
}

/// Marks an issuer's fetch as over when dropped (the fetch task's end, even
/// by a panic): later calls may fetch, and the calls waiting wake.
struct FetchOver(Arc<Issuer>);

impl Drop for FetchOver {
    fn drop(&mut self) {
        self.0.fetch_state().running = false;
        self.0.fetched.send_modify(|generation| *generation += 1);
    }
}

/// The token error a jsonwebtoken error is.
fn refused(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::UnknownIssuer("the issuer does not match".into()),
        ErrorKind::InvalidAlgorithm => {
            TokenError::AlgorithmRefused("the key does not verify this algorithm".into())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            TokenError::Malformed(format!("no {claim:?} claim"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Malformed(format!("the {claim:?} claim has the wrong type"))
        }
        other => TokenError::Malformed(format!("{other:?}").chars().take(200).collect()),
    }
}

impl KeySet {
    /// The signing keys of a JWKS document; keys of other uses, of
    /// symmetric types, or that do not parse are left out.
    fn parse(text: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys: Vec<SigningKey> = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| SigningKey::from_jwk(&jwk))
            .collect();
        if keys.is_empty() {
            return Err("the key set has no signing key (RSA, EC P-256/P-384 or Ed25519)".into());
        }
        Ok(KeySet { keys })
    }

    /// The index of the key `kid` names for `algorithm`; without a `kid`,
    /// the only key for that algorithm. A key named by `kid` that is of
    /// another algorithm refuses the token.
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<Option<usize>, TokenError> {
        match kid {
            Some(kid) => {
                let Some(index) = self.keys.iter().position(|k| k.kid.as_deref() == Some(kid))
                else {
                    return Ok(None);
                };
                if !self.keys[index].algorithms.contains(&algorithm) {
                    return Err(TokenError::AlgorithmRefused(format!(
                        "key {:?} is a {:?} key, the token says {algorithm:?}",
                        printable(kid, QUOTED_BYTES),
                        self.keys[index].algorithms
                    )));
                }
                Ok(Some(index))
            }
            None => {
                let mut usable = self
                    .keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.algorithms.contains(&algorithm));
                match (usable.next(), usable.next()) {
                    (Some((index, _)), None) => Ok(Some(index)),
                    _ => Ok(None),
                }
            }
        }
    }
}

impl SigningKey {
    fn from_jwk(jwk: &Jwk) -> Option<SigningKey> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return None;
        }
        let by_type: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return None,
            },
            // A symmetric key in a JWKS: never a verifier's.
            AlgorithmParameters::OctetKey(_) => return None,
        };
        let algorithms = match &jwk.common.key_algorithm {
            Some(named) => {
                let named = Algorithm::from_str(&named.to_string()).ok()?;
                if !by_type.contains(&named) {
                    return None;
                }
                vec![named]
            }
            None => by_type,
        };
        Some(SigningKey {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }
}

/// A client for one issuer: its CA file trusted beside the system's,
/// bounded in time and redirects.
fn http_client(config: &OidcIssuerConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT / 2)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 3 {
                attempt.error("more than 3 redirects")
            } else if let Err(refused) = secure_url("a redirect", attempt.url().as_str()) {
                attempt.error(refused)
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("nats-callout/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTPS client: {e}"))
}

/// Fetches the issuer's key set: from `jwks_url`, or from the `jwks_uri`
/// of its discovery document (whose `issuer` must be the one configured).
async fn fetch_keys(
    client: &reqwest::Client,
    issuer: &str,
    jwks_url: Option<&str>,
) -> Result<KeySet, String> {
    let jwks_url = match jwks_url {
        Some(url) => url.to_string(),
        None => {
            #[derive(Deserialize)]
            struct Discovery {
                issuer: String,
                jwks_uri: String,
            }
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let body = get(client, &url).await?;
            let discovery: Discovery = serde_json::from_slice(&body)
                .map_err(|e| format!("{url}: not a discovery document: {e}"))?;
            if discovery.issuer != issuer {
                return Err(format!(
                    "{url} names the issuer {:?}, not {issuer:?}",
                    printable(&discovery.issuer, QUOTED_BYTES)
                ));
            }
            secure_url("jwks_uri", &discovery.jwks_uri).map_err(|e| format!("{url}: {e}"))?;
            discovery.jwks_uri
        }
    };
    let body = get(client, &jwks_url).await?;
    KeySet::parse(&body).map_err(|e| format!("{jwks_url}: {e}"))
}

/// The body of a successful GET of `url`, at most [`MAX_DOCUMENT_BYTES`].
async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A token's header fields that choose how it is checked.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The unverified `iss` of a token's payload.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    #[serde(default)]
    iss: Option<String>,
}

impl Verifier {
    /// A verifier trusting issuers whose keys are given (a fixture's, for
    /// `check` and kits): nothing is ever fetched.
    pub(crate) fn fixed(
        issuers: Vec<(OidcIssuerConfig, Option<Vec<u8>>)>,
    ) -> Result<Verifier, GrantError> {
        let runtime = Handle::try_current().map_err(|e| GrantError::Oidc {
            issuer: String::new(),
            reason: format!("no runtime: {e}"),
        })?;
        let issuers = issuers
            .into_iter()
            .map(|(config, jwks)| Issuer::fixed(config, jwks.as_deref(), runtime.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Verifier {
            issuers,
            may_refetch: false,
        })
    }

    /// The same issuers, never fetching their keys on a shadow's behalf.
    pub(crate) fn for_shadow(&self) -> Verifier {
        Verifier {
            may_refetch: false,
            ..self.clone()
        }
    }

    /// Verifies `token` against the granted issuer its `iss` names.
    pub(crate) async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let malformed = |why: &str| TokenError::Malformed(why.to_string());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated parts"));
        };
        let json = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| malformed(&format!("its {what} is not base64url")))
        };
        let header: Header = serde_json::from_slice(&json(header, "header")?)
            .map_err(|_| malformed("its header is not a JSON object with an alg"))?;
        if header.alg.eq_ignore_ascii_case("none") || header.alg.starts_with("HS") {
            return Err(TokenError::AlgorithmRefused(format!(
                "{:?} tokens are never accepted",
                printable(&header.alg, QUOTED_BYTES)
            )));
        }
        let claimed: UnverifiedIssuer = serde_json::from_slice(&json(payload, "payload")?)
            .map_err(|_| malformed("its payload is not a JSON object"))?;
        let iss = claimed.iss.ok_or_else(|| malformed("no \"iss\" claim"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.config.issuer == iss)
            .ok_or_else(|| {
                TokenError::UnknownIssuer(format!(
                    "{:?} is not an issuer this policy trusts",
                    printable(&iss, QUOTED_BYTES)
                ))
            })?;
        let claims = issuer.verify(token, &header, self.may_refetch).await?;
        Ok(VerifiedToken {
            issuer: iss,
            claims,
        })
    }
}

impl Host for CallState {
    async fn verify(&mut self, token: String) -> Result<VerifiedToken, TokenError> {
        match self.grants().and_then(|grants| grants.oidc()) {
            Some(verifier) => verifier.verify(&token).await,
            None => Err(TokenError::KeysUnavailable(
                "the oidc capability answers in authorize, not in init".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::tokens::{SigningKey, jwks, now_plus, unsigned};

    const ISSUER: &str = "https://idp.example.com/realms/nats";

    fn config(jwks_file: &std::path::Path) -> OidcIssuerConfig {
        OidcIssuerConfig {
            jwks_file: Some(jwks_file.to_path_buf()),
            leeway_secs: 5,
            ..OidcIssuerConfig::new(ISSUER, vec!["nats".into()])
        }
    }

    fn claims(audience: &str, expires: i64) -> serde_json::Value {
        json!({"iss": ISSUER, "sub": "alice", "aud": audience, "exp": expires, "groups": ["ops"]})
    }

    #[tokio::test]
    async fn tokens_verify_only_with_the_issuers_key_of_their_algorithm() {
        let (rsa, ec) = (SigningKey::rs256("r1"), SigningKey::es256("e1"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks(&[&rsa, &ec]).to_string()).unwrap();
        let issuers = Issuers::new(Handle::current(), Arc::new(Metrics::new()));
        let verifier = issuers.verifier(&[config(&file)]).unwrap();
        let good = claims("nats", now_plus(300));

        for key in [&rsa, &ec] {
            let verified = verifier.verify(&key.sign(&good)).await.unwrap();
            assert_eq!(verified.issuer, ISSUER);
            let claims: serde_json::Value = serde_json::from_str(&verified.claims).unwrap();
            assert_eq!(claims["groups"], json!(["ops"]), "{}", key.alg());
        }
        // An audience among several is enough.
        let several = json!({"iss": ISSUER, "aud": ["other", "nats"], "exp": now_plus(60)});
        assert!(verifier.verify(&rsa.sign(&several)).await.is_ok());

        let refused = |token: String| {
            let verifier = &verifier;
            async move { verifier.verify(&token).await.unwrap_err() }
        };
        assert_eq!(
            refused(rsa.sign(&claims("nats", now_plus(-60)))).await,
            TokenError::Expired
        );
        assert_eq!(
            refused(rsa.sign(&claims("web", now_plus(60)))).await,
            TokenError::WrongAudience
        );
        let early =
            json!({"iss": ISSUER, "aud": "nats", "exp": now_plus(600), "nbf": now_plus(300)});
        assert_eq!(refused(rsa.sign(&early)).await, TokenError::NotYetValid);
        let elsewhere = json!({"iss": "https://evil.example", "aud": "nats", "exp": now_plus(60)});
        assert!(
            matches!(refused(rsa.sign(&elsewhere)).await, TokenError::UnknownIssuer(m) if m.contains("evil.example"))
        );
        // Another key under the same kid: the signature does not verify.
        let forger = SigningKey::rs256("r1");
        assert_eq!(refused(forger.sign(&good)).await, TokenError::BadSignature);
        assert!(matches!(
            refused(unsigned(&good)).await,
            TokenError::AlgorithmRefused(_)
        ));
        // HS256 "signed" with the RSA key's public JWK: never.
        let hmac = rsa.sign_with_header(&json!({"alg": "HS256", "kid": "r1"}), &good);
        assert!(
            matches!(refused(hmac).await, TokenError::AlgorithmRefused(m) if m.contains("HS256"))
        );
        // An ES256 header naming the RSA key.
        let confused = ec.sign_with_header(&json!({"alg": "ES256", "kid": "r1"}), &good);
        assert!(
            matches!(refused(confused).await, TokenError::AlgorithmRefused(m) if m.contains("r1"))
        );
        // A kid the set lacks (a file is not fetched again).
        let stranger = SigningKey::es256("e2");
        assert!(
            matches!(refused(stranger.sign(&good)).await, TokenError::UnknownKey(m) if m.contains("e2"))
        );
        assert!(matches!(
            refused("not.a.token".into()).await,
            TokenError::Malformed(_)
        ));
        assert!(matches!(
            refused("one-part".into()).await,
            TokenError::Malformed(_)
        ));
        let no_exp = json!({"iss": ISSUER, "aud": "nats"});
        assert!(
            matches!(refused(rsa.sign(&no_exp)).await, TokenError::Malformed(m) if m.contains("exp"))
        );
    }

    #[tokio::test]
    async fn an_issuer_limited_to_es256_refuses_rs256() {
        let (rsa, ec) = (SigningKey::rs256("r1"), SigningKey::es256("e1"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks(&[&rsa, &ec]).to_string()).unwrap();
        let mut only_ec = config(&file);
        only_ec.algorithms = Some(vec!["ES256".into()]);
        let verifier = Issuers::new(Handle::current(), Arc::new(Metrics::new()))
            .verifier(&[only_ec])
            .unwrap();
        let good = claims("nats", now_plus(60));
        assert!(verifier.verify(&ec.sign(&good)).await.is_ok());
        assert!(matches!(
            verifier.verify(&rsa.sign(&good)).await,
            Err(TokenError::AlgorithmRefused(_))
        ));
    }

    #[test]
    fn key_sets_keep_only_signing_keys() {
        let rsa = SigningKey::rs256("r1");
        let mut encryption = rsa.jwk();
        encryption["use"] = json!("enc");
        encryption["kid"] = json!("enc1");
        let symmetric = json!({"kty": "oct", "kid": "h1", "k": "c2VjcmV0"});
        let unknown = json!({"kty": "XYZ", "kid": "x"});
        let document = json!({"keys": [rsa.jwk(), encryption, symmetric, unknown]});
        let keys = KeySet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(keys.keys[0].kid.as_deref(), Some("r1"));
        assert_eq!(keys.keys[0].algorithms, [Algorithm::RS256]);
        let none = json!({"keys": [json!({"kty": "oct", "k": "c2VjcmV0"})]});
        assert!(KeySet::parse(none.to_string().as_bytes()).is_err());
        assert!(KeySet::parse(b"[]").is_err());
    }

    #[test]
    fn a_missing_key_file_fails_the_grant_naming_it() {
        let issuers = Issuers::new(
            tokio::runtime::Runtime::new().unwrap().handle().clone(),
            Arc::new(Metrics::new()),
        );
        let error = issuers
            .verifier(&[config(std::path::Path::new("/nonexistent/jwks.json"))])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("/nonexistent/jwks.json"),
            "{error}"
        );
    }
}
