import type { LogicalCaptureSpec } from '../../sql-triggers/logicalCaptureSpec.ts';
import type { TablecacheConfig } from './configSchema.ts';
import { triggerSpecFromConfig } from './triggerSpecFromConfig.ts';

/**
 * The logical capture input for a configuration (whatever `capture.method`
 * says: uninstall and the switch between methods need it either way): its
 * slot and publication, and each source table once, merged across cached
 * tables as for the triggers (union of key columns; a column filter only when
 * every cached table filters).
 */
export function logicalCaptureSpecFromConfig(config: TablecacheConfig): LogicalCaptureSpec {
  return {
    slot: config.capture.slot,
    publication: config.capture.publication,
    sources: triggerSpecFromConfig(config).sources,
    partitionTruncate: { schema: config.triggers.schema, channel: config.triggers.channel },
  };
}
