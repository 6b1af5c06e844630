import t from 'tap';
import { createSystemdNotifier } from '../../native/systemd.js';
import { FakeClock } from '../../src/core/clock.js';
import { openNotifySocket } from '../helpers/notify-socket.js';

t.test('sends READY, STATUS, WATCHDOG and STOPPING to a real NOTIFY_SOCKET', async (t) => {
  const sock = openNotifySocket();
  const saved = process.env.NOTIFY_SOCKET;
  // sd_notify reads the C environment, which node's process.env writes through to.
  process.env.NOTIFY_SOCKET = sock.path;
  t.teardown(() => {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
    sock.close();
  });
  const clock = new FakeClock();
  const n = createSystemdNotifier({ env: { ...process.env, WATCHDOG_USEC: '2000000' }, clock });
  t.equal(n.active, true);
  n.ready('ready: 3 MCUs\nsecond line');
  n.status('dialing 12/70');
  clock.advance(999);
  t.same(sock.messages().length, 2, 'no watchdog ping before half the interval');
  clock.advance(1);
  clock.advance(1000);
  n.stopping('bye');
  await n.close();
  clock.advance(5000);
  t.same(sock.messages(), [
    'READY=1\nSTATUS=ready: 3 MCUs second line',
    'STATUS=dialing 12/70',
    'WATCHDOG=1',
    'WATCHDOG=1',
    'STOPPING=1\nSTATUS=bye',
  ]);
  t.equal(clock.pending, 0, 'close() stops the watchdog');
  await n.close();
});

t.test('WATCHDOG_PID naming another process disables the watchdog', async (t) => {
  const sock = openNotifySocket();
  process.env.NOTIFY_SOCKET = sock.path;
  t.teardown(() => {
    delete process.env.NOTIFY_SOCKET;
    sock.close();
  });
  const clock = new FakeClock();
  const n = createSystemdNotifier({
    env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '1000', WATCHDOG_PID: String(process.pid + 1) },
    clock,
  });
  n.ready();
  clock.advance(10_000);
  t.same(sock.messages(), ['READY=1']);
  await n.close();
});

t.test('a silent no-op without NOTIFY_SOCKET or without the library', async (t) => {
  const none = createSystemdNotifier({ env: {} });
  t.equal(none.active, false);
  none.ready('x');
  none.status('y');
  none.stopping();
  await none.close();

  const sock = openNotifySocket();
  t.teardown(() => sock.close());
  const missing = createSystemdNotifier({ env: { NOTIFY_SOCKET: sock.path }, library: 'libdoes-not-exist.so.9' });
  t.equal(missing.active, false);
  missing.ready();
  t.same(sock.messages(), []);
  await missing.close();
});
