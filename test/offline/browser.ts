import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

// Debian's Chromium, driven by playwright-core (which brings no browser of its own), with every request that
// leaves the machine refused and recorded: the trace page must work with no network at all.
export const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface GuardedBrowser {
  context: BrowserContext;
  page: Page;
  /** Every request the pages tried that was not to 127.0.0.1 or a file (each was refused). */
  offLoopback: string[];
  /** Uncaught errors, console errors (a Content Security Policy violation is one) and dialogs the pages opened. */
  problems: string[];
  close(): Promise<void>;
}

function isAllowed(url: string): boolean {
  if (url.startsWith('file:')) return true;
  try {
    return new URL(url).hostname === '127.0.0.1';
  } catch {
    return false;
  }
}

export async function openChromium(): Promise<GuardedBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}; the trace page's browser tests need it: apt-get install chromium`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'trace-page-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 30_000,
      viewport: { width: 1280, height: 800 },
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const offLoopback: string[] = [];
  const problems: string[] = [];
  const refuse = (url: string) => {
    if (!offLoopback.includes(url)) offLoopback.push(url);
  };
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isAllowed(url)) return route.continue();
    refuse(url);
    return route.abort('blockedbyclient');
  });
  // Requests the route does not see (a service worker's, a web socket) are still recorded.
  context.on('request', (request) => {
    if (!isAllowed(request.url())) refuse(request.url());
  });
  const watch = (page: Page) => {
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
  };
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  return {
    context,
    page,
    offLoopback,
    problems,
    close: async () => {
      try {
        await context.close();
      } finally {
        await rm(userDataDir, { recursive: true, force: true });
      }
    },
  };
}

/** A span row as the page shows it, with where its label and bar are drawn. */
export interface ShownSpan {
  spanId: string;
  parentSpanId: string;
  depth: number;
  status: string;
  name: string;
  meta: string;
  error: string;
  duration: string;
  nameX: number;
  bar: { x: number; width: number };
  track: { x: number; width: number };
  barColour: string;
  errorColour: string;
}

/** The rows of one trace, in the page's order. */
export function shownSpans(page: Page, traceId: string): Promise<ShownSpan[]> {
  return page.locator(`section.trace[data-trace-id="${traceId}"] details.span`).evaluateAll((rows) =>
    // Runs in the page (the project's types have no DOM library: the elements are untyped here).
    rows.map((element) => {
      const view = element.ownerDocument.defaultView;
      const box = (selector: string) => {
        const rect = element.querySelector(selector)!.getBoundingClientRect();
        return { x: rect.x, width: rect.width };
      };
      const text = (selector: string) => element.querySelector(selector)?.textContent ?? '';
      const error = element.querySelector('.span-error');
      return {
        spanId: element.dataset.spanId!,
        parentSpanId: element.dataset.parentSpanId!,
        depth: Number(element.dataset.depth),
        status: element.dataset.status!,
        name: text('.span-name'),
        meta: text('.span-meta'),
        error: text('.span-error'),
        duration: text('.duration'),
        nameX: element.querySelector('.span-name')!.getBoundingClientRect().x,
        bar: box('.bar'),
        track: box('.track'),
        barColour: view.getComputedStyle(element.querySelector('.bar')!).backgroundColor,
        errorColour: error ? view.getComputedStyle(error).color : '',
      };
    }),
  );
}

/** Width, height and RGBA pixels of an 8-bit PNG (what Chromium's screenshots are), decoded with zlib alone. */
export function decodePng(png: Buffer): { width: number; height: number; rgba: Uint8Array } {
  if (!png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('not a PNG');
  let offset = 8;
  let width = 0;
  let height = 0;
  let colourType = 0;
  const data: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const chunk = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = chunk.readUInt32BE(0);
      height = chunk.readUInt32BE(4);
      if (chunk[8] !== 8 || chunk[12] !== 0) throw new Error(`unsupported PNG: bit depth ${chunk[8]}, interlace ${chunk[12]}`);
      colourType = chunk[9];
    } else if (type === 'IDAT') data.push(chunk);
    else if (type === 'IEND') break;
    offset += 12 + length;
  }
  const channels = { 2: 3, 6: 4 }[colourType];
  if (!channels) throw new Error(`unsupported PNG colour type ${colourType}`);
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  // Undo each scanline's filter (none, sub, up, average, Paeth), against the line above.
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const left = x >= channels ? pixels[y * stride + x - channels] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const upLeft = y > 0 && x >= channels ? pixels[(y - 1) * stride + x - channels] : 0;
      const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter];
      if (predictor === undefined) throw new Error(`bad PNG filter ${filter}`);
      pixels[y * stride + x] = (line[x] + predictor) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let index = 0; index < width * height; index++) {
    rgba.set(pixels.subarray(index * channels, index * channels + 3), index * 4);
    rgba[index * 4 + 3] = channels === 4 ? pixels[index * channels + 3] : 255;
  }
  return { width, height, rgba };
}

function paeth(left: number, up: number, upLeft: number): number {
  const estimate = left + up - upLeft;
  const [toLeft, toUp, toUpLeft] = [Math.abs(estimate - left), Math.abs(estimate - up), Math.abs(estimate - upLeft)];
  return toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
}

/** How many distinct colours a screenshot has, and how many of its pixels are close to `rgb`. */
export function screenshotColours(png: Buffer, rgb: [number, number, number]): { width: number; height: number; distinct: number; near: number } {
  const { width, height, rgba } = decodePng(png);
  const colours = new Set<number>();
  let near = 0;
  for (let index = 0; index < rgba.length; index += 4) {
    colours.add((rgba[index] << 16) | (rgba[index + 1] << 8) | rgba[index + 2]);
    if (Math.abs(rgba[index] - rgb[0]) + Math.abs(rgba[index + 1] - rgb[1]) + Math.abs(rgba[index + 2] - rgb[2]) < 30) near++;
  }
  return { width, height, distinct: colours.size, near };
}
