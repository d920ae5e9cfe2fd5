export { LocalStorageTable, type LocalPublishedState, type LocalStorageTableOptions } from './localStorageTable.ts';
