import Value from 'typebox/value';
import { CURRENT_VERSION, EVENT_SCHEMAS, type EventPayload, type EventType } from './catalog.ts';

export type DecodedEvent =
  | { ok: true; type: EventType; version: number; payload: unknown }
  | { ok: false; reason: string };

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_SCHEMAS, type);
}

/** Validates a payload against the current schema and returns the Stream fields to append. */
export function encodeEvent<T extends EventType>(type: T, payload: EventPayload<T>): string[] {
  const version = CURRENT_VERSION[type];
  const schema = EVENT_SCHEMAS[type][version];
  if (!schema || !Value.Check(schema, payload)) {
    const first = schema ? [...Value.Errors(schema, payload)][0] : undefined;
    throw new TypeError(
      `invalid ${type} v${version} payload: ${first?.instancePath ?? ''} ${first?.message ?? 'unknown'}`,
    );
  }
  return ['type', type, 'v', String(version), 'data', JSON.stringify(payload)];
}

/**
 * Reads a Stream entry's fields. Accepts the current and the previous version of a known event type;
 * anything else (unknown type, too old or too new a version, a payload that does not match its schema)
 * comes back with the reason, for the consumer to log and skip.
 */
export function decodeEvent(fields: string[]): DecodedEvent {
  const map: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i] as string] = fields[i + 1] as string;
  const type = map.type ?? '';
  const version = Number(map.v);
  if (!isEventType(type)) return { ok: false, reason: `unknown event type ${JSON.stringify(type)}` };
  const current = CURRENT_VERSION[type];
  if (version !== current && version !== current - 1) {
    return { ok: false, reason: `${type} v${map.v} is not accepted (current is v${current})` };
  }
  const schema = EVENT_SCHEMAS[type][version];
  let payload: unknown;
  try {
    payload = JSON.parse(map.data ?? '');
  } catch {
    return { ok: false, reason: `${type} v${version}: data is not JSON` };
  }
  if (!schema || !Value.Check(schema, payload))
    return { ok: false, reason: `${type} v${version}: payload does not match its schema` };
  return { ok: true, type, version, payload };
}
