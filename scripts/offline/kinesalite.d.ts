// kinesalite ships no types: the part the offline stack uses.
declare module 'kinesalite' {
  import type { Server } from 'node:http';

  interface KinesaliteOptions {
    /** Milliseconds a stream stays CREATING (default 500). */
    createStreamMs?: number;
    deleteStreamMs?: number;
    updateStreamMs?: number;
    /** Shards across all streams at most (default 10). */
    shardLimit?: number;
    /** A LevelDB folder; none keeps the streams in memory. */
    path?: string;
    ssl?: boolean;
  }

  /** An HTTP server answering the Kinesis API; `listen` it, and `close` it to drop its streams. */
  function kinesalite(options?: KinesaliteOptions): Server;
  export = kinesalite;
}
