// Conformance echo policy (plain JavaScript): denies every request with the
// request rendered as JSON, in the format of tests/conformance/README.md, so
// the kit can check that every field reached the policy intact.
import { definePolicy, deny } from 'nats-callout-sdk';

const opt = (value) => (value === undefined ? null : value);

function echo(r) {
  const { server, clientInfo: info, connectOpts: opts, clientTls: tls } = r;
  return {
    server: {
      name: server.name, host: server.host, id: server.id, version: opt(server.version),
      cluster: opt(server.cluster), tags: server.tags, xkey: opt(server.xkey),
    },
    user_nkey: r.userNkey,
    client_info: {
      host: opt(info.host), id: info.id === undefined ? null : info.id.toString(), user: opt(info.user),
      name: opt(info.name), tags: info.tags, name_tag: opt(info.nameTag), kind: opt(info.kind),
      client_type: opt(info.clientType), mqtt_id: opt(info.mqttId), nonce: opt(info.nonce),
    },
    connect_opts: {
      jwt: opt(opts.jwt), nkey: opt(opts.nkey), sig: opt(opts.sig), auth_token: opt(opts.authToken),
      user: opt(opts.user), pass: opt(opts.pass), name: opt(opts.name), lang: opt(opts.lang),
      version: opt(opts.version), protocol: opts.protocol,
    },
    client_tls: tls === undefined ? null : {
      version: opt(tls.version), cipher: opt(tls.cipher), certs: tls.certs, verified_chains: tls.verifiedChains,
    },
    issuer: r.issuer,
  };
}

export const { init, authorize } = definePolicy(() => ({
  authorize: (request) => deny(JSON.stringify(echo(request))),
}));
