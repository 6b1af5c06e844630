import { type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the MCU drivers (docs/errors.md, section "mcu"). */
export const MCU_ERRORS = {
  MCU_ERR_TIMEOUT: { status: 504, description: 'The MCU did not answer a control request within its deadline.' },
  MCU_ERR_REJECTED: {
    status: 502,
    description: 'The MCU refused a request (a non-2xx SIP answer, or an MSML result other than 200).',
  },
  MCU_ERR_BUSY: {
    status: 503,
    description: 'The MCU (or the MCU it was asked to dial) has no free port: it answered 486, 503 or 600.',
  },
  MCU_ERR_AUTH: {
    status: 502,
    description:
      'The MCU challenged (401/407) and refused our digest credentials, or no credentials are configured for it (mcus[].auth).',
  },
  MCU_ERR_DOWN: {
    status: 503,
    description:
      'The MCU, or the conference of it the command is for, is down or unreachable (health checks failing, no control dialog): nothing was sent.',
  },
  MCU_ERR_PROTOCOL: {
    status: 502,
    description: 'The MCU answered with a body the driver cannot understand (malformed MSML or conference-info).',
  },
  MCU_ERR_INVALID_ARGUMENT: {
    status: 400,
    description:
      "A driver call was given an invalid argument (unknown layout, region out of range, bad URI, a conference URI that is not one of the MCU's).",
  },
  MCU_ERR_CLOSED: {
    status: 503,
    description: 'The MCU driver was closed, or the conference was closed (open() it again); it accepts no more work.',
  },
} as const satisfies ErrorTable;

export type McuErrorCode = keyof typeof MCU_ERRORS;

export const McuError = errorClass('McuError', MCU_ERRORS);
export type McuError = InstanceType<typeof McuError>;
