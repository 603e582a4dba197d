// Conformance echo policy (plain JavaScript): denies every request with the
// request rendered as JSON, in the format of tests/conformance/README.md, so
// the kit can check that every field reached the policy intact.
//
// The user `sandbox-probe` instead gets what the policy could reach of the
// filesystem, environment, arguments and network (the `sandbox` kit expects
// nothing): `file=false dir=false env=0 args=0 net=false`. StarlingMonkey
// gives JavaScript no file, environment, argument or socket API, so this
// checks those stay absent. `fetch` exists but traps when called (a deny):
// the build leaves out wasi:http, and the host links none. The user
// `sandbox-loop` never returns, and `sandbox-alloc` allocates 1 GiB: the
// host's deadline and memory cap must stop them.
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

function probe() {
  const file = typeof globalThis.require === 'function' || typeof globalThis.Deno === 'object';
  const env = typeof globalThis.process === 'object' ? Object.keys(globalThis.process.env ?? {}).length : 0;
  const args = typeof globalThis.process === 'object' ? (globalThis.process.argv ?? []).length : 0;
  const net = typeof globalThis.WebSocket === 'function';
  return `file=${file} dir=${file} env=${env} args=${args} net=${net}`;
}

export const { init, authorize } = definePolicy(() => ({
  authorize(request) {
    switch (request.user()) {
      case 'sandbox-probe':
        return deny(probe());
      case 'sandbox-loop':
        for (;;) {}
      case 'sandbox-alloc': {
        const block = new Uint8Array(1 << 30);
        block[block.length - 1] = 1;
        return deny(`allocated ${block.length} bytes`);
      }
      default:
        return deny(JSON.stringify(echo(request)));
    }
  },
}));
