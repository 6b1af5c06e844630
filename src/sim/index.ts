/**
 * The MCU simulator: simulated MCUs on our SIP stack (faithful SIP peers for
 * the sip-msml driver), whole simulated networks from an inventory, the
 * display model, the loopback control interface of `cascaded-sim`, and that
 * process started as the daemon's child.
 */

export type { SimControlServer } from './control-server.js';
export { startSimControlServer } from './control-server.js';
export type {
  ConferenceDisplayState,
  EndpointView,
  OutputState,
  ParticipantState,
  RegionView,
  ScreenView,
} from './display.js';
export { DisplayModel, visible } from './display.js';
export type { SimErrorCode } from './errors.js';
export { SIM_ERRORS, SimError } from './errors.js';
export type { Impairment, TcpWireStats, WireStats } from './netem.js';
export { TCP_RTO_MS } from './netem.js';
export type { EndpointViewById, SimNetwork, SimNetworkOptions } from './network.js';
export { createSimNetwork, simulatedEndpointUri } from './network.js';
export type { Placement } from './placement.js';
export { endpointRoom, placeFromInventory } from './placement.js';
export type { SimulatorExit, SimulatorProcess, SimulatorProcessOptions, SimulatorReady } from './process.js';
export { spawnSimulator } from './process.js';
export type {
  SimAuth,
  SimConference,
  SimCounters,
  SimEndpointDirectory,
  SimFaults,
  SimMcu,
  SimMcuOptions,
  SimParticipant,
} from './sim-mcu.js';
export { createSimMcu, defaultInfoDelayMs, entityOf } from './sim-mcu.js';
export type { Simulator, SimulatorOptions } from './simulator.js';
export { DEFAULT_CONTROL_PORT, startSimulator } from './simulator.js';
