/**
 * MCU drivers (design section 2): the McuDriver interface and the
 * standards-based `sip-msml` driver. Body codecs are exported for the
 * simulator, which speaks the same standards from the MCU's side.
 */
export type { ConferenceInfo, ConferenceUser, ParticipantKind, ParticipantStatus } from './conference-info.js';
export { buildConferenceInfo, CONFERENCE_INFO_CONTENT_TYPE, parseConferenceInfo } from './conference-info.js';
export type { McuErrorCode } from './errors.js';
export { MCU_ERRORS, McuError } from './errors.js';
export type { LayoutName, Region } from './layouts.js';
export { isLayoutName, LAYOUT_NAMES, layoutRegions } from './layouts.js';
export { buildPictureFastUpdate, MEDIA_CONTROL_CONTENT_TYPE, parsePictureFastUpdate } from './media-control.js';
export type { MsmlCommand, MsmlResult, OutputSwitch } from './msml.js';
export {
  buildMsml,
  buildResult,
  buildSwitch,
  MSML_CONTENT_TYPE,
  parseMsml,
  parseMsmlRequest,
  parseResult,
} from './msml.js';
export type { McuPool, McuPoolOptions, SecretsReload } from './pool.js';
export { startMcuPool } from './pool.js';
export type { SipMsmlDriver, SipMsmlDriverOptions } from './sip-msml-driver.js';
export { createSipMsmlDriver } from './sip-msml-driver.js';
export type {
  Conference,
  ConferenceEvents,
  ConferenceStateName,
  LinkState,
  LinkStateName,
  McuCapabilities,
  McuDriver,
  McuDriverEvents,
  McuHealth,
  McuLack,
  OpenOptions,
  QualityReport,
  ReferMode,
  RosterEntry,
  RosterUpdate,
  SwitchOptions,
  SwitchTiming,
} from './types.js';
export type { VqMetrics, VqReport, VqReportType } from './vq-rtcpxr.js';
export {
  buildVqReport,
  parseVqReport,
  uriOfId,
  VQ_RTCPXR_CONTENT_TYPE,
  VQ_RTCPXR_EVENT,
} from './vq-rtcpxr.js';
