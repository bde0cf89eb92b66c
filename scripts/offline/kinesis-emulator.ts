/**
 * Kinesis Data Streams offline: kinesalite (an in-memory emulator from the registry) on loopback, with every stream
 * serverless.yml declares, and the SDK client that talks to it.
 */
import { CreateStreamCommand, DescribeStreamSummaryCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import kinesalite from 'kinesalite';
import { setTimeout as sleep } from 'node:timers/promises';
import { kinesisClientOptions } from '../../functions/config';
import type { DeclaredStream } from './service';

export interface KinesisEmulator {
  endpoint: string;
  close(): Promise<void>;
}

/** A client for the emulator, made as the functions make theirs offline (HTTP/1.1: kinesalite speaks no HTTP/2). */
export function offlineKinesisClient(endpoint: string, region: string): KinesisClient {
  return new KinesisClient({ region, maxAttempts: 1, ...kinesisClientOptions(endpoint) });
}

/** Starts kinesalite on 127.0.0.1:`port` and creates `streams` (each ACTIVE when this resolves). */
export async function startKinesisEmulator(streams: DeclaredStream[], port: number, region: string): Promise<KinesisEmulator> {
  // Streams are ACTIVE at once; the shard limit is the account's default, not kinesalite's 10.
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 500 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  const client = offlineKinesisClient(endpoint, region);
  try {
    for (const stream of streams) {
      // An on-demand stream is one shard here (kinesalite knows no stream modes).
      await client.send(new CreateStreamCommand({ StreamName: stream.name, ShardCount: stream.shardCount }));
      await waitUntilActive(client, stream.name);
    }
    return { endpoint, close };
  } catch (error) {
    await close();
    throw error;
  } finally {
    client.destroy();
  }
}

async function waitUntilActive(client: KinesisClient, streamName: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { StreamDescriptionSummary } = await client.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
    if (StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await sleep(20);
  }
  throw new Error(`the Kinesis emulator did not make ${streamName} ACTIVE within 2 s`);
}
