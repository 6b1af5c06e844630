import { type CascadedErrorOptions, type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the SIP stack (docs/errors.md, section "sip"). */
export const SIP_ERRORS = {
  SIP_ERR_PARSE: { status: 502, description: 'A SIP message could not be parsed (malformed syntax or framing).' },
  SIP_ERR_TOO_LARGE: { status: 502, description: 'A SIP message exceeded the configured maximum size.' },
  SIP_ERR_VERSION: { status: 502, description: 'A SIP message used a protocol version other than SIP/2.0.' },
  SIP_ERR_TRANSPORT: {
    status: 502,
    description: 'A SIP message could not be sent (socket error, connection refused or lost).',
  },
  SIP_ERR_TIMEOUT: {
    status: 504,
    description: 'A SIP transaction timed out (Timer B, F or C, or no ACK for a 2xx): the equivalent of a 408.',
  },
  SIP_ERR_RESPONSE: { status: 502, description: 'The peer answered a SIP request with a non-2xx final response.' },
  SIP_ERR_CLOSED: { status: 503, description: 'The user agent, transport, dialog or subscription was closed.' },
  SIP_ERR_CANCELLED: { status: 499, description: 'An outgoing INVITE was cancelled before it was answered.' },
  SIP_ERR_DIALOG: { status: 409, description: 'The request is not allowed in the dialog’s current state.' },
  SIP_ERR_AUTH: {
    status: 502,
    description: 'Digest authentication failed: our credentials were challenged again (wrong user, password or realm).',
  },
  SIP_ERR_INVALID_ARGUMENT: {
    status: 400,
    description: 'A SIP API call was given an invalid argument (URI, method, option).',
  },
  SIP_ERR_TLS: {
    status: 502,
    description: 'TLS was requested but not configured, or the handshake or peer verification failed.',
  },
  SIP_ERR_SUBSCRIPTION: {
    status: 502,
    description: 'A subscription (SUBSCRIBE or REFER) was refused or terminated by the notifier.',
  },
  SIP_ERR_OFFER: {
    status: 502,
    description:
      'The 2xx to a body-less INVITE carried a session offer we could not answer (no answerer, or it refused the offer): the 2xx was ACKed and the dialog ended with BYE (RFC 3261 13.2.2.4).',
  },
  SIP_ERR_PROTOCOL: {
    status: 502,
    description:
      'The peer broke a SIP rule we cannot work around, e.g. a 2xx without a To tag, which cannot make a dialog (the 2xx is ACKed and ended with BYE).',
  },
  SIP_ERR_SDP: {
    status: 502,
    description: 'A session description (SDP, RFC 4566) is malformed or is not SDP at all.',
  },
} as const satisfies ErrorTable;

export type SipErrorCode = keyof typeof SIP_ERRORS;

export const SipError = errorClass('SipError', SIP_ERRORS);
export type SipError = InstanceType<typeof SipError>;

/** A final non-2xx response to one of our requests: carries the SIP status and reason. */
export class SipResponseError extends SipError {
  readonly sipStatus: number;
  readonly reason: string;

  constructor(sipStatus: number, reason: string, options?: CascadedErrorOptions) {
    super('SIP_ERR_RESPONSE', `SIP ${sipStatus} ${reason}`, {
      ...options,
      details: { sipStatus, reason, ...(options?.details as object | undefined) },
    });
    this.name = 'SipResponseError';
    this.sipStatus = sipStatus;
    this.reason = reason;
  }
}
