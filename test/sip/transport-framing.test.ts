/**
 * The stream framer (RFC 3261 18.3 over TCP/TLS): the work it does is linear
 * in the bytes received however they are split, it never allocates what a
 * Content-Length merely claims, the header section has its own limit, and any
 * split of a byte stream yields the same messages as the whole stream.
 */
import fc from 'fast-check';
import t from 'tap';
import { SipHeaders } from '../../src/sip/headers.js';
import { SipRequest, serialize } from '../../src/sip/message.js';
import { DEFAULT_MAX_HEADER_SIZE, StreamFramer, type StreamOutcome } from '../../src/sip/parser.js';

t.setTimeout(60_000);

function message(callId: string, body: string, pad = 0): Buffer {
  const h = new SipHeaders();
  h.set('Via', 'SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKf1');
  h.set('From', '<sip:a@10.0.0.1>;tag=1');
  h.set('To', '<sip:b@10.0.0.2>');
  h.set('Call-ID', callId);
  h.set('CSeq', '1 MESSAGE');
  if (pad > 0) h.set('X-Pad', 'p'.repeat(pad));
  return serialize(new SipRequest('MESSAGE', 'sip:b@10.0.0.2', h, Buffer.from(body)));
}

/**
 * Bytes the framer touches: scanned by indexOf, copied (copy, concat, from)
 * or decoded (toString), counted through Buffer's own methods while `fn` runs.
 */
function work(fn: () => void): { touched: number; largestAlloc: number } {
  const proto = Buffer.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const saved = {
    indexOf: proto.indexOf!,
    copy: proto.copy!,
    toString: proto.toString as unknown as (...a: unknown[]) => string,
    concat: Buffer.concat,
    from: Buffer.from,
    allocUnsafe: Buffer.allocUnsafe,
  };
  let touched = 0;
  let largestAlloc = 0;
  proto.indexOf = function (this: Buffer, value: unknown, offset?: unknown, ...rest: unknown[]) {
    touched += this.length - (typeof offset === 'number' ? offset : 0);
    return saved.indexOf.call(this, value, offset, ...rest);
  };
  proto.copy = function (this: Buffer, target: unknown, tStart?: unknown, sStart?: unknown, sEnd?: unknown) {
    touched += ((sEnd as number | undefined) ?? this.length) - ((sStart as number | undefined) ?? 0);
    return saved.copy.call(this, target, tStart, sStart, sEnd);
  };
  proto.toString = function (this: Buffer, enc?: unknown, start?: unknown, end?: unknown) {
    touched += ((end as number | undefined) ?? this.length) - ((start as number | undefined) ?? 0);
    return saved.toString.call(this, enc, start, end);
  };
  Buffer.concat = (list: readonly Uint8Array[], len?: number) => {
    touched += list.reduce((n, b) => n + b.length, 0);
    return saved.concat(list, len);
  };
  Buffer.from = ((v: unknown, ...rest: unknown[]) => {
    if (v instanceof Uint8Array) touched += v.length;
    return (saved.from as (...a: unknown[]) => Buffer)(v, ...rest);
  }) as typeof Buffer.from;
  Buffer.allocUnsafe = (size: number) => {
    largestAlloc = Math.max(largestAlloc, size);
    return saved.allocUnsafe(size);
  };
  try {
    fn();
  } finally {
    Object.assign(proto, { indexOf: saved.indexOf, copy: saved.copy, toString: saved.toString });
    Buffer.concat = saved.concat;
    Buffer.from = saved.from;
    Buffer.allocUnsafe = saved.allocUnsafe;
  }
  return { touched, largestAlloc };
}

function feed(f: StreamFramer, bytes: Buffer, chunk: number): StreamOutcome[] {
  const out: StreamOutcome[] = [];
  for (let i = 0; i < bytes.length; i += chunk) out.push(...f.push(bytes.subarray(i, i + chunk)));
  return out;
}

t.test('work is linear in the bytes received, however they are split', async (t) => {
  const cases: Array<[string, Buffer, number]> = [
    ['a 60 KiB header section in 7-byte chunks', message('hdr', 'x', 60_000), 7],
    ['a 1 MiB body in 1 KiB chunks', message('body', 'b'.repeat(1_048_576)), 1_024],
    [
      '2,000 small messages in 97-byte chunks',
      Buffer.concat(Array.from({ length: 2_000 }, (_, i) => message(`m${i}`, 'hi'))),
      97,
    ],
  ];
  for (const [name, bytes, chunk] of cases) {
    const f = new StreamFramer();
    let out: StreamOutcome[] = [];
    const { touched } = work(() => {
      out = feed(f, bytes, chunk);
    });
    t.ok(out.length > 0 && out.every((o) => o.kind === 'message'), `${name}: ${out.length} message(s), no error`);
    t.equal(f.buffered, 0, `${name}: nothing left over`);
    // A re-scan or re-copy of what is buffered on every chunk would touch hundreds of times the input.
    t.ok(touched <= 8 * bytes.length, `${name}: ${touched} bytes touched for ${bytes.length} received`);
  }
});

