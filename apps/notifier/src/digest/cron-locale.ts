/**
 * BullMQ works out a cron schedule's next run with cron-parser, which computes dates with luxon. Unless
 * told a locale, luxon asks ICU for the system's (`new Intl.DateTimeFormat().resolvedOptions()`), and
 * that one call maps about 8 MiB of ICU's date-formatting data out of the Node binary into the process,
 * for good. Next runs do not depend on a locale (no date is formatted for a reader), so the notifier
 * gives luxon one: about 0.7 MiB is touched instead (bench/README.md, "Memory").
 *
 * The luxon set here must be cron-parser's own: it is reached through BullMQ and cron-parser, as they
 * resolve it (CommonJS, which cron-parser loads; luxon's ES module build would be another instance). If
 * that ever fails (another layout of node_modules), nothing changes but the memory: the reason is
 * returned for the log.
 */
import { createRequire } from 'node:module';

export const CRON_LOCALE = 'en-US';

/** Sets cron-parser's luxon's default locale; a reason when it could not. */
export function fixCronLocale(): string | undefined {
  try {
    const fromBullmq = createRequire(createRequire(import.meta.url).resolve('bullmq'));
    const fromCronParser = createRequire(fromBullmq.resolve('cron-parser'));
    const { Settings } = fromCronParser('luxon') as { Settings: { defaultLocale: string | null } };
    Settings.defaultLocale = CRON_LOCALE;
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
