/** Native libraries reached through FFI (koffi). */
export type { NotifierOptions, SystemdNotifier } from './systemd.js';
export { createSystemdNotifier } from './systemd.js';
