import type { TablecacheConfig } from './configSchema.ts';

/** How the daemon learns of changes, resolved. */
export interface CaptureSettings {
  readonly method: 'triggers' | 'logical';
  readonly slot: string;
  readonly publication: string;
}

/** The configuration's `capture` section, with its defaults (the trigger channel's name for slot and publication). */
export function captureSettings(config: TablecacheConfig): CaptureSettings {
  const capture = (config as { capture?: Partial<CaptureSettings> }).capture ?? {};
  const fallback = config.triggers.channel;
  return { method: capture.method ?? 'triggers', slot: capture.slot ?? fallback, publication: capture.publication ?? fallback };
}
