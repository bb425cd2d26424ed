import { InFlightCommands } from '../../lib/connection/in-flight-commands.js';

interface Sent {
  id: number;
  answered: boolean;
}

const sent = (count: number, from = 0): Sent[] =>
  Array.from({ length: count }, (_, i) => ({ id: from + i, answered: false }));
const ids = (ring: InFlightCommands<Sent>) => ring.list().map((c) => c.id);
const answered = (c: Sent) => c.answered;

describe('InFlightCommands, the ring of commands a CommandGuard watches', () => {
  it('keeps commands oldest first across wrap-arounds and growth, and empties answered ones at the front', () => {
    const ring = new InFlightCommands<Sent>();
    let next = 0;
    const all: Sent[] = [];
    // Enough rounds to wrap the ring many times, and enough at once to make it grow.
    for (let round = 0; round < 50; round++) {
      const batch = sent(round % 7 === 0 ? 40 : 5, next);
      next += batch.length;
      for (const c of batch) ring.add(c, round);
      all.push(...batch);
      // All but the last three of what is listed get answered, in order.
      const open = all.filter((c) => !c.answered);
      for (const c of open.slice(0, -3)) c.answered = true;
      ring.dropAnsweredFront(answered);
      expect(ids(ring)).toEqual(open.slice(-3).map((c) => c.id));
    }
  });

  it('stops at the first unanswered command, and a failed one leaves a hole the front skips', () => {
    const ring = new InFlightCommands<Sent>();
    const [a, b, c, d] = sent(4);
    for (const command of [a!, b!, c!, d!]) ring.add(command, 0);
    b!.answered = true;
    ring.dropAnsweredFront(answered);
    expect(ids(ring)).toEqual([0, 1, 2, 3]);
    ring.delete(a!);
    ring.dropAnsweredFront(answered);
    expect(ids(ring)).toEqual([2, 3]);
  });

  it('sweeps: keeps what it is told, with the sweep each was sent in, packed and in order', () => {
    const ring = new InFlightCommands<Sent>();
    const commands = sent(20);
    commands.forEach((c, i) => ring.add(c, i % 4));
    const seen: [number, number][] = [];
    ring.retain((c, sweep) => {
      seen.push([c.id, sweep]);
      return c.id % 3 === 0;
    });
    expect(seen).toEqual(commands.map((c, i) => [c.id, i % 4]));
    expect(ids(ring)).toEqual([0, 3, 6, 9, 12, 15, 18]);
    ring.add({ id: 99, answered: false }, 9);
    expect(ring.takeAll().map((c) => c.id)).toEqual([0, 3, 6, 9, 12, 15, 18, 99]);
    expect(ring.isEmpty).toBe(true);
    expect(ids(ring)).toEqual([]);
  });
});
