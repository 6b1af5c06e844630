/**
 * Which config a command loads when none is given, and from where its relative paths are taken.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfigFile } from '../config/index.js';

/** This installation: the package root. */
const INSTALL_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The embedded default: the simulated national network. */
export const DEFAULT_CONFIG = resolve(INSTALL_ROOT, 'config/demo.yaml');

/**
 * Load a command's config (the embedded demo by default). Relative paths in a config file (secret files, the
 * state directory) are taken from the working directory, as a service's WorkingDirectory= sets it; those of
 * the embedded demo from this installation, so that `cascaded session list` run from any directory finds the
 * demo's secret file and the store of the demo daemon (`npm start`, which runs at the root).
 */
export function loadCommandConfig(file: string = DEFAULT_CONFIG): Promise<Config> {
  return resolve(file) === DEFAULT_CONFIG ? loadConfigFile(file, { cwd: INSTALL_ROOT }) : loadConfigFile(file);
}
