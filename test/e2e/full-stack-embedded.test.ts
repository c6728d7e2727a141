import { fullStackSuite } from './full-stack.js';

fullStackSuite('the embedded backend', [4784, 4785, 4786], () => 'embedded');
