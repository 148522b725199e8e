import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { untilDoneOrAborted } from '../../src/component/types.ts';

describe('untilDoneOrAborted (how shutdowns meet their deadline)', () => {
  it('gives up at once when the signal has already aborted, and still waits for the work', async () => {
    const order: string[] = [];
    const result = await untilDoneOrAborted(AbortSignal.abort(), () => order.push('give up'), async () => {
      order.push('work begun');
      await sleep(5);
      order.push('work done');
      return 42;
    });
    expect(result).toBe(42);
    expect(order).toEqual(['work begun', 'give up', 'work done']);
  });

  it('gives up when the signal aborts before the work ends, once', async () => {
    const ctl = new AbortController();
    let gaveUp = 0;
    let release!: () => void;
    const waiting = untilDoneOrAborted(ctl.signal, () => {
      gaveUp++;
      release();
    }, () => new Promise<void>((resolve) => (release = resolve)));
    await sleep(5);
    expect(gaveUp).toBe(0);
    ctl.abort();
    await waiting;
    ctl.signal.dispatchEvent(new Event('abort'));
    expect(gaveUp).toBe(1);
  });

  it('never gives up for work that ended first, nor after it (the listener is gone)', async () => {
    const ctl = new AbortController();
    let gaveUp = 0;
    await untilDoneOrAborted(ctl.signal, () => gaveUp++, async () => 'done');
    ctl.abort();
    expect(gaveUp).toBe(0);
  });

  it("passes the work's failure on", async () => {
    await expect(untilDoneOrAborted(new AbortController().signal, () => {}, () => Promise.reject(new Error('close failed')))).rejects.toThrow('close failed');
  });
});
