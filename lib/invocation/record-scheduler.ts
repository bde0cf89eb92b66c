// When each record of a batch runs, and which records a batch response reports: the order kept per ordering key
// (an SQS FIFO message group, a stream's shard), the concurrency option, and what a failure does to the records
// after it.

/**
 * What a failed record means for the records after it that share its ordering key; none of them runs:
 * - `report-rest`: each is reported with the failed one (SQS FIFO: every message is retried by its own id);
 * - `retry-from`: only the failed record is reported, since the source retries from it on (Kinesis and DynamoDB
 *   Streams: its sequence number).
 * Records without an ordering key are independent: a failure reports that record alone.
 */
export type AfterFailure = 'report-rest' | 'retry-from';

interface RecordSchedule {
  /** How many records run at once (at most one per ordering key; 1 or less: one after another). */
  concurrency: number;
  /** The ordering key of record `index`; undefined (the function): every record is independent. */
  keyOf: ((index: number) => string) | undefined;
  afterFailure: AfterFailure;
}

/** What the scheduler runs: one record's handler, and what to do once it settled. */
interface RecordRun {
  /** Starts record `index`: its handler's promise (rejected: the record failed). */
  start(index: number): Promise<unknown>;
  /** Record `index` has settled (`failed` with `error`, or not). */
  settled(index: number, failed: boolean, error: unknown): void;
}

/**
 * Runs the records as `schedule` says; resolves to the indexes of the records to report, in record order. The
 * records of one ordering key form a lane, run in batch order and ended by a failure; a record without a key is a
 * lane of its own. Lanes start in the order of their first record, `concurrency` at a time. Each handler's promise
 * is awaited by the loop itself: one await per record, as a hand-written loop would have.
 */
export async function scheduleRecords(count: number, { concurrency, keyOf, afterFailure }: RecordSchedule, run: RecordRun): Promise<number[]> {
  const lanes: number[][] = [];
  const laneOfKey = new Map<string, number[]>();
  for (let index = 0; index < count; index++) {
    const key = keyOf?.(index);
    let lane = key === undefined ? undefined : laneOfKey.get(key);
    if (!lane) {
      lanes.push((lane = []));
      if (key !== undefined) laneOfKey.set(key, lane);
    }
    lane.push(index);
  }
  const reported: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < lanes.length) {
      const lane = lanes[next++];
      for (let position = 0; position < lane.length; position++) {
        const index = lane[position];
        try {
          await run.start(index);
          run.settled(index, false, undefined);
          continue;
        } catch (error) {
          run.settled(index, true, error);
        }
        reported.push(...(afterFailure === 'report-rest' ? lane.slice(position) : [index]));
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(concurrency, 1), lanes.length) }, worker));
  return reported.sort((a, b) => a - b);
}
