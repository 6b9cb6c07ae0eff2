/**
 * The client address a rate limit (and the live streams' per-address cap) counts: an IPv4 address as it
 * is, an IPv6 address grouped by its /64 (one host is usually given a whole /64, so counting single IPv6
 * addresses would count nothing), an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack
 * socket reports) as its IPv4 address. IPv6 is written in its RFC 5952 form, so one /64 is one key.
 */

/** The eight 16-bit groups of an IPv6 address (zone id dropped), or null when it is not one. */
function ipv6Groups(ip: string): number[] | null {
  let text = ip;
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // An IPv4 address in the last 32 bits: written as the two groups it is.
    const octets = text.slice(lastColon + 1).split('.');
    if (octets.length !== 4 || !octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255)) return null;
    const [a, b, c, d] = octets.map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string) => (part === '' ? [] : part.split(':'));
  const head = parse(halves[0] as string);
  const tail = halves.length === 2 ? parse(halves[1] as string) : [];
  if (![...head, ...tail].every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return null;
  const known = head.length + tail.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return null;
  const numbers = (groups: string[]) => groups.map((g) => Number.parseInt(g, 16));
  return [...numbers(head), ...new Array<number>(8 - known).fill(0), ...numbers(tail)];
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups (the first) as `::`. */
function ipv6Text(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** The address a limit counts (see above); anything that is not an IP address is returned as it is. */
export function limitAddress(ip: string): string {
  if (!ip.includes(':')) return ip.toLowerCase();
  const groups = ipv6Groups(ip);
  if (groups === null) return ip.toLowerCase();
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) {
    const [c = 0, d = 0] = groups.slice(6);
    return `${c >> 8}.${c & 0xff}.${d >> 8}.${d & 0xff}`;
  }
  return ipv6Text([...groups.slice(0, 4), 0, 0, 0, 0]);
}
