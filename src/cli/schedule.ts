/**
 * cascadectl's session-lifecycle commands (docs/session.md): `schedule`
 * (list, show, create, change, cancel), `ack`, `next`. Kept apart from
 * cascadectl.ts, which hands in its REST call, output and table helpers.
 */
import { readFileSync, writeFileSync } from 'node:fs';

// biome-ignore lint/suspicious/noExplicitAny: JSON from the API, shaped by its OpenAPI document
type Json = any;

export interface ScheduleIo {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>;
  /** A GET whose answer is not JSON (CSV, HTML): its text. */
  text(path: string): Promise<string>;
  out(text: string): void;
  emit(data: unknown, human: () => string): void;
  table(head: string[], rows: (string | number | null | undefined)[][]): string;
  usage(message: string): Error;
}

export interface ScheduleValues {
  readonly state?: string;
  readonly id?: string;
  readonly kind?: string;
  readonly title?: string;
  readonly requester?: string;
  readonly root?: string;
  readonly chair?: string;
  readonly start?: string;
  readonly end?: string;
  readonly rehearsal?: string;
  readonly endpoints?: string;
  readonly select?: readonly string[];
  readonly script?: string;
  readonly file?: string;
  readonly connected?: string;
  readonly audio?: string;
  readonly video?: string;
  readonly notes?: string;
  readonly csv?: boolean;
  readonly auto?: boolean;
  readonly format?: string;
  readonly out?: string;
  readonly view?: string;
}

export const SCHEDULE_HELP = `  cascadectl [options] schedule [--state S]          scheduled sessions (Decision 1594 lifecycle)
  cascadectl [options] schedule show SESSION         its timeline: steps, deadlines, units' acknowledgements
  cascadectl [options] schedule create --kind planned|adhoc --title T --requester R --chair E
                       --start ISO --end ISO [--rehearsal ISO] [--id ID] [--root MCU]
                       [--endpoints A,B] [--select level=commune,province=P]... [--script A,B,...]
                       [--view chair|speaker]  what everyone but the chair sees: the chair (default),
                       or the endpoint brought to the chair large with the chair small
                       (or --file FILE: the JSON body of POST /v1/schedule)
  cascadectl [options] schedule change SESSION [--title T] [--start ISO] [--end ISO] [--rehearsal ISO]
                       [--chair E] [--endpoints A,B] [--select ...]... [--script A,B,...]
  cascadectl [options] schedule cancel SESSION
  cascadectl [options] ack SESSION UNIT              UNIT (a province or operator) acknowledges the notification
  cascadectl [options] next SESSION                  bring the script's next speaker to the chair
  cascadectl [options] check SESSION ENDPOINT [--connected yes|no] [--audio yes|no] [--video yes|no] [--notes T]
                                                    record a unit's test of an endpoint
  cascadectl [options] checks SESSION [--auto] [--csv]
                                                    the per-province summary and the endpoints to test
                                                    again (--auto: the daemon checks them first; --csv: CSV)
  cascadectl [options] report SESSION [--format json|csv|html] [--out FILE]
                                                    the session's quality report (HTML: one page,
                                                    prints on A4); --out writes it to FILE
`;

const list = (text: string | undefined) =>
  text
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

function selectors(v: ScheduleValues, io: ScheduleIo): Record<string, string>[] {
  return (v.select ?? []).map((text) => {
    const sel: Record<string, string> = {};
    for (const part of text.split(',')) {
      const [k, val] = part.split('=').map((s) => s.trim());
      if ((k !== 'level' && k !== 'province' && k !== 'mcu') || !val)
        throw io.usage(`--select ${text}: level=L, province=P and mcu=M, comma-separated`);
      sel[k] = val;
    }
    return sel;
  });
}

