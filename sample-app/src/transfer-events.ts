/** The event a committed transfer publishes, for `@EventPattern(TRANSFER_COMPLETED)` handlers. */
export const TRANSFER_COMPLETED = 'transfer.completed';

export interface TransferCompleted {
  from: string;
  to: string;
  amount: number;
}
