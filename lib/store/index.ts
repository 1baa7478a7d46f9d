export * from './types';
export * from './file-store';
export * from './s3-store';
export * from './control';
export * from './status';
