/**
 * One HTTP/1.1 request written on a fresh connection exactly as given: what `fetch` and `inject` cannot
 * send (no Content-Length on a POST, 20 KB of headers, dot segments and backslashes left as they are, a
 * method Node does not know). For tests of what a server answers before its routes run.
 */
import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The byte length of the body as received. */
  bodyBytes: number;
  /** The server closed the connection. */
  closed: boolean;
}

/**
 * The response in `raw`, after any interim ones (`100 Continue`), or null while its head or its
 * Content-Length of body is incomplete.
 */
function parseResponse(raw: Buffer, closed: boolean): RawResponse | null {
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.subarray(0, 13).toString('latin1'))) {
    const end = raw.indexOf('\r\n\r\n');
    if (end < 0) return null;
    raw = raw.subarray(end + 4);
  }
  const split = raw.indexOf('\r\n\r\n');
  if (split < 0) return null;
  const [statusLine = '', ...lines] = raw.subarray(0, split).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = raw.subarray(split + 4);
  if (!closed && body.length < Number(headers['content-length'] ?? 0)) return null;
  return {
    status: Number(statusLine.split(' ')[1]),
    headers,
    body: body.toString('utf8'),
    bodyBytes: body.length,
    closed,
  };
}

/**
 * Writes `request` to `url`'s host and port and resolves to the response: read up to its Content-Length
 * (the connection is then dropped), or, with `untilClose`, until the server closes the connection, to see
 * whether it does. Gives up after `timeoutMs`.
 */
export function rawRequest(
  url: string,
  request: string,
  opts: { untilClose?: boolean; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 5000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!opts.untilClose && parseResponse(Buffer.concat(chunks), false)) socket.destroy();
    });
    socket.on('end', () => {
      closed = true;
    });
    socket.on('error', () => {}); // a reset after the response: what was read is what counts
    socket.on('close', () => {
      clearTimeout(timer);
      const res = parseResponse(Buffer.concat(chunks), true);
      if (res) resolve({ ...res, closed });
      else reject(new Error(`no HTTP response: ${JSON.stringify(Buffer.concat(chunks).toString())}`));
    });
    socket.write(request);
  });
}

/**
 * A client that sends a request slowly (slowloris): `head` at once, then `body` one byte every
 * `intervalMs`. Resolves when the server answers or closes the connection, with how many body bytes had
 * been sent by then (fewer than the body's: the server did not wait for the rest).
 */
export function slowRequest(
  url: string,
  head: string,
  body: string,
  opts: { intervalMs: number; timeoutMs?: number },
): Promise<{ response: RawResponse | null; bodyBytesSent: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let sent = 0;
    let closed = false;
    const drip = setInterval(() => {
      if (sent >= body.length || socket.destroyed) return;
      socket.write(body[sent] as string);
      sent += 1;
    }, opts.intervalMs);
    const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 60_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => {
      closed = true;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(drip);
      clearTimeout(timer);
      const response = parseResponse(Buffer.concat(chunks), true);
      resolve({ response: response ? { ...response, closed } : null, bodyBytesSent: sent });
    });
    socket.write(head);
  });
}