/** The fields given as flags, as a request body (only what was given). */
function body(v: ScheduleValues, io: ScheduleIo): Record<string, unknown> {
  const endpoints = [...(list(v.endpoints) ?? []), ...selectors(v, io)];
  const script = list(v.script)?.map((endpoint) => ({ endpoint }));
  const out: Record<string, unknown> = {
    id: v.id,
    kind: v.kind,
    title: v.title,
    requester: v.requester,
    root: v.root,
    chair: v.chair,
    startsAt: v.start,
    endsAt: v.end,
    rehearsalAt: v.rehearsal,
    view: v.view,
    ...(endpoints.length === 0 ? {} : { endpoints }),
    ...(script === undefined ? {} : { script }),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

function human(s: Json, io: ScheduleIo): string {
  const units = (s.units as { unit: string; ack: { at: string; actor: string } | null }[])
    .map((u) => `${u.unit}${u.ack === null ? ' (not acknowledged)' : ` (acknowledged ${u.ack.at})`}`)
    .join(', ');
  return (
    `${s.id}: ${s.title} [${s.kind}, ${s.level}, ${s.status}]\n` +
    `  requested by ${s.requester} at ${s.requestedAt}; root ${s.root}, chair ${s.chair}; ${s.endpoints.length} endpoints\n` +
    `  ${s.rehearsalAt === null ? '' : `rehearsal ${s.rehearsalAt}, `}starts ${s.startsAt}, ends ${s.endsAt}\n` +
    `  units: ${units === '' ? 'none' : units}\n` +
    `  script: ${s.script.length === 0 ? 'none' : `${s.scriptPos} of ${s.script.length} spoken`}\n\n` +
    io.table(
      ['STEP', 'DUE', 'STATE', 'RAN', 'LATE'],
      (s.steps as Record<string, string | number | null>[]).map((x) => [
        x.step,
        x.dueAt,
        x.state,
        x.ranAt,
        x.lateMs === null ? null : `${Math.round(Number(x.lateMs) / 1000)} s`,
      ]),
    ) +
    '\n' +
    io.table(
      ['DEADLINE', 'DUE', 'STATE', 'AT', 'AT RISK SINCE'],
      (s.deadlines as Record<string, string | null>[]).map((d) => [d.name, d.dueAt, d.state, d.at, d.atRiskAt]),
    )
  );
}

/** Run a lifecycle command; undefined when `command` is not one of them. */
export async function scheduleCommand(
  command: string,
  args: readonly string[],
  v: ScheduleValues,
  io: ScheduleIo,
): Promise<number | undefined> {
  const need = (n: number, usage: string) => {
    if (args.length !== n) throw io.usage(`usage: cascadectl ${usage}`);
  };
  const at = (id: string) => `/v1/schedule/${encodeURIComponent(id)}`;
  switch (command) {
    case 'schedule': {
      const [sub, ...rest] = args;
      if (sub === undefined) {
        const r = (
          await io.call(
            'GET',
            `/v1/schedule?limit=1000${v.state === undefined ? '' : `&status=${encodeURIComponent(v.state)}`}`,
          )
        ).body;
        io.emit(r.items, () =>
          io.table(
            ['SESSION', 'KIND', 'LEVEL', 'STATUS', 'STARTS', 'DEADLINES MISSED', 'TITLE'],
            (r.items as Json[]).map((s) => [
              s.id,
              s.kind,
              s.level,
              s.status,
              s.startsAt,
              (s.deadlines as { state: string; name: string }[])
                .filter((d) => d.state === 'missed')
                .map((d) => d.name)
                .join(',') || '-',
              s.title,
            ]),
          ),
        );
        return 0;
      }
      const one = (usage: string) => {
        if (rest.length !== 1) throw io.usage(`usage: cascadectl schedule ${usage}`);
        return rest[0]!;
      };
      let r: Json;
      switch (sub) {
        case 'show':
          r = (await io.call('GET', at(one('show SESSION')))).body;
          break;
        case 'create': {
          if (rest.length !== 0) throw io.usage('usage: cascadectl schedule create --kind K --title T ... (--help)');
          let b: unknown;
          if (v.file !== undefined) {
            try {
              b = JSON.parse(readFileSync(v.file, 'utf8'));
            } catch (err) {
              throw io.usage(`--file ${v.file}: ${(err as Error).message}`);
            }
          } else b = body(v, io);
          r = (await io.call('POST', '/v1/schedule', b)).body;
          break;
        }
        case 'change':
          r = (await io.call('POST', at(one('change SESSION [--title T] ...')), body(v, io))).body;
          break;
        case 'cancel':
          r = (await io.call('DELETE', at(one('cancel SESSION')))).body;
          break;
        default:
          throw io.usage(`unknown schedule command "${sub}": show, create, change or cancel`);
      }
      io.emit(r, () => human(r, io));
      return 0;
    }
    case 'ack': {
      need(2, 'ack SESSION UNIT');
      const r = (await io.call('POST', `${at(args[0]!)}/acks`, { unit: args[1] })).body;
      io.emit(r, () => `${r.unit} acknowledged at ${r.at}${r.withinRule ? '' : ' (after the 15-minute rule)'}\n`);
      return 0;
    }
    case 'next': {
      need(1, 'next SESSION');
      const r = (await io.call('POST', `${at(args[0]!)}/next`, {})).body;
      io.emit(r, () => {
        const topic = r.item.topic === undefined ? '' : ` (${r.item.topic})`;
        return `speaker ${r.position} of ${r.of}: ${r.item.endpoint}${topic} on the chair in ${r.chair.ms} ms via ${(r.chair.path as string[]).join(' -> ')}\n`;
      });
      return 0;
    }
    case 'check': {
      need(2, 'check SESSION ENDPOINT [--connected yes|no] [--audio yes|no] [--video yes|no] [--notes T]');
      const flag = (name: string, text: string | undefined) => {
        if (text === undefined) return undefined;
        if (text === 'yes') return true;
        if (text === 'no') return false;
        throw io.usage(`--${name}: yes or no`);
      };
      const b: Record<string, unknown> = { endpoint: args[1] };
      for (const k of ['connected', 'audio', 'video'] as const) {
        const f = flag(k, v[k]);
        if (f !== undefined) b[k] = f;
      }
      if (v.notes !== undefined) b.notes = v.notes;
      const r = (await io.call('POST', `${at(args[0]!)}/checks`, b)).body;
      io.emit(r, () => `${r.endpoint} (${r.name}): ${r.verdict}\n`);
      return 0;
    }
    case 'checks': {
      need(1, 'checks SESSION [--auto] [--csv]');
      if (v.auto === true) await io.call('POST', `${at(args[0]!)}/checks/auto`, {});
      if (v.csv === true) {
        io.out(await io.text(`${at(args[0]!)}/checks?format=csv`));
        return 0;
      }
      const r = (await io.call('GET', `${at(args[0]!)}/checks`)).body;
      io.emit(r, () => {
        const rows = (r.provinces as Json[]).map((p) => [
          p.name,
          p.endpoints,
          p.tested,
          p.ok,
          p.failing,
          p.untested,
          p.connected,
        ]);
        const t = r.totals;
        rows.push(['total', t.endpoints, t.tested, t.ok, t.failing, t.untested, t.connected]);
        const retest = (r.retest as Json[]).map((e) => {
          const c =
            e.unit !== null && (e.unit.connected === false || e.unit.audio === false || e.unit.video === false)
              ? e.unit
              : e.daemon;
          return [e.endpoint, e.name, e.province, c?.source, c?.notes, c?.at];
        });
        return (
          io.table(['PROVINCE', 'ENDPOINTS', 'TESTED', 'OK', 'FAILING', 'UNTESTED', 'CONNECTED'], rows) +
          (retest.length === 0
            ? '\nno endpoint to test again\n'
            : `\nto test again:\n${io.table(['ENDPOINT', 'NAME', 'PROVINCE', 'BY', 'NOTES', 'AT'], retest)}`)
        );
      });
      return 0;
    }
    case 'report': {
      need(1, 'report SESSION [--format json|csv|html] [--out FILE]');
      const format = v.format ?? 'json';
      if (!['json', 'csv', 'html'].includes(format)) throw io.usage('--format: json, csv or html');
      const path = `/v1/sessions/${encodeURIComponent(args[0]!)}/report`;
      const save = (text: string) => {
        if (v.out === undefined) io.out(text);
        else writeFileSync(v.out, text);
      };
      if (format !== 'json') {
        save(await io.text(`${path}?format=${format}`));
        return 0;
      }
      const r = (await io.call('GET', path)).body;
      if (v.out !== undefined) {
        save(`${JSON.stringify(r, null, 2)}\n`);
        return 0;
      }
      io.emit(r, () => {
        const s = r.session;
        const c = r.chair;
        return (
          `${s.id}: ${s.title} [${s.kind}, ${s.level}, ${s.status}]\n` +
          `deadlines: ${r.timeline.met} met, ${r.timeline.missed} missed, ${r.timeline.pending} pending\n` +
          io.table(
            ['DEADLINE', 'DUE', 'STATE', 'AT'],
            (r.timeline.deadlines as Json[]).map((d) => [d.name, d.dueAt, d.state, d.at]),
          ) +
          `chair commands: ${c.commands.length} (${c.ok} ok, ${c.failed} failed, ${c.overRule} failed or over 30 s; median ${c.medianMs ?? '-'} ms, slowest ${c.maxMs ?? '-'} ms)\n` +
          `cascade link drops: ${r.drops}; endpoints: ${r.checks.totals.endpoints} (${r.checks.totals.failing} failing their checks, ${r.checks.totals.untested} untested)\n`
        );
      });
      return 0;
    }
    default:
      return undefined;
  }
}
