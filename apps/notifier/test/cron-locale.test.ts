/**
 * `fixCronLocale` (cron-locale.ts), in a fresh Node process of its own (nothing else there has asked ICU
 * for anything): once it ran, the cron-parser BullMQ uses works out a next run without luxon asking ICU
 * for the system's locale (`new Intl.DateTimeFormat()` with no locale), which is what maps ICU's
 * date-formatting data into the process. Without it, luxon asks.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const module = fileURLToPath(new URL('../src/digest/cron-locale.ts', import.meta.url));

/** Runs cron-parser as BullMQ resolves it, after `fixCronLocale` or not; what the process saw. */
function nextRun(fix: boolean): {
  systemLocaleAsked: number;
  next: string;
  rssGrowthMiB: number;
  failed?: string;
} {
  const script = `
    import { createRequire } from 'node:module';
    const Original = Intl.DateTimeFormat;
    let systemLocaleAsked = 0;
    Intl.DateTimeFormat = new Proxy(Original, {
      construct(target, args) {
        if (args[0] === undefined) systemLocaleAsked += 1;
        return Reflect.construct(target, args);
      },
    });
    const { fixCronLocale } = await import(${JSON.stringify(module)});
    const fromBullmq = createRequire(createRequire(${JSON.stringify(module)}).resolve('bullmq'));
    const { CronExpressionParser } = fromBullmq('cron-parser');
    const failed = ${fix} ? fixCronLocale() : undefined;
    const before = process.memoryUsage().rss;
    const next = CronExpressionParser.parse('0 0 8 * * 1', { tz: 'UTC', currentDate: new Date('2026-12-07T00:00:00Z') }).next();
    const rssGrowthMiB = (process.memoryUsage().rss - before) / 1048576;
    console.log(JSON.stringify({ systemLocaleAsked, next: next.toISOString(), rssGrowthMiB, failed }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out.trim());
}

it('gives cron-parser a locale, so a next run never asks ICU for the system’s', () => {
  const fixed = nextRun(true);
  const unfixed = nextRun(false);
  console.log(
    `cron next run: RSS +${fixed.rssGrowthMiB.toFixed(1)} MiB with a locale, +${unfixed.rssGrowthMiB.toFixed(1)} MiB without`,
  );
  expect(fixed.failed).toBeUndefined();
  expect(fixed).toMatchObject({ systemLocaleAsked: 0, next: '2026-12-07T08:00:00.000Z' });
  // The control: the same run without it asks, so the check above can fail.
  expect(unfixed).toMatchObject({ systemLocaleAsked: 1, next: '2026-12-07T08:00:00.000Z' });
});
