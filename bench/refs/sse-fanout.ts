// Reference: raw server-sent events on node:http, nothing else. GET /events holds a stream open;
// POST /publish writes one event to every stream held and answers how many; GET /memory answers this
// process's memory after a full GC (NODE_OPTIONS=--expose-gc), to work out the memory per stream.
import { createServer, type ServerResponse } from 'node:http';

const streams = new Set<ServerResponse>();
const collect = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

createServer((req, res) => {
  if (req.url === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': open\n\n');
    streams.add(res);
    req.on('close', () => streams.delete(res));
    return;
  }
  if (req.url === '/publish' && req.method === 'POST') {
    const event = `data: ${JSON.stringify({ at: Date.now() })}\n\n`;
    for (const stream of streams) stream.write(event);
    res.end(String(streams.size));
    return;
  }
  if (req.url === '/memory') {
    collect();
    const { rss, heapUsed } = process.memoryUsage();
    res.end(JSON.stringify({ streams: streams.size, rss, heapUsed }));
    return;
  }
  res.writeHead(404).end();
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log(JSON.stringify({ msg: 'listening' })));
