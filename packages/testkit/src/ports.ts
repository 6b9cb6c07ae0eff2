import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The first port of the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range),
 * from which it picks the local port of every outgoing connection; 32768 where it cannot be read.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` can be listened on at 127.0.0.1 now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port that was free on 127.0.0.1 a moment ago, at random **below the kernel's ephemeral range**
 * (no fixed test ports). A port in that range, left free while its server restarts (a redeploy, a
 * Redis failover), can be taken meanwhile as the local port of an outgoing connection, and a client
 * connecting to it then connects to itself (TCP simultaneous open): it reads its own request back and
 * waits for an answer that never comes.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralLow();
  for (let i = 0; i < 100; i += 1) {
    const port = 20_000 + Math.floor(Math.random() * (top - 20_000));
    if (await isFree(port)) return port;
  }
  throw new Error(`no free port between 20000 and ${top}`);
}
