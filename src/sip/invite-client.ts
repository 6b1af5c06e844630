/**
 * The INVITE client of the user agent (RFC 3261 13.2): one INVITE transaction
 * at a time with CANCEL on abort or Timer C (9.1), the 422 retry of session
 * timers (RFC 4028 7.2), and the dialog made from the 2xx.
 */
import { randomToken } from '../core/index.js';
import { type DialogHost, DialogImpl } from './dialog.js';
import { SipError, SipResponseError } from './errors.js';
import { SipHeaders } from './headers.js';
import { type SipRequest, SipRequest as SipRequestClass, type SipResponse } from './message.js';
import { nextHop, toBody } from './routing.js';
import type { ClientTransaction, TransactionManager } from './transaction.js';
import type { Destination } from './transport.js';
import type { Dialog, InviteOptions, RequestOptions } from './types.js';

/** What the INVITE client needs from the user agent beyond a dialog's host. */
export interface InviteHost extends DialogHost {
  readonly txm: TransactionManager;
  /** Headers of a new out-of-dialog request (From with `fromTag`, To, Call-ID, Contact, ...). */
  requestHeaders(
    method: string,
    uri: string,
    dest: Destination,
    opts: RequestOptions,
    fromTag: string,
    callId: string,
  ): SipHeaders;
}

/** INVITE `uri`; resolves with the confirmed dialog once the 2xx is ACKed. */
export async function sendInvite(ua: InviteHost, uri: string, opts: InviteOptions): Promise<Dialog> {
  const dest = nextHop(uri, opts.route ?? []);
  const st = opts.sessionTimer === false ? undefined : (opts.sessionTimer ?? ua.sessionTimer);
  let se = st === undefined ? undefined : (st.expires ?? 1800);
  let minSE = st?.minSE ?? ua.minSE;
  const callId = randomToken(12);
  const fromTag = ua.newTag();
  const body = toBody(opts.body);
  let cseq = 0;
  if (opts.signal?.aborted) throw new SipError('SIP_ERR_CANCELLED', 'INVITE aborted before it was sent');
  for (let attempt = 0; ; attempt++) {
    const headers = ua.requestHeaders('INVITE', uri, dest, opts, fromTag, callId);
    if (se !== undefined) {
      headers.set('Session-Expires', `${se}`);
      headers.set('Min-SE', `${minSE}`);
    }
    const { res, req } = await inviteOnce(ua, uri, dest, headers, body, () => ++cseq, opts);
    if (res.status === 422 && se !== undefined && attempt < 2) {
      // Session interval too small (RFC 4028 7.4): retry with Session-Expires and Min-SE both raised to at least
      // the 422's Min-SE, so no element on the path sees a smaller minimum than the one that refused us.
      const theirs = res.seconds('min-se');
      if (theirs !== undefined && (theirs > se || theirs > minSE)) {
        se = Math.max(se, theirs);
        minSE = Math.max(minSE, theirs);
        continue;
      }
    }
    if (res.status >= 300) throw new SipResponseError(res.status, res.reason, { details: { method: 'INVITE', uri } });
    if ((res.to?.params.tag ?? '') === '') {
      // A dialog is identified by both tags (RFC 3261 12): without the peer's there is none to make. The 2xx is
      // still ACKed, so it stops being retransmitted, and the session it opened is ended.
      const inv = req.headers;
      DialogImpl.refuse2xx(ua, res, {
        transport: dest.transport,
        offered: body !== undefined,
        credentials: opts.credentials,
        authorization: inv.getAll('authorization'),
        proxyAuthorization: inv.getAll('proxy-authorization'),
      });
      throw new SipError('SIP_ERR_PROTOCOL', 'the 2xx to our INVITE has no To tag: no dialog can be made', {
        details: { uri, callId },
      });
    }
    const { dialog, refused } = DialogImpl.fromInvite2xx(ua, res, {
      uri,
      dest,
      requested: se,
      minSE,
      localBody: body,
      localContentType: body === undefined ? undefined : (opts.contentType ?? 'application/sdp'),
      invite: req,
      credentials: opts.credentials,
      answer: opts.answer,
    });
    if (refused !== undefined) {
      // The ACK went out (with every stream rejected when it could be): end the call at once (13.2.2.4). The
      // session ends when the BYE is sent (15.1.1), so the caller hears of it now, not after the BYE's answer.
      void dialog.bye();
      throw refused;
    }
    if (opts.signal?.aborted) {
      // The 2xx crossed our CANCEL (RFC 3261 9.1): the call exists, so it is ACKed and ended at once.
      await dialog.bye();
      throw new SipError('SIP_ERR_CANCELLED', 'INVITE cancelled after it was answered', { details: { uri } });
    }
    return dialog;
  }
}

/** One INVITE transaction, with CANCEL on abort or Timer C (RFC 3261 9.1); the final response and the request it answers. */
function inviteOnce(
  ua: InviteHost,
  uri: string,
  dest: Destination,
  headers: SipHeaders,
  body: Buffer | undefined,
  nextCSeq: () => number,
  opts: InviteOptions,
): Promise<{ res: SipResponse; req: SipRequest }> {
  let tx: ClientTransaction | undefined;
  let req: SipRequest | undefined;
  let provisional = false;
  let cancelWanted = false;
  let cancelled = false;
  let timerC = false;
  const cancel = (): void => {
    cancelWanted = true;
    // A CANCEL may only follow a provisional response (RFC 3261 9.1).
    if (!provisional || cancelled || tx === undefined || req === undefined || tx.state !== 'proceeding') return;
    cancelled = true;
    tx.armCancelDeadline();
    const h = new SipHeaders();
    h.set('Via', req.headers.getAll('via')[0]!);
    const route = req.headers.getAll('route');
    if (route.length > 0) h.set('Route', route);
    h.set('Max-Forwards', '70');
    h.set('From', req.headers.get('from')!);
    h.set('To', req.headers.get('to')!);
    h.set('Call-ID', req.headers.get('call-id')!);
    h.set('CSeq', `${req.cseq!.seq} CANCEL`);
    const c = new SipRequestClass('CANCEL', req.uri, h);
    ua.txm.request(c, req.topVia!.branch!, dest, { onProvisional: () => {}, onFinal: () => {}, onError: () => {} });
  };
  const onAbort = (): void => cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const p = ua.send({
    method: 'INVITE',
    ruri: uri,
    dest,
    headers,
    body,
    nextCSeq,
    credentials: opts.credentials,
    onTx: (t, r) => {
      tx = t;
      req = r;
    },
    onProvisional: (r) => {
      provisional = true;
      if (cancelWanted) cancel();
      opts.onProgress?.(r);
    },
    onTimerC: () => {
      timerC = true;
      cancel();
    },
  });
  return p.then(
    (res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (timerC && res.status === 487)
        throw new SipError('SIP_ERR_TIMEOUT', 'INVITE unanswered within Timer C: cancelled', { details: { uri } });
      if (cancelWanted && res.status === 487)
        throw new SipError('SIP_ERR_CANCELLED', 'INVITE cancelled', { details: { uri } });
      // onTx ran for every attempt before its answer could come: req is the request `res` answers.
      return { res, req: req! };
    },
    (err: unknown) => {
      opts.signal?.removeEventListener('abort', onAbort);
      throw err;
    },
  );
}
