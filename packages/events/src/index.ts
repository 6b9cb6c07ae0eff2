export {
  CURRENT_VERSION,
  EVENT_SCHEMAS,
  type EventPayload,
  type EventPayloads,
  type EventType,
  type EventVersions,
} from './catalog.ts';
export { type DecodedEvent, decodeEvent, encodeEvent, isEventType } from './codec.ts';
export {
  type ConsumerLog,
  StreamConsumer,
  type StreamConsumerOptions,
  type StreamEvent,
} from './consumer.ts';
export {
  type DecodedLiveMessage,
  decodeCatchUpPage,
  decodeLiveMessage,
  encodeLiveMessage,
  LIVE_MESSAGE_VERSION,
  type LiveMessage,
  type LiveNotification,
  LiveNotificationSchema,
} from './live.ts';
export { publishUserEvent, USER_EVENTS_MAXLEN } from './publish.ts';
