/**
 * Clients that behave like the public RealWorld clients atoll is judged by, and the contract they check:
 * - `jarClient`: what Postman (newman) and Bruno do — a cookie jar that keeps every cookie the API sets
 *   and sends it back on every request, `Content-Type: application/json` on every request whatever its
 *   method or body, and `Authorization: Token …` once the collection has a token. No `Origin`, no
 *   `Sec-Fetch-Site`: it is not a browser.
 * - `contract`: the response schemas of the public RealWorld contract (api/openapi.yml of
 *   https://github.com/realworld-apps/realworld, found by contract.ts), checked with ajv, so a body is
 *   judged by the public contract rather than by what atoll happens to send. Only where it is found.
 */
import type { ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { readContract } from './contract.ts';

export interface JarResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface JarClient {
  (
    method: string,
    path: string,
    opts?: { body?: unknown; token?: string | null; headers?: Record<string, string> },
  ): Promise<JarResponse>;
  /** The cookies the jar holds, by name. */
  cookies: Map<string, string>;
}

export function jarClient(baseUrl: string): JarClient {
  const cookies = new Map<string, string>();
  const call = async (
    method: string,
    path: string,
    opts: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
  ): Promise<JarResponse> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
    if (opts.token) headers.authorization = `Token ${opts.token}`;
    if (cookies.size > 0) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const expired = attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (expired) cookies.delete(name);
      else cookies.set(name, pair.slice(eq + 1).trim());
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body, headers: res.headers };
  };
  return Object.assign(call, { cookies });
}

/** Checks response bodies against the RealWorld contract's schema for an operation and status. */
export function contract() {
  const doc = readContract();
  // Every `$ref` points into the document, which ajv knows by this id.
  const rewritten = JSON.parse(JSON.stringify(doc).replaceAll('"$ref":"#/', '"$ref":"realworld#/'));
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('date-time', (s: string) => /^\d{4}-\d\d-\d\dT/.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addSchema({ $id: 'realworld', ...rewritten });
  const compiled = new Map<string, ValidateFunction>();
  const deref = (node: any): any => {
    if (!node?.$ref) return node;
    const path = String(node.$ref).replace('realworld#/', '').split('/');
    return deref(path.reduce((at: any, part) => at?.[part.replaceAll('~1', '/')], rewritten));
  };
  /** The problems of `body` as the answer `status` to `method path` (a path of the contract), or []. */
  return (method: string, path: string, status: number, body: unknown): string[] => {
    const id = `${method} ${path} ${status}`;
    if (!compiled.has(id)) {
      const operation = rewritten.paths?.[path.replace(/^\/api/, '')]?.[method.toLowerCase()];
      if (!operation) return [`${method} ${path} is not in the contract`];
      const response = deref(operation.responses?.[String(status)]);
      if (!response) return [`${status} is not an answer the contract names for ${method} ${path}`];
      const schema = response.content?.['application/json']?.schema;
      if (!schema) return body === null || body === '' ? [] : ['the contract names no body for it'];
      compiled.set(id, ajv.compile(schema));
    }
    const validate = compiled.get(id) as ValidateFunction;
    return validate(body)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? ''}`);
  };
}
