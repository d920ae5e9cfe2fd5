import type { Logger } from '../lib/core/logger.ts';

/** What a {@link WriterLeaseGroup} needs of one table ({@link TableSync} in the daemon). */
export interface LeaseGroupMember {
  readonly name: string;
  /** Whether the table's writer still holds its lease. */
  writable(): Promise<boolean>;
  /**
   * Closes the writer and opens a new one, taking the lease; with `standby`
   * waiting for it, without resolving to false (no writer then) when another
   * daemon holds it.
   */
  reopenWriter(standby: boolean): Promise<boolean>;
  /** Gives the lease up now, even with a step of the table in flight; the table must be reloaded after {@link reopenWriter}. */
  giveUpWriter(): Promise<void>;
}

/** Options of a {@link WriterLeaseGroup}. */
export interface WriterLeaseGroupOptions {
  readonly logger: Logger;
  /** Asks for a reload of a table whose writer the group replaced (its published data is another writer's now). */
  readonly requestReload: (table: string, reason: string) => void;
}

/**
 * The writer leases of one daemon's tables, held as one: a daemon writes
 * every table of its configuration or none, and waits for leases only in
 * configuration order, as its start does.
 *
 * A writer that lost its lease (Redis lost the table's keys, or a pause let
 * it lapse) takes it back at once when it is free. When another daemon took
 * it meanwhile, waiting for it while still holding the other tables could
 * wait for ever: after a Redis restart a starting standby took `users` and
 * waited for `accounts`, which the running daemon had taken back and held
 * while it waited for `users`; both renewed what they held, neither loaded,
 * and no barrier could be marked (it needs every table). So this daemon gives
 * every lease up instead and waits for all of them, in order, as a standby.
 */
export class WriterLeaseGroup {
  private readonly members: LeaseGroupMember[] = [];
  /** Replacements run one at a time. */
  private running: Promise<void> = Promise.resolve();
  /** Set from giving the leases up until every one is held again: a failed wait resumes in order. */
  private steppingDown = false;

  constructor(private readonly options: WriterLeaseGroupOptions) {}

  /** Adds a table whose writer holds its lease; tables are added in configuration order. */
  add(member: LeaseGroupMember): void {
    this.members.push(member);
  }

  /**
   * Gives `member` a writer holding the lease again (nothing to do when it
   * has one): takes the lease back if it is free, else gives up every table
   * and waits for all of them. Rejects when Redis fails meanwhile; the next
   * call resumes.
   */
  replace(member: LeaseGroupMember): Promise<void> {
    const next = this.running.then(() => this.replaceNow(member));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async replaceNow(member: LeaseGroupMember): Promise<void> {
    if (await member.writable()) return;
    if (!this.steppingDown) {
      this.options.logger.warn({ table: member.name }, 'the writer lost its lease; opening a new writer');
      if (await member.reopenWriter(false)) return;
      this.options.logger.warn(
        { table: member.name, tables: this.members.map((table) => table.name) },
        'another daemon holds the writer lease of a table: giving every table up and waiting for all of them as a standby',
      );
      this.steppingDown = true;
      for (const table of this.members) await table.giveUpWriter();
    }
    for (const table of this.members) {
      if (await table.writable()) continue;
      await table.reopenWriter(true);
      if (table !== member) this.options.requestReload(table.name, 'this daemon gave its writer leases up and took them back (another daemon had taken one)');
    }
    this.steppingDown = false;
  }
}
