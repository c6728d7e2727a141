import { fullStackSuite } from './full-stack.js';

fullStackSuite('Redis and PostgreSQL', [4781, 4782, 4783], () => 'redis');
