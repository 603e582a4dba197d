//! Convenient, typed access to an [`AuthRequest`], and requests for unit tests.

use crate::{AuthRequest, ClientInfo, ConnectOpts, ServerId};

impl AuthRequest {
    /// The token the client sent (`nats://token@host`), if any.
    pub fn token(&self) -> Option<&str> {
        self.connect_opts.auth_token.as_deref()
    }

    /// The user name and password the client sent, if it sent both.
    pub fn user_and_password(&self) -> Option<(&str, &str)> {
        Some((
            self.connect_opts.user.as_deref()?,
            self.connect_opts.pass.as_deref()?,
        ))
    }

    /// The user name the client sent, if any.
    pub fn user(&self) -> Option<&str> {
        self.connect_opts.user.as_deref()
    }

    /// The client's nkey, if it authenticated with one (the server has not
    /// checked its signature in config mode: compare `connect_opts.sig`).
    pub fn nkey(&self) -> Option<&str> {
        self.connect_opts.nkey.as_deref()
    }

    /// The user JWT the client sent, if any.
    pub fn jwt(&self) -> Option<&str> {
        self.connect_opts.jwt.as_deref()
    }

    /// The client's IP address.
    pub fn client_host(&self) -> Option<&str> {
        self.client_info.host.as_deref()
    }

    /// The client's connection name (from CONNECT, else from the server's view).
    pub fn connection_name(&self) -> Option<&str> {
        self.connect_opts
            .name
            .as_deref()
            .or(self.client_info.name.as_deref())
    }

    /// The leaf certificate of the client's first verified TLS chain, as PEM.
    pub fn client_certificate(&self) -> Option<&str> {
        let tls = self.client_tls.as_ref()?;
        tls.verified_chains
            .first()
            .and_then(|chain| chain.first())
            .or(tls.certs.first())
            .map(String::as_str)
    }

    /// A request as a plain `nats` client connecting to a local server would
    /// send it, with no credentials. Add them with the `with_*` methods.
    pub fn for_test() -> Self {
        AuthRequest {
            server: ServerId {
                name: "test-server".into(),
                host: "127.0.0.1".into(),
                id: "NTESTSERVER".into(),
                version: Some("2.11.0".into()),
                cluster: None,
                tags: Vec::new(),
                xkey: None,
            },
            user_nkey: "UTESTUSER".into(),
            client_info: ClientInfo {
                host: Some("127.0.0.1".into()),
                id: Some(1),
                user: None,
                name: None,
                tags: Vec::new(),
                name_tag: None,
                kind: Some("Client".into()),
                client_type: Some("nats".into()),
                mqtt_id: None,
                nonce: None,
            },
            connect_opts: ConnectOpts {
                jwt: None,
                nkey: None,
                sig: None,
                auth_token: None,
                user: None,
                pass: None,
                name: None,
                lang: Some("rust".into()),
                version: Some("0.0.0".into()),
                protocol: 1,
            },
            client_tls: None,
            issuer: "ATESTISSUER".into(),
        }
    }

    /// The same request with a token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.connect_opts.auth_token = Some(token.into());
        self.client_info.user = Some("[REDACTED]".into());
        self
    }

    /// The same request with a user name and password.
    pub fn with_user_and_password(mut self, user: &str, password: &str) -> Self {
        self.connect_opts.user = Some(user.into());
        self.connect_opts.pass = Some(password.into());
        self.client_info.user = Some(user.into());
        self
    }

    /// The same request coming from another address.
    pub fn with_client_host(mut self, host: &str) -> Self {
        self.client_info.host = Some(host.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_read_the_credentials() {
        let request = AuthRequest::for_test();
        assert_eq!((request.token(), request.user_and_password()), (None, None));
        let token = AuthRequest::for_test().with_token("t");
        assert_eq!(token.token(), Some("t"));
        assert_eq!(token.client_info.user.as_deref(), Some("[REDACTED]"));
        let user = AuthRequest::for_test()
            .with_user_and_password("u", "p")
            .with_client_host("10.0.0.1");
        assert_eq!(user.user_and_password(), Some(("u", "p")));
        assert_eq!(user.client_host(), Some("10.0.0.1"));
        assert_eq!(user.client_certificate(), None);
    }
}
