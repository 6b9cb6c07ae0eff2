import { connect } from 'node:net';

/**
 * Sends commands to a Redis server over a bare TCP connection, as any process on the machine could, and
 * returns each reply's first line (`+OK`, `-NOAUTH …`, `$5`…): for tests of what a client without a
 * library, or without a credential, gets.
 */
export function rawRedis(port: number, commands: string[][], host = '127.0.0.1'): Promise<string[]> {
  const encode = (args: string[]) =>
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    let buffer = '';
    const replies: string[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error('no reply within 5 s')));
    socket.on('connect', () => socket.write(commands.map(encode).join('')));
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      // Replies here are one line each (errors, statuses, nil or small integers) or a bulk string.
      for (;;) {
        const end = buffer.indexOf('\r\n');
        if (end === -1) break;
        const line = buffer.slice(0, end);
        let consumed = end + 2;
        if (line.startsWith('$') && Number(line.slice(1)) >= 0) {
          const size = Number(line.slice(1));
          if (buffer.length < consumed + size + 2) break;
          consumed += size + 2;
        }
        replies.push(line);
        buffer = buffer.slice(consumed);
      }
      if (replies.length >= commands.length) {
        socket.end();
        resolve(replies);
      }
    });
    socket.on('error', reject);
  });
}
