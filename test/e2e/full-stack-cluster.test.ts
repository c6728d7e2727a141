import { redisClusterForFile } from '../support/cluster.js';
import { fullStackSuite } from './full-stack.js';

const cluster = redisClusterForFile();
fullStackSuite('a Redis Cluster', [4787, 4788, 4789], () => ({ clusterUrl: cluster().url }));
