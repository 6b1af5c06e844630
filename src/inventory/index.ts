/**
 * The inventory as data (types shared by config, planner, store, drivers and
 * simulator) and the seeded generator of the demo national network.
 */
export type {
  ConnectionModel,
  Endpoint,
  Inventory,
  Level,
  Mcu,
  McuAuth,
  McuCapacity,
  McuControl,
  McuDriverName,
  McuRole,
  McuSim,
  McuSimProfile,
  Operator,
  OperatorKind,
  Province,
} from './types.js';
