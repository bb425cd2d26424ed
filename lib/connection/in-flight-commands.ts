/**
 * The commands a CommandGuard watches, oldest first, each with the sweep it
 * was sent in: a ring of slots, each cleared as soon as its command is
 * answered or failed.
 *
 * Not a Map: entries added at one end and deleted at the other make a Map
 * rehash into a new table over and over, and a discarded table that had
 * reached the old generation still pointed at the answered commands it held
 * (with their arguments, promises and replies). The young-generation
 * collector treats whatever the old generation points at as alive, so those
 * survived, were promoted in turn and kept the next ones alive: with 64 lock
 * cycles in flight about 1.8 MB survived every scavenge instead of 0.3 MB,
 * and the process spent more CPU per cycle on garbage collection than on
 * the cycle. A ring's slots are overwritten in place and emptied at once.
 */
export class InFlightCommands<C extends object> {
  private commands: (C | undefined)[] = new Array<C | undefined>(16).fill(undefined);
  private sentIn: number[] = new Array<number>(16).fill(0);
  private head = 0;
  /** Slots in use from `head`, holes (failed out of order) included. */
  private used = 0;

  get isEmpty(): boolean {
    return this.used === 0;
  }

  /** The commands watched now, oldest first. */
  list(): C[] {
    const listed: C[] = [];
    const mask = this.commands.length - 1;
    for (let i = 0; i < this.used; i++) {
      const command = this.commands[(this.head + i) & mask];
      if (command !== undefined) listed.push(command);
    }
    return listed;
  }

  add(command: C, sweep: number): void {
    if (this.used === this.commands.length) this.grow();
    const slot = (this.head + this.used) & (this.commands.length - 1);
    this.commands[slot] = command;
    this.sentIn[slot] = sweep;
    this.used++;
  }

  /** Empties the slots at the front whose commands are answered: replies come in the order commands were sent. */
  dropAnsweredFront(answered: (command: C) => boolean): void {
    const mask = this.commands.length - 1;
    while (this.used > 0) {
      const command = this.commands[this.head];
      if (command !== undefined && !answered(command)) return;
      this.commands[this.head] = undefined;
      this.head = (this.head + 1) & mask;
      this.used--;
    }
  }

  /** Forgets one command wherever it is (it failed), leaving a hole that the front skips. */
  delete(command: C): void {
    const mask = this.commands.length - 1;
    for (let i = 0; i < this.used; i++) {
      const slot = (this.head + i) & mask;
      if (this.commands[slot] === command) {
        this.commands[slot] = undefined;
        return;
      }
    }
  }

  /**
   * Keeps the commands `keep` says to, oldest first, packed at the front;
   * `keep` is given each one with the sweep it was sent in.
   */
  retain(keep: (command: C, sentIn: number) => boolean): void {
    const mask = this.commands.length - 1;
    let kept = 0;
    for (let i = 0; i < this.used; i++) {
      const from = (this.head + i) & mask;
      const command = this.commands[from];
      this.commands[from] = undefined;
      if (command === undefined || !keep(command, this.sentIn[from]!)) continue;
      const to = (this.head + kept) & mask;
      this.commands[to] = command;
      this.sentIn[to] = this.sentIn[from]!;
      kept++;
    }
    this.used = kept;
  }

  /** Every command, oldest first, and empties the ring. */
  takeAll(): C[] {
    const all: C[] = [];
    this.retain((command) => {
      all.push(command);
      return false;
    });
    this.head = 0;
    return all;
  }

  private grow(): void {
    const size = this.commands.length;
    const commands = new Array<C | undefined>(size * 2).fill(undefined);
    const sentIn = new Array<number>(size * 2).fill(0);
    for (let i = 0; i < this.used; i++) {
      commands[i] = this.commands[(this.head + i) & (size - 1)];
      sentIn[i] = this.sentIn[(this.head + i) & (size - 1)]!;
    }
    this.commands = commands;
    this.sentIn = sentIn;
    this.head = 0;
  }
}