t.test('a claimed Content-Length is not allocated before the bytes arrive', async (t) => {
  const total = 2_000_000;
  const whole = message('claim', 'z'.repeat(total));
  const headEnd = whole.indexOf('\r\n\r\n') + 4;
  const f = new StreamFramer();
  const first = work(() => {
    t.same(f.push(whole.subarray(0, headEnd + 10)), [], 'waiting for the body');
    t.same(f.push(whole.subarray(headEnd + 10, headEnd + 20)), []);
  });
  t.ok(first.largestAlloc < 65_536, `${first.largestAlloc} bytes allocated for 20 body bytes of ${total} claimed`);
  let out: StreamOutcome[] = [];
  const rest = work(() => {
    out = feed(f, whole.subarray(headEnd + 20), 65_536);
  });
  t.equal(out.length, 1);
  t.equal(out[0]?.kind === 'message' ? out[0].message.body.length : -1, total, 'the body arrives whole');
  t.ok(rest.largestAlloc <= 2 * whole.length, 'the arena grows by doubling, capped at the message');
});

t.test('the header section limit applies before the body and ends the stream', async (t) => {
  const f = new StreamFramer(2 * 1_048_576, 1_000);
  const head = Buffer.from('MESSAGE sip:b@h SIP/2.0\r\nContent-Length: 100\r\nX-Pad: ');
  t.same(f.push(head), []);
  let out: StreamOutcome[] = [];
  let pushed = head.length;
  while (out.length === 0 && pushed < 10_000) {
    out = f.push(Buffer.alloc(100, 97));
    pushed += 100;
  }
  t.ok(pushed <= 1_100, `refused once past the limit (${pushed} bytes pushed)`);
  t.match(out, [{ kind: 'error', status: 513, error: { code: 'SIP_ERR_TOO_LARGE' } }]);
  t.equal(f.buffered, 0, 'what was held is released');
  t.same(f.push(message('after', 'x')), [], 'nothing is framed after a fatal error');

  // A whole header section over the limit in one chunk is refused the same way; under it, framed.
  const g = new StreamFramer(2 * 1_048_576, 1_000);
  t.match(g.push(message('long', 'x', 1_200)), [{ kind: 'error', status: 513 }]);
  const h = new StreamFramer(2 * 1_048_576, 1_000);
  t.match(h.push(message('short', 'x', 500)), [{ kind: 'message' }]);
  t.equal(DEFAULT_MAX_HEADER_SIZE, 65_536);
});

t.test('a body over the message limit is refused as soon as its header is read, answerable 513', async (t) => {
  const f = new StreamFramer(1_000);
  const whole = message('huge', 'q'.repeat(5_000));
  const out = f.push(whole.subarray(0, whole.indexOf('\r\n\r\n') + 4));
  t.match(out, [{ kind: 'error', status: 513, request: { method: 'MESSAGE' } }]);
});

t.test('property: any split of a stream yields the messages of the whole, in order', async (t) => {
  const msgArb = fc.record({
    body: fc.string({ maxLength: 300 }),
    pad: fc.nat(200),
    crlfs: fc.nat(2),
  });
  fc.assert(
    fc.property(
      fc.array(msgArb, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(400), { maxLength: 30 }),
      (ms, cuts) => {
        const parts = ms.map((m, i) =>
          Buffer.concat([Buffer.from('\r\n'.repeat(m.crlfs)), message(`p${i}`, m.body, m.pad)]),
        );
        const stream = Buffer.concat(parts);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const f = new StreamFramer();
        const out: StreamOutcome[] = [];
        let at = 0;
        for (const p of [...points, stream.length]) {
          out.push(...f.push(stream.subarray(at, p)));
          at = p;
        }
        if (out.length !== ms.length || f.buffered !== 0) return false;
        return out.every(
          (o, i) =>
            o.kind === 'message' &&
            o.message.callId === `p${i}` &&
            o.message.body.toString() === Buffer.from(ms[i]!.body).toString(),
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass('every split framed the same messages');
});

t.test('a body is a view of a socket read holding only its message, else a copy that pins nothing', async (t) => {
  // A socket read is a Buffer that owns its memory (one allocation per read, never reused).
  const owned = (b: Buffer) => {
    const own = Buffer.from(new ArrayBuffer(b.length));
    b.copy(own);
    return own;
  };
  const one = owned(message('v1', 'x'.repeat(700)));
  const [r1] = new StreamFramer().push(one);
  t.ok(r1?.kind === 'message' && r1.message.body.buffer === one.buffer, 'one message in the read: no copy');
  t.equal(r1?.kind === 'message' && r1.message.body.toString(), 'x'.repeat(700));

  const two = owned(Buffer.concat([message('v2', 'a'.repeat(300)), message('v3', 'b'.repeat(300))]));
  const out = new StreamFramer().push(two);
  t.equal(out.length, 2);
  for (const o of out) t.ok(o.kind === 'message' && o.message.body.buffer !== two.buffer, 'two in a read: copied');

  // A slice of a larger buffer (a pooled allocation) is copied from: a kept body must not pin the rest.
  const big = Buffer.concat([Buffer.alloc(5_000), message('v4', 'c'.repeat(300))]);
  const slice = big.subarray(5_000);
  const [r4] = new StreamFramer().push(slice);
  t.ok(r4?.kind === 'message' && r4.message.body.buffer !== big.buffer, 'a slice of a larger buffer: copied');

  // Split over two reads: assembled in an arena of ours, which is reused, so the body is a copy.
  const split = owned(message('v5', 'd'.repeat(700)));
  const f = new StreamFramer();
  f.push(owned(split.subarray(0, 100)));
  const [r5] = f.push(owned(split.subarray(100)));
  t.ok(r5?.kind === 'message' && r5.message.body.toString() === 'd'.repeat(700), 'assembled body intact');
});
