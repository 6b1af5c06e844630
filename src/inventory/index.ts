/**
 * The inventory as data (types shared by config, planner, store, drivers and
 * simulator), the addressing of an MCU's conferences, and the seeded generator
 * of the demo national network.
 */
export { conferenceKey, conferenceUris, MAX_ROOMS, ROOM_PLACEHOLDER, roomUris } from './conferences.js';
export type {
  ConnectionModel,
  Endpoint,
  Inventory,
  Level,
  Mcu,
  McuAuth,
  McuCapacity,
  McuConferences,
  McuControl,
  McuDriverName,
  McuRole,
  McuRoomList,
  McuRoomRange,
  McuSim,
  McuSimProfile,
  Operator,
  OperatorKind,
  Province,
} from './types.js';
