/**
 * What a change capture installs in Postgres. Change triggers on the source
 * tables: SQL generation, install, upgrade, uninstall and status, and the
 * payload format the daemon parses. The logical capture: the publication and
 * the pgoutput slot, the server checks with their fixes, install, uninstall
 * and status.
 *
 * @packageDocumentation
 */
export {
  formatQualifiedName,
  parseColumnName,
  parseIdentifierPath,
  parseQualifiedName,
  quoteIdentifier,
  quoteLiteral,
  quoteQualifiedName,
  type QualifiedTableName,
} from './identifiers.ts';
export {
  changePayloadSchema,
  MAX_PAYLOAD_BYTES,
  parseChangePayload,
  PAYLOAD_VERSION,
  type ChangePayload,
  type CoarseReason,
  type KeysChangedPayload,
  type KeyTuple,
  type KeyValue,
  type ParsedChangePayload,
  type TableChangedPayload,
  type TableTruncatedPayload,
} from './payload.ts';
export {
  checkTriggerChannel,
  checkTriggerSchema,
  resolveTriggerSpec,
  TRIGGER_DEFAULTS,
  type ResolvedTriggerSpec,
  type SourceTableSpec,
  type TriggerSpec,
} from './triggerSpec.ts';
export {
  sourceTriggerDefinition,
  TRIGGER_DEFINITION_VERSION,
  triggerFunctionName,
  triggerName,
  type SourceTriggerDefinition,
  type TriggerDefinition,
  type TriggerEvent,
} from './sourceTriggers.ts';
export { functionsOfChannel, readInstalledTriggers, type InstalledFunction, type InstalledTrigger, type InstalledTriggers } from './installedTriggers.ts';
export { readSourceRelations, type SourceChild, type SourceRelation } from './sourceChildren.ts';
export { readTriggerStatus, type ChildTriggerStatus, type SourceTriggerState, type SourceTriggerStatus, type TriggerStatus } from './triggerStatus.ts';
export { installChildTriggers, installTriggers, installTriggersScript, type ChildInstallResult, type InstallResult } from './installTriggers.ts';
export { uninstallTriggers, type UninstallResult, type UninstallTarget } from './uninstallTriggers.ts';
export { DEFAULT_LOCK_TIMEOUT_MS, installLockStatement, type TriggerTransactionOptions } from './triggerTransaction.ts';
export { checkLogicalCaptureSpec, checkPublicationName, checkSlotName, defaultCaptureName, type LogicalCaptureSpec } from './logicalCaptureSpec.ts';
export {
  PUBLICATION_COMMENT,
  readLogicalCaptureState,
  type CapturePublicationState,
  type CaptureRelationIdentity,
  type CaptureRoleState,
  type CaptureServerState,
  type CaptureSlotState,
  type LogicalCaptureState,
} from './logicalCaptureState.ts';
export { CaptureSetupError, formatCaptureChecks, logicalCaptureChecks, type CaptureCheck, type CaptureCheckTopic } from './logicalCaptureChecks.ts';
export { installLogicalCapture, logicalCaptureScript, type LogicalCaptureInstallOptions, type LogicalCaptureInstallResult } from './logicalCapture.ts';
export {
  uninstallLogicalCapture,
  type LogicalCaptureTarget,
  type LogicalCaptureUninstallOptions,
  type LogicalCaptureUninstallResult,
} from './logicalCaptureUninstall.ts';
export { readLogicalCaptureStatus, type CapturePublicationStatus, type LogicalCaptureSlotStatus, type LogicalCaptureStatus } from './logicalCaptureStatus.ts';
