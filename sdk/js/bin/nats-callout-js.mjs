#!/usr/bin/env node
// nats-callout-js: builds a JavaScript or TypeScript policy into a component,
// and runs its unit tests natively.
//
//   nats-callout-js build src/policy.ts -o policy.wasm
//   nats-callout-js test test/*.test.ts
//   nats-callout-js typecheck
//
// `build` bundles the entry module and its imports (npm packages included)
// into one ES module with esbuild, then componentizes it with
// componentize-js against wit/policy.wit: the world `policy`, plus the
// capabilities (kv, oidc, password, nkey) the bundle imports, and only those
// (componentize-js keeps every import of its world, and the host refuses a
// policy importing a capability its operator did not grant). Nothing is
// fetched from the network.
// `test` bundles each test file for Node, with the host's `log` replaced by
// one that writes to standard error and the capabilities by the test doubles
// of `nats-callout-sdk/testing`, and runs them with `node --test`.
// `typecheck` runs the TypeScript compiler (`tsc --noEmit`) on the project
// in the current folder (its tsconfig.json): esbuild strips types unchecked.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build as bundle } from 'esbuild';

const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  console.error(`nats-callout-js: ${message}`);
  process.exit(2);
}

// The WIT shipped with the package (a link to the repository's `wit/` in a
// checkout).
function witPath() {
  const shipped = join(sdkDir, 'wit');
  if (existsSync(join(shipped, 'policy.wit'))) return shipped;
  fail(`cannot find ${join(shipped, 'policy.wit')}: this copy of nats-callout-sdk is incomplete`);
}

const hostModule = /^nats:callout\/host(@.*)?$/;
const capabilityModule = /^nats:callout\/(kv|oidc|password|nkey)(@.*)?$/;

// The world a bundle builds against: `policy`, or a world of the policy and
// the capabilities it imports, written beside a copy of the WIT in `work`.
function worldFor(bundledSource, work) {
  const imported = new Set();
  for (const match of bundledSource.matchAll(/["']nats:callout\/(kv|oidc|password|nkey)(@[^"']*)?["']/g)) {
    imported.add(match[1]);
  }
  if (imported.size === 0) return { witPath: witPath(), worldName: 'policy' };
  const dir = join(work, 'wit');
  mkdirSync(dir);
  copyFileSync(join(witPath(), 'policy.wit'), join(dir, 'policy.wit'));
  const imports = [...imported].sort().map((name) => `    import ${name};`).join('\n');
  writeFileSync(join(dir, 'selected.wit'), `world policy-selected {\n    include policy;\n${imports}\n}\n`);
  console.error(`capabilities imported: ${[...imported].sort().join(', ')}`);
  return { witPath: dir, worldName: 'policy-selected' };
}

async function build(entry, out) {
  if (!entry || !out) fail('usage: nats-callout-js build <entry.ts|js> -o <policy.wasm>');
  if (!existsSync(entry)) fail(`no such file: ${entry}`);
  const work = mkdtempSync(join(tmpdir(), 'nats-callout-js-'));
  try {
    const bundled = join(work, 'policy.js');
    await bundle({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile: bundled,
      external: ['nats:callout/*'],
      logLevel: 'warning',
    });
    const { componentize } = await import('@bytecodealliance/componentize-js');
    const world = worldFor(readFileSync(bundled, 'utf8'), work);
    const { component } = await componentize({
      sourcePath: bundled,
      witPath: world.witPath,
      worldName: world.worldName,
      // No HTTP: a policy has no network, and the host links no wasi:http.
      disableFeatures: ['http', 'fetch-event'],
    });
    writeFileSync(out, component);
    console.error(`wrote ${out} (${statSync(out).size} bytes)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function test(files) {
  if (files.length === 0) fail('usage: nats-callout-js test <test files...>');
  const work = mkdtempSync(join(tmpdir(), 'nats-callout-js-test-'));
  const nativeHost = join(sdkDir, 'src', 'native-host.js');
  try {
    const outputs = [];
    for (const file of files) {
      const outfile = join(work, basename(file).replace(/\.[cm]?[jt]s$/, '') + '.mjs');
      await bundle({
        entryPoints: [file],
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        outfile,
        logLevel: 'warning',
        plugins: [
          {
            name: 'native-host',
            setup(build) {
              build.onResolve({ filter: hostModule }, () => ({ path: nativeHost }));
              build.onResolve({ filter: capabilityModule }, (found) => ({
                path: join(sdkDir, 'src', 'native', `${found.path.match(capabilityModule)[1]}.js`),
              }));
            },
          },
        ],
      });
      outputs.push(outfile);
    }
    const run = spawnSync(process.execPath, ['--test', ...outputs], { stdio: 'inherit' });
    process.exitCode = run.status ?? 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function typecheck() {
  // Where Node finds the SDK's dependency: its own node_modules in a
  // checkout, the project's when npm installed the SDK there.
  let tsc;
  try {
    tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  } catch {
    fail('no TypeScript compiler: install nats-callout-sdk with its dependencies (npm install)');
  }
  const run = spawnSync(process.execPath, [tsc, '--noEmit', '-p', '.'], { stdio: 'inherit' });
  process.exitCode = run.status ?? 1;
  if (process.exitCode !== 0) fail('type errors');
}

const [command, ...args] = process.argv.slice(2);
try {
  if (command === 'build') {
    const at = args.indexOf('-o');
    const out = at >= 0 ? args[at + 1] : undefined;
    const entry = args.find((arg, i) => i !== at && i !== at + 1);
    await build(entry, out);
  } else if (command === 'test') {
    await test(args);
  } else if (command === 'typecheck') {
    typecheck();
  } else {
    fail('usage: nats-callout-js build <entry> -o <policy.wasm> | test <test files...> | typecheck');
  }
} catch (error) {
  fail(error?.message ?? String(error));
}
