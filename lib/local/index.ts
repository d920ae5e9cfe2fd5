export {
  LocalStorageTable,
  type LocalPublishedState,
  type LocalRecordCodec,
  type LocalStorageTableOptions,
} from './localStorageTable.ts';
export { MessagePackStringCodec } from './messagePackStringCodec.ts';
