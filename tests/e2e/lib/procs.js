// Starts the processes of an end-to-end stack on free ports, waits until each is ready, and kills them all when the
// test file ends (or the node process exits), so a failing test never leaves a provider or sidecar behind.
//
// Signals: a script that handles SIGINT/SIGTERM itself (demo.js stops its stack gracefully and exits) keeps that job:
// the handler here then does nothing. Without one (the test files), a signal stops every child (SIGTERM, SIGKILL
// after SIGNAL_GRACE_MS) and exits with 128 + the signal number; a second signal kills at once. In every case,
// whatever is still running when the node process exits is SIGKILLed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const running = new Set();

function killAll(signal = 'SIGTERM') {
  for (const p of running) {
    try { process.kill(-p.child.pid, signal); } catch { try { p.child.kill(signal); } catch { /* gone */ } }
  }
}
process.on('exit', () => killAll('SIGKILL'));

const SIGNAL_GRACE_MS = 2_500;
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 };
let signalled = false;

function onSignal(sig) {
  // Another listener (the script's own shutdown) owns this signal: let it stop the children and exit. (Should that
  // listener just exit, e.g. node:test's own where it installs one, the exit handler above still kills them.)
  if (process.listenerCount(sig) > 1) return;
  const code = SIGNAL_EXIT_CODES[sig];
  if (signalled) process.exit(code); // second signal: the exit handler SIGKILLs what is left
  signalled = true;
  const exited = Promise.all([...running].map((p) => p.exited));
  killAll('SIGTERM');
  const grace = new Promise((r) => { setTimeout(r, SIGNAL_GRACE_MS); });
  Promise.race([exited, grace]).then(() => process.exit(code));
}
for (const sig of Object.keys(SIGNAL_EXIT_CODES)) process.on(sig, onSignal);

/** A TCP port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tmpDir(prefix = 'oidc-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/** Polls until `probe()` resolves truthy; `what` names it in the error. */
export async function waitFor(probe, { what = 'condition', timeoutMs = 30_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      lastErr = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
}

export async function waitForHttp(url, { timeoutMs = 30_000, ok = (res) => res.status < 500 } = {}) {
  await waitFor(async () => ok(await fetch(url, { redirect: 'manual' })), { what: url, timeoutMs });
}

export async function waitForPort(port, { host = '127.0.0.1', timeoutMs = 30_000 } = {}) {
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, host, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { what: `${host}:${port}`, timeoutMs });
}

/**
 * Spawns `cmd args` in its own process group; its output goes to `<logDir>/<name>.log`. Readiness: `readyLine`
 * (RegExp matched against stdout/stderr lines), `readyUrl` (HTTP answers below 500) or `readyPort`.
 * Returns a handle with `stop()`, `kill(signal)`, `log()` and `exited` (a promise).
 */
export async function startProcess({
  name, cmd, args = [], env = {}, cwd, logDir, readyLine, readyUrl, readyPort, timeoutMs = 60_000,
}) {
  const dir = logDir || tmpDir('oidc-e2e-logs-');
  const logPath = path.join(dir, `${name}.log`);
  const logFd = fs.openSync(logPath, 'a');
  const child = spawn(cmd, args, {
    cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const handle = {
    name, child, logPath, pid: child.pid, exitCode: undefined,
    log: () => { try { return fs.readFileSync(logPath, 'utf8'); } catch { return ''; } },
  };
  running.add(handle);
  let sawReady = false;
  let partial = '';
  const onData = (buf) => {
    try { fs.writeSync(logFd, buf); } catch { /* log closed after exit */ }
    if (readyLine && !sawReady) {
      const lines = (partial + buf.toString('utf8')).split('\n');
      partial = lines.pop().slice(-4096);
      if (lines.some((l) => readyLine.test(l)) || readyLine.test(partial)) sawReady = true;
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  handle.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      handle.exitCode = code ?? signal;
      running.delete(handle);
      try { fs.closeSync(logFd); } catch { /* closed */ }
      resolve(handle.exitCode);
    });
    child.on('error', (err) => {
      handle.exitCode = `spawn error: ${err.message}`;
      running.delete(handle);
      resolve(handle.exitCode);
    });
  });
  handle.kill = (signal = 'SIGTERM') => {
    try { process.kill(-child.pid, signal); } catch { try { child.kill(signal); } catch { /* gone */ } }
  };
  handle.stop = async () => {
    if (handle.exitCode !== undefined) return handle.exitCode;
    handle.kill('SIGTERM');
    const timer = setTimeout(() => handle.kill('SIGKILL'), 5_000);
    const code = await handle.exited;
    clearTimeout(timer);
    return code;
  };

  try {
    await waitFor(async () => {
      if (handle.exitCode !== undefined) throw new Error(`${name} exited with ${handle.exitCode}`);
      if (readyLine) return sawReady;
      if (readyUrl) return (await fetch(readyUrl, { redirect: 'manual' })).status < 500;
      if (readyPort) {
        return new Promise((resolve) => {
          const s = net.connect(readyPort, '127.0.0.1', () => { s.destroy(); resolve(true); });
          s.on('error', () => resolve(false));
        });
      }
      return true;
    }, { what: `${name} to be ready`, timeoutMs });
  } catch (err) {
    await handle.stop();
    err.message += `\n--- ${name} log (${logPath}) ---\n${handle.log().slice(-4000)}`;
    throw err;
  }
  return handle;
}

export async function stopAll() {
  await Promise.all([...running].map((p) => p.stop()));
}
