/** The sans-IO core's entry point, in one place. */
export { createH3Connection } from '../core/index.js';
