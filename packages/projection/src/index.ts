export { migrations } from './migrations.js';
