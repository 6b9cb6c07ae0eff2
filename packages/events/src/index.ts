export {
  CURRENT_VERSION,
  EVENT_SCHEMAS,
  type EventPayload,
  type EventPayloads,
  type EventType,
} from './catalog.ts';
export { type DecodedEvent, decodeEvent, encodeEvent, isEventType } from './codec.ts';
export { publishUserEvent, USER_EVENTS_MAXLEN } from './publish.ts';
