export * from './errors';
export * from './types';
export * from './load';
export * from './validate';
export * from './job';
