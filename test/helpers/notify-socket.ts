/**
 * A real AF_UNIX datagram socket for receiving sd_notify messages, as
 * systemd's NOTIFY_SOCKET is. Node has no unix datagram sockets, so the test
 * binds one through libc with koffi and polls it without blocking.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const MSG_DONTWAIT = 0x40;

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)') as (
  a: number,
  b: number,
  c: number,
) => number;
const bind = libc.func('int bind(int fd, const void *addr, uint32_t len)') as (
  fd: number,
  addr: Buffer,
  len: number,
) => number;
const recv = libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)') as (
  fd: number,
  buf: Buffer,
  len: number,
  flags: number,
) => number;
const closeFd = libc.func('int close(int fd)') as (fd: number) => number;

export interface NotifySocket {
  readonly path: string;
  /** Every datagram received so far (drains the socket first). */
  messages(): string[];
  /** Wait until a message containing `needle` arrives. */
  waitFor(needle: string, timeoutMs?: number): Promise<string>;
  close(): void;
}

export function openNotifySocket(): NotifySocket {
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-notify-'));
  const path = join(dir, 'notify.sock');
  const fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (fd < 0) throw new Error('socket(AF_UNIX, SOCK_DGRAM) failed');
  const addr = Buffer.alloc(110); // struct sockaddr_un: sa_family_t + char sun_path[108]
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(path, 2);
  if (bind(fd, addr, 2 + Buffer.byteLength(path) + 1) !== 0) throw new Error(`bind(${path}) failed`);
  const received: string[] = [];
  const buf = Buffer.alloc(4096);
  const drain = () => {
    for (;;) {
      const n = recv(fd, buf, buf.length, MSG_DONTWAIT);
      if (n <= 0) return;
      received.push(buf.toString('utf8', 0, n));
    }
  };
  return {
    path,
    messages() {
      drain();
      return [...received];
    },
    async waitFor(needle, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        drain();
        const hit = received.find((m) => m.includes(needle));
        if (hit !== undefined) return hit;
        if (Date.now() > deadline) throw new Error(`no notify message with ${needle}; got ${JSON.stringify(received)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close() {
      closeFd(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
