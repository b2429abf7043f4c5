//! The package's entry point: the generated operations (`getRunbox()`), their types, the configuration, and the
//! hand-written SSE and WebSocket helpers.

export * from './generated/runbox';
export * from './generated/runbox.schemas';
export { configure, currentConfig, runboxRequest } from './mutator';
export type { RunboxConfig, ErrorType, BodyType } from './mutator';
export * from './events';
