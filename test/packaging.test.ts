import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

t.test(
  'systemd/cascaded.service passes systemd-analyze verify',
  { skip: !hasSystemdAnalyze && 'systemd-analyze not installed' },
  async (t) => {
    const r = spawnSync('systemd-analyze', ['verify', 'systemd/cascaded.service'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr.trim(), '', 'no warnings');
  },
);

t.test('the unit is a hardened notify service with a watchdog', async (t) => {
  const unit = readFileSync('systemd/cascaded.service', 'utf8');
  for (const line of [
    'Type=notify',
    'WatchdogSec=30s',
    'DynamicUser=yes',
    'StateDirectory=cascaded',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'PrivateTmp=yes',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'RestartPreventExitStatus=2',
  ]) {
    t.match(unit, new RegExp(`^${line}$`, 'm'), line);
  }
});

t.test('the Dockerfile is multi-stage, non-root, production-only, with a health check', async (t) => {
  const df = readFileSync('Dockerfile', 'utf8');
  t.equal([...df.matchAll(/^FROM /gm)].length, 2, 'two stages');
  t.match(df, /npm prune --omit=dev/);
  t.match(df, /^USER node$/m);
  t.match(df, /^HEALTHCHECK .*\n.*\/healthz/m);
});
