import { RedisTxError } from './redis-tx.error.js';

/**
 * Why a command on one of the library's own connections was failed without
 * an answer from Redis:
 * - `closed`: the connection closed (or was dropped after a failover) before
 *   the reply arrived;
 * - `silent`: Redis sent nothing back for `commandTimeoutMs`, so the
 *   connection was dropped;
 * - `unreachable`: the command waited `commandTimeoutMs` for a connection
 *   and was never written.
 */
export type ConnectionLossReason = 'closed' | 'silent' | 'unreachable';

/**
 * A command sent on one of the library's own connections got no reply. For a
 * command that changes data, whether Redis applied it is unknown (except for
 * `unreachable`, which was never sent). The library turns this into the
 * error of what it was doing (a conflict before EXEC, outcome unknown after);
 * it reaches your code only from a command you ran yourself on
 * `RedisTx.client` inside a WATCH transaction.
 */
export class ConnectionLostError extends RedisTxError {
  constructor(
    message: string,
    readonly reason: ConnectionLossReason,
  ) {
    super(message);
  }
}
