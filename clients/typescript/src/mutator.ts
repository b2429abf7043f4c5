//! The one place every generated request passes through (orval's "custom mutator"): it adds the base URL, the API
//! key and a 60-second timeout. Zero-config: `RUNBOX_URL` (default http://127.0.0.1:8080) and `RUNBOX_API_KEY` from
//! the environment under Node; `configure()` overrides them (in a browser, call it).

import axios, { AxiosError, AxiosRequestConfig } from 'axios';

export interface RunboxConfig {
  /** Server URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** API key, sent as `Authorization: Bearer <key>`; none when undefined. */
  apiKey?: string;
  /** Per-request timeout in milliseconds (default 60 000). */
  timeoutMs: number;
}

const env: Record<string, string | undefined> =
  typeof process !== 'undefined' && process.env ? process.env : {};

const config: RunboxConfig = {
  baseUrl: env.RUNBOX_URL || 'http://127.0.0.1:8080',
  apiKey: env.RUNBOX_API_KEY || undefined,
  timeoutMs: 60_000,
};

/** Changes where and how requests go; fields left out keep their values. */
export function configure(options: Partial<RunboxConfig>): RunboxConfig {
  Object.assign(config, options);
  return { ...config };
}

/** The configuration in force (a copy). */
export function currentConfig(): RunboxConfig {
  return { ...config };
}

/** Headers carrying the API key, for the hand-written SSE and WebSocket helpers too. */
export function authHeaders(): Record<string, string> {
  return config.apiKey ? { Authorization: `Bearer ${config.apiKey}` } : {};
}

export const axiosInstance = axios.create();

/** Called by every generated operation: resolves to the response body, rejects with an AxiosError. */
export const runboxRequest = <T>(request: AxiosRequestConfig, options?: AxiosRequestConfig): Promise<T> => {
  const merged: AxiosRequestConfig = {
    baseURL: config.baseUrl,
    timeout: config.timeoutMs,
    ...request,
    ...options,
    headers: { ...authHeaders(), ...request.headers, ...options?.headers },
  };
  return axiosInstance.request<T>(merged).then((response) => response.data);
};

/** The error type of generated operations: an AxiosError whose `response.data` is the server's `{code, message}`. */
export type ErrorType<E> = AxiosError<E>;

/** The request body type of generated operations. */
export type BodyType<B> = B;
